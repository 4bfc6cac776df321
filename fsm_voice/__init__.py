"""fsm_voice: a runtime for phone-call voice agents."""
