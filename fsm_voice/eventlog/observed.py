"""An event log that also shows each event to an observer as it is appended.

`fsm-voice demo` prints the conversation as it happens this way, from the same
events that go to SQLite, so what the user sees is exactly what the log holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord, RefusalCount, Track

__all__ = ["ObservedEventLog"]


class ObservedEventLog:
    def __init__(self, inner: EventLog, observer: Callable[[EventRecord], None]) -> None:
        self.inner = inner
        self._observer = observer

    def open_call(self, call: CallRecord) -> None:
        self.inner.open_call(call)

    def update_call(self, call_id: str, **fields: Any) -> None:
        self.inner.update_call(call_id, **fields)

    def append(self, event: EventRecord) -> None:
        self.inner.append(event)
        self._observer(event)  # after the append: a failing observer loses nothing

    def append_audio(self, chunk: AudioChunk) -> None:
        self.inner.append_audio(chunk)

    def count_refusal(self, wall_ms: int, reason: str, status: int) -> None:
        self.inner.count_refusal(wall_ms, reason, status)

    async def flush(self, call_id: str | None = None) -> None:
        await self.inner.flush(call_id)

    def flush_sync(self) -> None:
        self.inner.flush_sync()

    def close(self) -> None:
        self.inner.close()

    def calls(self) -> Sequence[CallRecord]:
        return self.inner.calls()

    def call(self, call_id: str) -> CallRecord | None:
        return self.inner.call(call_id)

    def events(
        self, call_id: str, *, kind: str | None = None, source: str | None = None
    ) -> Sequence[EventRecord]:
        return self.inner.events(call_id, kind=kind, source=source)

    def audio(self, call_id: str, track: Track) -> Sequence[AudioChunk]:
        return self.inner.audio(call_id, track)

    def refusals(self) -> Sequence[RefusalCount]:
        return self.inner.refusals()
