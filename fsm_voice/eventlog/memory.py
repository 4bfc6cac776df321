"""An `EventLog` in memory, for fast tests: the SQLite log's behaviour, without a file.

It keeps what the SQLite log would give back: event data goes through the same JSON
(tuples come back as lists), and a write that SQLite would refuse (a duplicate key,
data JSON cannot hold, an update of a call never opened) is skipped and reported by
the next `flush`/`close` as an `EventLogError` (`flush(call_id)`: that call's only).
An event of a kind the catalogue does not declare raises `UnknownEventKindError` at
`append` (`kinds="refuse"`: reported as a failed write, like SQLite; `"off"`: kept).
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any, Final

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.catalogue import KindCheck, unknown_kind
from fsm_voice.eventlog.failed_writes import FailedWrites
from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord, RefusalCount, Track
from fsm_voice.eventlog.upcast import stored_kinds, upcast_filtered

__all__ = ["MemoryEventLog"]

_CALL_FIELDS: Final = frozenset(f.name for f in fields(CallRecord)) - {"call_id"}
_JSON: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _copy(call: CallRecord) -> CallRecord:
    return replace(call, custom_parameters=dict(call.custom_parameters))


class MemoryEventLog:
    """An `EventLog` held in dictionaries; every write is "committed" at once."""

    def __init__(self, *, kinds: KindCheck = "raise") -> None:
        self._kinds = kinds  # what an undeclared kind gets (see `catalogue`)
        self._calls: dict[str, CallRecord] = {}
        # Event data is kept as its JSON text, as in SQLite: reads get fresh dicts.
        self._events: dict[str, dict[int, tuple[EventRecord, str]]] = {}
        self._audio: dict[tuple[str, Track], dict[int, AudioChunk]] = {}
        self._refusals: dict[tuple[int, str], RefusalCount] = {}  # (minute, reason) → row
        self._closed = False
        # Failures not told yet, by call: the first error and how many more.
        self._failed = FailedWrites()

    def __repr__(self) -> str:
        return "MemoryEventLog()"

    def __enter__(self) -> MemoryEventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing ---

    def open_call(self, call: CallRecord) -> None:
        self._check_open()
        if call.call_id in self._calls:
            self._fail(call.call_id, f"call {call.call_id!r}", "the call is already open")
            return
        self._calls[call.call_id] = _copy(call)

    def update_call(self, call_id: str, **fields: Any) -> None:
        self._check_open()
        unknown = fields.keys() - _CALL_FIELDS
        if unknown:
            raise TypeError(f"update_call: CallRecord has no field(s) {sorted(unknown)}")
        call = self._calls.get(call_id)
        if call is None:
            self._fail(call_id, f"call {call_id!r}", f"update_call: no call {call_id!r} was opened")
            return
        if "custom_parameters" in fields:
            fields["custom_parameters"] = dict(fields["custom_parameters"])
        self._calls[call_id] = replace(call, **fields)

    def append(self, event: EventRecord) -> None:
        self._check_open()
        what = f"event {event.call_id!r} seq {event.seq}"
        if self._kinds != "off":
            unknown = unknown_kind(event.source, event.kind)
            if unknown is not None:
                if self._kinds == "raise":
                    raise unknown
                self._fail(event.call_id, what, unknown)
                return
        try:
            data = _JSON.encode(event.data)
        except (TypeError, ValueError) as e:
            self._fail(event.call_id, what, e)
            return
        events = self._events.setdefault(event.call_id, {})
        if event.seq in events:
            self._fail(event.call_id, what, "duplicate (call_id, seq)")
            return
        events[event.seq] = (replace(event, data={}), data)

    def append_audio(self, chunk: AudioChunk) -> None:
        self._check_open()
        chunks = self._audio.setdefault((chunk.call_id, chunk.track), {})
        if chunk.seq in chunks:
            what = f"audio {chunk.call_id!r} {chunk.track} seq {chunk.seq}"
            self._fail(chunk.call_id, what, "duplicate (call_id, track, seq)")
            return
        chunks[chunk.seq] = replace(chunk, payload=bytes(chunk.payload))

    def count_refusal(self, wall_ms: int, reason: str, status: int) -> None:
        self._check_open()
        one = RefusalCount.one(wall_ms, reason, status)
        key = (one.minute_wall_ms, reason)
        row = self._refusals.get(key)
        self._refusals[key] = one if row is None else replace(row, count=row.count + 1)

    async def flush(self, call_id: str | None = None) -> None:
        self._raise_kept(call_id)

    def flush_sync(self) -> None:
        self._raise_kept(None)

    def _raise_kept(self, call_id: str | None) -> None:
        error = self._failed.take(call_id)
        if error is not None:
            raise error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush_sync()

    def _check_open(self) -> None:
        if self._closed:
            raise EventLogError("memory event log is closed")

    def _fail(self, call_id: str, what: str, cause: BaseException | str) -> None:
        error = EventLogError(f"memory event log: could not write {what}: {cause}")
        if isinstance(cause, BaseException):
            error.__cause__ = cause
        self._failed.keep(call_id, error)

    # --- reading ---

    def calls(self) -> list[CallRecord]:
        self._check_open()
        # sorted() is stable: calls started in the same ms stay in the order opened.
        return [_copy(c) for c in sorted(self._calls.values(), key=lambda c: c.started_wall_ms)]

    def call(self, call_id: str) -> CallRecord | None:
        self._check_open()
        call = self._calls.get(call_id)
        return None if call is None else _copy(call)

    def events(
        self, call_id: str, *, kind: str | None = None, source: str | None = None
    ) -> list[EventRecord]:
        self._check_open()
        events = self._events.get(call_id, {})
        records = (events[seq] for seq in sorted(events))
        # Read as the catalogue declares them now: events appended in an older form
        # (a copy of old data, kinds="off") come back upcast, as from SQLite.
        names = None if kind is None else stored_kinds(kind, source)
        stored = (
            replace(event, data=json.loads(data))
            for event, data in records
            if (names is None or event.kind in names) and (source is None or event.source == source)
        )
        return upcast_filtered(stored, kind=kind, source=source)

    def audio(self, call_id: str, track: Track) -> list[AudioChunk]:
        self._check_open()
        chunks = self._audio.get((call_id, track), {})
        return [chunks[seq] for seq in sorted(chunks)]

    def refusals(self) -> list[RefusalCount]:
        self._check_open()
        return [self._refusals[key] for key in sorted(self._refusals)]
