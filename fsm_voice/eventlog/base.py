"""The event-log interface every implementation (SQLite, in-memory) provides.

Writes never block the event loop: `open_call`, `append`, `append_audio` and
`update_call` enqueue; a writer commits in batches. `flush` returns once everything
enqueued before it is durable. Reads are for tools, tests and replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord, RefusalCount, Track


class EventLog(Protocol):
    # --- writing (safe to call from the event loop: never blocks on I/O) ---
    def open_call(self, call: CallRecord) -> None: ...

    def update_call(self, call_id: str, **fields: Any) -> None:
        """Set fields of a call's row (names as in `CallRecord`)."""
        ...

    def append(self, event: EventRecord) -> None:
        """Enqueue one event. A (source, kind) the catalogue does not declare is
        refused (`fsm_voice.eventlog.catalogue`: raised, or told by the call's flush)."""
        ...

    def append_audio(self, chunk: AudioChunk) -> None: ...

    def count_refusal(self, wall_ms: int, reason: str, status: int) -> None:
        """Count one request refused before it became a call, in the row of its minute
        and `reason` (never a row of its own: a flood must not fill the disk)."""
        ...

    async def flush(self, call_id: str | None = None) -> None:
        """Wait until everything enqueued so far is committed.

        Raises `EventLogError` for writes that failed and were not reported yet; with
        `call_id`, only for that call's rows (one call's bad row never fails another).
        """
        ...

    def flush_sync(self) -> None: ...

    def close(self) -> None:
        """Flush and release the storage; further writes raise `EventLogError`."""
        ...

    # --- reading ---
    def calls(self) -> Sequence[CallRecord]:
        """Every call, oldest first."""
        ...

    def call(self, call_id: str) -> CallRecord | None: ...

    def events(
        self, call_id: str, *, kind: str | None = None, source: str | None = None
    ) -> Sequence[EventRecord]:
        """A call's events in seq order, optionally only one kind or source."""
        ...

    def audio(self, call_id: str, track: Track) -> Sequence[AudioChunk]:
        """A call's chunks of one track in seq order."""
        ...

    def refusals(self) -> Sequence[RefusalCount]:
        """The refused requests, per minute and reason, oldest minute first."""
        ...
