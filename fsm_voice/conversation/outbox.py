"""What one event makes the conversation machine do: its effects, ids and live timers.

The machine fills an `Outbox` while it handles an event and hands the effects back.
Ids (prompts, hooks, SMS, timer tokens) come from one counter for the whole call, so
a replayed call numbers everything exactly as the recorded one did. A timer is known
by its name; its token tells a fired timer from one cancelled or restarted since.
"""

from __future__ import annotations

import itertools
from typing import Any

from fsm_voice.conversation import effects as fx
from fsm_voice.eventlog.kind_names import KindName

__all__ = ["Outbox"]


class Outbox:
    """The effects of the event being handled, the id counter and the live timers."""

    def __init__(self) -> None:
        self._effects: list[fx.ConversationEffect] = []
        self._ids = itertools.count(1)
        self._timers: dict[str, int] = {}  # name -> token of the live timer

    def take(self) -> list[fx.ConversationEffect]:
        """The effects so far; the outbox starts empty again."""
        effects, self._effects = self._effects, []
        return effects

    def next_id(self) -> int:
        return next(self._ids)

    def emit(self, effect: fx.ConversationEffect) -> None:
        self._effects.append(effect)

    def note(self, kind: KindName, **details: Any) -> None:
        """A decision for the log: not an instruction to the runtime."""
        self._effects.append(fx.Note(kind, details))

    def start_timer(self, name: str, after_ms: int) -> None:
        self.cancel_timer(name)
        token = self.next_id()
        self._timers[name] = token
        self.emit(fx.StartTimer(name, after_ms, token))

    def cancel_timer(self, name: str) -> None:
        token = self._timers.pop(name, None)
        if token is not None:
            self.emit(fx.CancelTimer(name, token))

    def cancel_timers(self) -> None:
        for name in list(self._timers):
            self.cancel_timer(name)

    def timer_fired(self, name: str, token: int) -> bool:
        """True when this is the live timer `name` (it is live no more); False if stale."""
        if self._timers.get(name) != token:
            return False
        del self._timers[name]
        return True
