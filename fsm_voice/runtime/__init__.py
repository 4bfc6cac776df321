"""The per-call async shell: the only place that does I/O for a call."""
