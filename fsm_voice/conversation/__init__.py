"""Conversation machines: the YAML format, its checker, the pure machine and its runner."""
