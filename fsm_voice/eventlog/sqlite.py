"""The SQLite event log: one file, one batched writer thread, readers beside it.

The only modules that import `sqlite3` and `sqlite_utils` (STYLE.md) are this one,
`sqlite_schema` (the file format) and `sqlite_writer` (the writer thread). Writes made on
the event loop append a record to a deque and return. A writer thread owns the write
connection and commits everything waiting in one transaction per `batch_ms` tick,
sooner when `batch_rows` rows wait or someone flushes. Reads use a second connection;
WAL lets it read committed data while the writer writes.

WAL with `synchronous=NORMAL`: "Transactions are durable across application crashes
regardless of the synchronous setting" and the file stays consistent; only a power
loss can roll back the last commits (https://sqlite.org/pragma.html#pragma_synchronous).
So a SIGKILL loses at most the batch not yet committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Final

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.catalogue import KindCheck, unknown_kind
from fsm_voice.eventlog.records import (
    AudioChunk,
    CallRecord,
    EventRecord,
    RefusalCount,
    Track,
)
from fsm_voice.eventlog.sqlite_schema import (
    _CALL_COLUMNS,
    _SELECT_REFUSALS,
    SCHEMA_VERSION,
    _call_record,
    read_events,
    select_events,
)
from fsm_voice.eventlog.sqlite_writer import (
    _AsyncWaiter,
    _Group,
    _Op,
    _SyncWaiter,
    _Update,
    _Writer,
)

__all__ = ["SCHEMA_VERSION", "SqliteEventLog"]

_CALL_FIELDS: Final = frozenset(f.name for f in fields(CallRecord)) - {"call_id"}


def _release(writer: _Writer, reader: sqlite3.Connection) -> EventLogError | None:
    try:
        return writer.stop()
    finally:
        reader.close()


class SqliteEventLog:
    """An `EventLog` in one SQLite file, written by a batching background thread.

    Two hooks for tests and metrics, both called on the writer thread: `trace` with
    every SQL statement the writer starts, `on_commit` with the number of rows after
    each transaction it has committed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_ms: int = 20,
        batch_rows: int = 1000,
        trace: Callable[[str], None] | None = None,
        on_commit: Callable[[int], None] | None = None,
        kinds: KindCheck = "refuse",
    ) -> None:
        if batch_ms < 0 or batch_rows < 1:
            raise ValueError(
                f"need batch_ms >= 0 and batch_rows >= 1, got {batch_ms}, {batch_rows}"
            )
        self.path = Path(path)
        self._closed = False
        # An undeclared kind (see `catalogue`): by default refused like any bad row,
        # told by its call's flush; a live call never dies for it.
        self._kinds = kinds
        self._writer = _Writer(self.path, batch_ms, batch_rows, trace, on_commit)
        self._writer.start()
        try:
            self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as e:
            self._writer.stop()
            raise EventLogError(f"cannot open event log {self.path}: {e}") from e
        self._read_lock = threading.Lock()
        # Without close(), garbage collection or interpreter exit still commits the queue.
        self._finalizer = weakref.finalize(self, _release, self._writer, self._reader)

    def __repr__(self) -> str:
        return f"SqliteEventLog({str(self.path)!r})"

    def __enter__(self) -> SqliteEventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing ---

    def open_call(self, call: CallRecord) -> None:
        self._check_writable()
        self._enqueue(replace(call, custom_parameters=dict(call.custom_parameters)))

    def update_call(self, call_id: str, **fields: Any) -> None:
        self._check_writable()
        unknown = fields.keys() - _CALL_FIELDS
        if unknown:
            raise TypeError(f"update_call: CallRecord has no field(s) {sorted(unknown)}")
        if "custom_parameters" in fields:
            fields["custom_parameters"] = dict(fields["custom_parameters"])
        if fields:
            self._enqueue(_Update(call_id, fields))

    def append(self, event: EventRecord) -> None:
        """Enqueue `event`; its `data` is encoded later, so do not mutate it afterwards."""
        self._check_writable()
        if self._kinds != "off":
            unknown = unknown_kind(event.source, event.kind)
            if unknown is not None:
                if self._kinds == "raise":
                    raise unknown
                what = f"event {event.call_id!r} seq {event.seq}"
                error = EventLogError(f"event log {self.path}: could not write {what}: {unknown}")
                error.__cause__ = unknown
                self._writer.keep_error(error, event.call_id)
                return
        self._enqueue(event)

    def append_audio(self, chunk: AudioChunk) -> None:
        self._check_writable()
        self._enqueue(chunk)

    def count_refusal(self, wall_ms: int, reason: str, status: int) -> None:
        self._check_writable()
        self._enqueue(RefusalCount.one(wall_ms, reason, status))

    def write_call(
        self, call: CallRecord, events: list[EventRecord], audio: list[AudioChunk]
    ) -> None:
        """Write a whole call (its row, events and audio) in one transaction: every row
        or none. Blocks until it is committed, so it is for tools, not the event loop;
        raises `EventLogError` if it was not (a row the schema refuses, a full disk)."""
        self._check_writable()
        if self._kinds != "off":
            for event in events:  # the whole call or nothing: refused before it is queued
                unknown = unknown_kind(event.source, event.kind)
                if unknown is not None:
                    raise unknown
        self._enqueue(
            _Group(
                replace(call, custom_parameters=dict(call.custom_parameters)),
                list(events),
                list(audio),
            )
        )
        self.flush_sync()

    def _enqueue(self, op: _Op) -> None:
        writer = self._writer
        pending = writer.pending
        pending.append(op)
        if len(pending) >= writer.batch_rows and not writer.hurry.is_set():
            writer.hurry.set()
        if not writer.wake.is_set():
            writer.wake.set()

    def _check_open(self) -> None:
        if self._closed:
            raise EventLogError(f"event log {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._writer.failed:
            raise EventLogError(f"event log {self.path}: the writer thread stopped")

    async def flush(self, call_id: str | None = None) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._writer.enqueue(_AsyncWaiter(loop, future, self._writer, call_id))
        await future

    def flush_sync(self) -> None:
        if self._closed:
            return
        waiter = _SyncWaiter()
        self._writer.enqueue(waiter)
        error = waiter.wait()
        if error is not None:
            raise error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        error = self._finalizer()
        if error is not None:
            raise error

    # --- reading ---

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        self._check_open()
        try:
            with self._read_lock:
                return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise EventLogError(f"event log {self.path}: could not read: {e}") from e

    def calls(self) -> list[CallRecord]:
        rows = self._read(f"SELECT {_CALL_COLUMNS} FROM calls ORDER BY started_wall_ms, rowid", ())
        return [_call_record(row) for row in rows]

    def call(self, call_id: str) -> CallRecord | None:
        rows = self._read(f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?", (call_id,))
        return _call_record(rows[0]) if rows else None

    def events(
        self, call_id: str, *, kind: str | None = None, source: str | None = None
    ) -> list[EventRecord]:
        sql, params = select_events(call_id, kind, source)
        return read_events(self._read(sql, params), kind, source)

    def audio(self, call_id: str, track: Track) -> list[AudioChunk]:
        rows = self._read(
            "SELECT seq, t_ms, first_frame, payload FROM audio"
            " WHERE call_id = ? AND track = ? ORDER BY seq",
            (call_id, track),
        )
        return [
            AudioChunk(call_id, track, seq, t_ms, first, bytes(p)) for seq, t_ms, first, p in rows
        ]

    def refusals(self) -> list[RefusalCount]:
        return [RefusalCount(*row) for row in self._read(_SELECT_REFUSALS, ())]
