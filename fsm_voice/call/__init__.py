"""The call machine: one per call, pure and synchronous."""
