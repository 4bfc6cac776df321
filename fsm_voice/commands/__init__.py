"""The bodies of the `fsm-voice` commands (imported only when run)."""
