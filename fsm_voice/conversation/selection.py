"""Choosing a handler, VoiceXML style, and the steps the action cursor runs.

A state's own handlers are searched before the global ones; among the handlers of an
event whose `when` holds, the one with the highest `count` ≤ the counter wins (for
`noinput`/`nomatch` the counter is the visit's count of that failure, otherwise 1).
The action cursor runs a handler's actions and then a `Continue` (its goto, reprompt
or stay), or a `TakeFallback` when the failures of a visit reached the global cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fsm_voice.conversation.language import spec as sp

__all__ = [
    "Continue",
    "CursorStep",
    "TakeFallback",
    "describe",
    "pick_prompt",
    "select_handler",
]


@dataclass(frozen=True, slots=True)
class Continue:
    """The end of a handler's actions: take its goto / reprompt / stay."""

    handler: sp.Handler


@dataclass(frozen=True, slots=True)
class TakeFallback:
    """The failures of this visit reached the global fallback's cap: take it."""

    fallback: sp.Fallback


CursorStep = sp.Action | Continue | TakeFallback


def select_handler(
    spec: sp.MachineSpec,
    state: sp.StateSpec | None,
    event: str,
    count: int,
    holds: Callable[[sp.Handler], bool],
) -> sp.Handler | None:
    """The handler `event` runs at this `count`; `holds` evaluates a handler's `when`."""
    local = state.handlers_for(event) if state else ()
    for candidates in (local, tuple(h for h in spec.global_handlers if h.event == event)):
        best: sp.Handler | None = None
        for handler in candidates:
            if handler.count > count or not holds(handler):
                continue
            if best is None or handler.count > best.count:
                best = handler
        if best is not None:
            return best
    return None


def pick_prompt(prompts: tuple[sp.Prompt, ...], attempt: int) -> sp.Prompt:
    """The prompt with the highest `count` ≤ the attempt (the first one before that)."""
    eligible = [p for p in prompts if p.count <= attempt] or [prompts[0]]
    return max(eligible, key=lambda p: p.count)


def describe(handler: sp.Handler) -> dict[str, Any]:
    """A handler as the `handler_selected` log line shows it."""
    return {
        "event": handler.event,
        "goto": handler.goto,
        "count": handler.count,
        "when": handler.when,
        "reprompt": handler.reprompt,
        "line": handler.source.line if handler.source else None,
    }
