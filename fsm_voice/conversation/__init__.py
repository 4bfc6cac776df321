"""Conversation machines, running: the interpreter (`machine`), its parts and its runner.

The language they run (YAML, spec, check, diagram) is `fsm_voice.conversation.language`.
"""
