"""What the STT and TTS contract tests share: a listener that records every callback
and waits for facts (never for time), and the log a provider's moves go to.

`StateLog` logs moves the way a call does (`fsm_voice.providers.state_log`) into a
`MemoryEventLog` that refuses an undeclared kind, and checks each payload against
the catalogue, so "the same logged transitions" is checked on real log rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import anyio

from fsm_voice.eventlog.catalogue import declaration, payload_problems
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import Transcript
from fsm_voice.providers.state_log import StateRecorder

GUARD_S = 20  # turns a hang into a failure; never reached by a passing run


class StateLog:
    """A call's log of one provider's moves (source `stt` or `tts`)."""

    def __init__(self, source: Literal["stt", "tts"]) -> None:
        self.source = source
        self.log = MemoryEventLog()  # kinds="raise": an undeclared kind fails here
        self._seq = 0

    def record(self, kind: str, data: dict[str, Any]) -> None:
        declared = declaration(self.source, kind)
        v = declared.v if declared is not None else 1
        self._seq += 1
        event = EventRecord("call", self._seq, 0, 0, self.source, kind, data, v)
        assert payload_problems(event) == []
        self.log.append(event)

    def recorder(self, provider: str) -> StateRecorder:
        return StateRecorder(self.source, provider, self.record)

    def moves(self) -> list[tuple[str | None, str]]:
        """(from, state) of every `state_entered`, in order."""
        return [
            (e.data["from"], e.data["state"])
            for e in self.log.events("call")
            if e.kind == "state_entered"
        ]

    def states(self) -> list[str]:
        return [state for _, state in self.moves()]


def chained(moves: list[tuple[str | None, str]], first_from: str | None) -> bool:
    """Each move starts where the one before it ended."""
    froms = [f for f, _ in moves]
    ends = [first_from, *(s for _, s in moves[:-1])]
    return froms == ends


class Heard:
    """An SttListener recording every callback; `until(fact)` waits on the loop."""

    def __init__(self, on_state: Callable[[str, str], None]) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._on_state = on_state
        self._changed = asyncio.Event()

    def _note(self, kind: str, value: Any) -> None:
        self.calls.append((kind, value))
        self._changed.set()

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.calls if k == kind]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.calls]

    async def until(self, fact: Callable[[], bool]) -> None:
        with anyio.fail_after(GUARD_S):
            while not fact():
                self._changed.clear()
                await self._changed.wait()

    def on_speech_started(self, t_ms: int) -> None:
        self._note("speech_started", t_ms)

    def on_recognizing(self, text: str) -> None:
        self._note("recognizing", text)

    def on_committed(self, transcript: Transcript) -> None:
        self._note("committed", transcript)

    def on_discarded(self, transcript: Transcript, reason: str) -> None:
        self._note("discarded", reason)

    def on_error(self, reason: str, fatal: bool) -> None:
        self._note("error", (reason, fatal))

    def on_state(self, state: str, detail: str) -> None:
        self._on_state(state, detail)
        self._note("state", state)
