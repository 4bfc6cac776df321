"""Loop detection: a conversation that cannot make progress ends.

A machine can go round in circles with nobody doing anything: an `error` handler whose
own prompt fails the way the first one did runs `error` → say → `error` … as fast as
the provider fails (a call with a TTS that had no key logged 63,749 events in three
seconds while the caller heard silence). Only the machine knows which handler runs,
so it counts, purely, from the events it is fed; a replay counts the same.

Two counts, each cleared by progress:

- **the same handler** (state, event, line) selected `MAX_HANDLER_REPEATS` times. Cleared
  by caller input (speech starting, a transcript, a key), agent audio the caller heard
  (a prompt with an echoed mark), a timer firing or a hook returning: a wait the
  machine declared paces the loop, so a polling state or a retry after a pause never
  trips it.
- **errors on errors**: `MAX_ERRORS_IN_A_ROW` `error` events. Cleared only by caller
  input or heard audio: an error loop that waits on a timer or a hook between tries is
  still a call where nobody can hear or be heard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fsm_voice.conversation import events as ev
from fsm_voice.conversation.language import spec as sp

__all__ = ["MAX_ERRORS_IN_A_ROW", "MAX_HANDLER_REPEATS", "Loop", "LoopGuard"]

# A real dialog repeats a handler without the caller doing anything only while it
# waits (noinput timers) or plays prompts, and both clear the count: 10 leaves room
# for a machine's own bounded loop (a counter with `when`) and stops a runaway one
# after a few dozen events.
MAX_HANDLER_REPEATS = 10
# One error, then the error handler's own steps failing, then a retry or two; the
# fifth with nothing heard in between is a loop (a machine may retry 4 times).
MAX_ERRORS_IN_A_ROW = 5

_CALLER_INPUT = (ev.SpeechStarted, ev.TranscriptReceived, ev.DigitPressed)
_DECLARED_WAIT = (ev.TimerFired, ev.HookReturned)


@dataclass(frozen=True, slots=True)
class Loop:
    """What looped: logged as `loop_detected` before the call ends."""

    rule: Literal["handler_repeated", "errors_in_a_row"]
    state: str
    event: str
    line: int | None  # the handler's line in the machine file (None: no handler)
    count: int

    def details(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "state": self.state,
            "event": self.event,
            "line": self.line,
            "count": self.count,
        }


class LoopGuard:
    """The two counts; the machine reports events, errors and handler choices."""

    def __init__(
        self,
        max_repeats: int = MAX_HANDLER_REPEATS,
        max_errors: int = MAX_ERRORS_IN_A_ROW,
    ) -> None:
        self.max_repeats = max_repeats
        self.max_errors = max_errors
        self._repeats: dict[tuple[str, str, int | None], int] = {}
        self._errors = 0

    def observe(self, event: ev.ConversationEvent) -> None:
        """Clear what this event proves was progress."""
        heard = isinstance(event, ev.PromptFinished) and bool(event.heard)
        if heard or isinstance(event, _CALLER_INPUT):
            self._errors = 0
            self._repeats.clear()
        elif isinstance(event, _DECLARED_WAIT):
            self._repeats.clear()

    def error(self, state: str, handler: Callable[[], sp.Handler | None]) -> Loop | None:
        """An `error` event arrived in `state`; `handler()` finds the one that would run
        (asked only for the log line: choosing one evaluates its `when`)."""
        self._errors += 1
        if self._errors < self.max_errors:
            return None
        return Loop("errors_in_a_row", state, "error", _line(handler()), self._errors)

    def selected(self, state: str, handler: sp.Handler) -> Loop | None:
        """`handler` was chosen in `state`."""
        key = (state, handler.event, _line(handler))
        count = self._repeats[key] = self._repeats.get(key, 0) + 1
        if count < self.max_repeats:
            return None
        return Loop("handler_repeated", state, handler.event, key[2], count)


def _line(handler: sp.Handler | None) -> int | None:
    source = handler.source if handler is not None else None
    return source.line if source is not None else None
