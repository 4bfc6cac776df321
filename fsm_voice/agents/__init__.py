"""Built-in agents: code that drives a call through its `CallHandle`."""

from __future__ import annotations

from fsm_voice.agents.echo import echo_agent
from fsm_voice.runtime.call import Agent

BUILTIN: dict[str, Agent] = {"echo": echo_agent()}

__all__ = ["BUILTIN", "echo_agent"]
