"""Built-in agents: code that drives a call through its `CallHandle`."""

from __future__ import annotations

import os

from fsm_voice.agents.echo import echo_agent
from fsm_voice.call.runtime import Agent

# FSM_VOICE_ECHO_MARK_EVERY lets the benchmark set the echo's mark spacing (frames).
BUILTIN: dict[str, Agent] = {
    "echo": echo_agent(int(os.environ.get("FSM_VOICE_ECHO_MARK_EVERY", "10"))),
}

__all__ = ["BUILTIN", "echo_agent"]
