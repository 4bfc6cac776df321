"""The SQLite event log: one file, one batched writer thread, readers beside it.

The only module that imports `sqlite3` and `sqlite_utils` (STYLE.md). Writes made on
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
import contextlib
import json
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

import sqlite_utils

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord, Source, Track

__all__ = ["SCHEMA_VERSION", "SqliteEventLog"]

SCHEMA_VERSION: Final = 1  # stored as PRAGMA user_version

_CALL_FIELDS: Final = frozenset(f.name for f in fields(CallRecord)) - {"call_id"}
# Sorted keys and no spaces: the same data is always the same text.
_JSON: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)

_INSERT_EVENT: Final = (
    "INSERT INTO events (call_id, seq, t_ms, wall_time, source, kind, data, v)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_AUDIO: Final = (
    "INSERT INTO audio (call_id, track, seq, t_ms, first_frame, frame_count, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_CALL_COLUMNS: Final = ", ".join(f.name for f in fields(CallRecord))


def _iso_utc(wall_ms: int) -> str:
    """`2026-01-01T00:00:00.000Z` for a time in ms since the Unix epoch."""
    return (_EPOCH + wall_ms * _MS).strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall_ms % 1000:03d}Z"


def _wall_ms_from_iso(text: str) -> int:
    return (datetime.fromisoformat(text) - _EPOCH) // _MS


class _Update:
    __slots__ = ("call_id", "fields")

    def __init__(self, call_id: str, fields: dict[str, Any]) -> None:
        self.call_id = call_id
        self.fields = fields


class _Waiter:
    """Resolved by the writer once everything enqueued before it is committed."""

    def done(self, error: EventLogError | None) -> None:
        raise NotImplementedError


class _SyncWaiter(_Waiter):
    def __init__(self) -> None:
        self._event = threading.Event()
        self._error: EventLogError | None = None

    def done(self, error: EventLogError | None) -> None:
        self._error = error
        self._event.set()

    def wait(self) -> EventLogError | None:
        self._event.wait()
        return self._error


class _AsyncWaiter(_Waiter):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None], writer: _Writer
    ) -> None:
        self._loop = loop
        self._future = future
        self._writer = writer

    def done(self, error: EventLogError | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._resolve, error)
        except RuntimeError:  # the loop is closed: nobody awaits any more
            if error is not None:
                self._writer.keep_error(error)

    def _resolve(self, error: EventLogError | None) -> None:
        if self._future.done():  # cancelled: keep the error for the next flush
            if error is not None:
                self._writer.keep_error(error)
        elif error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(None)


class _Stop:
    pass


_Op = CallRecord | _Update | EventRecord | AudioChunk | _Waiter | _Stop


class _Writer:
    """The writer thread and its queue. Holds no reference to the `SqliteEventLog`."""

    def __init__(
        self,
        path: Path,
        batch_ms: int,
        batch_rows: int,
        trace: Callable[[str], None] | None,
        on_commit: Callable[[int], None] | None,
    ) -> None:
        self.path = path
        self.pending: deque[_Op] = deque()
        # `wake`: something is pending. `hurry`: commit now instead of at the tick.
        # Both are cleared by the writer *before* it drains, so no wake-up is lost.
        self.wake = threading.Event()
        self.hurry = threading.Event()
        self.batch_rows = batch_rows
        self._batch_s = batch_ms / 1000
        self._trace = trace
        self._on_commit = on_commit
        self._error_lock = threading.Lock()
        self._error: EventLogError | None = None
        self._more_errors = 0
        self._iso_second = 0
        self._iso_prefix = _iso_utc(0)[:-4]
        self._ready = threading.Event()
        self.failed = False
        self._state_lock = threading.Lock()
        self._finished = False
        self._open_error: EventLogError | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"fsm-voice event log {path}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def enqueue(self, op: _Waiter | _Stop) -> None:
        """Queue a flush or the stop; once the thread has ended, answer a flush at once."""
        with self._state_lock:
            if not self._finished:
                self.pending.append(op)
                self.hurry.set()
                self.wake.set()
                return
        if isinstance(op, _Waiter):
            op.done(self.take_error())

    def stop(self) -> EventLogError | None:
        """Commit what is pending, end the thread; the error not reported yet, if any."""
        waiter = _SyncWaiter()
        self.enqueue(waiter)
        self.enqueue(_Stop())
        error = waiter.wait()
        self._thread.join()
        return error or self.take_error()

    def keep_error(self, error: EventLogError) -> None:
        """Hold `error` for the next flush or close (the first one wins, others count)."""
        with self._error_lock:
            if self._error is None:
                self._error = error
            else:
                self._more_errors += 1

    def take_error(self) -> EventLogError | None:
        with self._error_lock:
            error, more = self._error, self._more_errors
            self._error, self._more_errors = None, 0
        if error is None or not more:
            return error
        summary = EventLogError(f"{error} (and {more} more failed writes)")
        summary.__cause__ = error.__cause__
        return summary

    def _record(self, what: str, cause: BaseException) -> None:
        error = EventLogError(f"event log {self.path}: could not write {what}: {cause}")
        error.__cause__ = cause  # as `raise ... from cause` would
        self.keep_error(error)

    # --- the thread ---

    def _run(self) -> None:
        try:
            conn = self._connect()
        except EventLogError as e:
            self._open_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while self._loop_once(conn):
                pass
        except BaseException as e:  # a bug, or a hook raised: leave nobody waiting forever
            self.failed = True
            self._record("anything more (the writer thread stopped)", e)
        finally:
            conn.close()
            self._finish()

    def _finish(self) -> None:
        with self._state_lock:
            self._finished = True
            left = list(self.pending)
            self.pending.clear()
        error = self.take_error()
        if error is None and self.failed:
            error = EventLogError(f"event log {self.path}: the writer thread stopped")
        for op in left:
            if isinstance(op, _Waiter):
                op.done(error)

    def _loop_once(self, conn: sqlite3.Connection) -> bool:
        self.wake.wait()
        self.wake.clear()
        if not self.hurry.is_set() and len(self.pending) < self.batch_rows:
            self.hurry.wait(self._batch_s)  # the tick; cut short by flush/close/batch_rows
        self.hurry.clear()
        pending = self.pending
        batch = [pending.popleft() for _ in range(min(len(pending), self.batch_rows))]
        if pending:  # a backlog: its first batch_rows go next, without waiting for a tick
            self.hurry.set()
            self.wake.set()
        calls: list[CallRecord | _Update] = []
        events: list[EventRecord] = []
        audio: list[AudioChunk] = []
        waiters: list[_Waiter] = []
        stop = False
        for op in batch:
            if isinstance(op, EventRecord):
                events.append(op)
            elif isinstance(op, AudioChunk):
                audio.append(op)
            elif isinstance(op, CallRecord | _Update):
                calls.append(op)
            elif isinstance(op, _Waiter):
                waiters.append(op)
            else:
                stop = True
        try:
            if calls or events or audio:
                self._commit(conn, calls, events, audio)
        except BaseException:
            pending.extendleft(reversed(waiters))  # for _finish to answer
            raise
        if waiters:  # else an error waits for the next flush or close
            error = self.take_error()
            for waiter in waiters:
                waiter.done(error)
                error = None
        return not stop

    def _connect(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise EventLogError(
                f"cannot open event log {self.path}: directory {self.path.parent} does not exist"
            )
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        except sqlite3.Error as e:
            raise EventLogError(f"cannot open event log {self.path}: {e}") from e
        try:
            if self._trace is not None:
                conn.set_trace_callback(self._trace)
            _create_schema(conn)
        except (sqlite3.Error, EventLogError) as e:
            conn.close()
            raise EventLogError(f"cannot open event log {self.path}: {e}") from e
        return conn

    def _commit(
        self,
        conn: sqlite3.Connection,
        calls: list[CallRecord | _Update],
        events: list[EventRecord],
        audio: list[AudioChunk],
    ) -> None:
        # Everything in one transaction; the order between tables is invisible to
        # readers, and calls keep their order among themselves.
        try:
            conn.execute("BEGIN IMMEDIATE")
            for call in calls:
                self._apply_call(conn, call)
            conn.executemany(_INSERT_EVENT, map(self._event_row, events))
            conn.executemany(_INSERT_AUDIO, map(_audio_row, audio))
            conn.execute("COMMIT")
        except Exception:
            _rollback(conn)
            if not self._commit_row_by_row(conn, calls, events, audio):
                return
        if self._on_commit is not None:
            try:
                self._on_commit(len(calls) + len(events) + len(audio))
            except Exception as e:
                self._record("a batch (the on_commit hook raised)", e)

    def _commit_row_by_row(
        self,
        conn: sqlite3.Connection,
        calls: list[CallRecord | _Update],
        events: list[EventRecord],
        audio: list[AudioChunk],
    ) -> bool:
        # Something in the batch is bad (a duplicate key, data JSON cannot hold, a
        # disk error): do it again a row at a time, keeping every row that can be kept.
        try:
            conn.execute("BEGIN IMMEDIATE")
            for call in calls:
                self._try(f"call {call.call_id!r}", self._apply_call, conn, call)
            for event in events:
                what = f"event {event.call_id!r} seq {event.seq}"
                self._try(what, self._insert_event, conn, event)
            for chunk in audio:
                what = f"audio {chunk.call_id!r} {chunk.track} seq {chunk.seq}"
                self._try(what, _insert_audio, conn, chunk)
            conn.execute("COMMIT")
        except Exception as e:
            _rollback(conn)
            self._record(f"a batch of {len(calls) + len(events) + len(audio)} rows", e)
            return False
        return True

    def _try(
        self,
        what: str,
        write: Callable[[sqlite3.Connection, Any], object],
        conn: sqlite3.Connection,
        op: object,
    ) -> None:
        try:
            write(conn, op)
        except Exception as e:
            if not conn.in_transaction:  # SQLite rolled it all back (disk full, I/O error)
                raise
            self._record(what, e)

    def _insert_event(self, conn: sqlite3.Connection, event: EventRecord) -> None:
        conn.execute(_INSERT_EVENT, self._event_row(event))

    def _apply_call(self, conn: sqlite3.Connection, op: CallRecord | _Update) -> None:
        if isinstance(op, CallRecord):
            row = _call_columns({f.name: getattr(op, f.name) for f in fields(CallRecord)})
            names = ", ".join(row)
            marks = ", ".join("?" * len(row))
            conn.execute(f"INSERT INTO calls ({names}) VALUES ({marks})", tuple(row.values()))
            return
        row = _call_columns(op.fields)
        sets = ", ".join(f"{name} = ?" for name in row)
        cursor = conn.execute(
            f"UPDATE calls SET {sets} WHERE call_id = ?", (*row.values(), op.call_id)
        )
        if cursor.rowcount == 0:
            raise LookupError(f"update_call: no call {op.call_id!r} was opened")

    def _event_row(self, e: EventRecord) -> tuple[object, ...]:
        second = e.wall_ms // 1000
        if second != self._iso_second:  # events come in bursts within one second
            self._iso_second = second
            self._iso_prefix = _iso_utc(e.wall_ms)[:-4]
        wall_time = f"{self._iso_prefix}{e.wall_ms % 1000:03d}Z"
        return (e.call_id, e.seq, e.t_ms, wall_time, e.source, e.kind, _JSON.encode(e.data), e.v)


def _audio_row(a: AudioChunk) -> tuple[object, ...]:
    return (a.call_id, a.track, a.seq, a.t_ms, a.first_frame, a.frame_count, bytes(a.payload))


def _insert_audio(conn: sqlite3.Connection, chunk: AudioChunk) -> None:
    conn.execute(_INSERT_AUDIO, _audio_row(chunk))


def _call_columns(values: dict[str, Any]) -> dict[str, object]:
    """CallRecord fields → `calls` columns (ISO twins for the two times, JSON params)."""
    row: dict[str, object] = {}
    for name, value in values.items():
        if name == "custom_parameters":
            row[name] = _JSON.encode(value)
            continue
        row[name] = value
        if name == "started_wall_ms":
            row["started_at"] = _iso_utc(value)
        elif name == "ended_wall_ms":
            row["ended_at"] = None if value is None else _iso_utc(value)
    return row


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (disk full, I/O error).
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _create_schema(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise EventLogError(f"journal_mode is {mode!r}, WAL is needed")
    conn.execute("PRAGMA synchronous=NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise EventLogError(
            f"schema version {version} is newer than this fsm_voice's {SCHEMA_VERSION}"
        )
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    # NOT NULL on the keys too: SQLite lets NULL into a non-INTEGER primary key.
    db.table("calls").create(
        {
            "call_id": str,
            "call_sid": str,
            "stream_sid": str,
            "account_sid": str,
            "from_number": str,
            "to_number": str,
            "direction": str,
            "machine": str,
            "machine_version": str,
            "custom_parameters": str,  # JSON object
            "started_at": str,  # ISO-8601 UTC with ms
            "started_wall_ms": int,
            "ended_at": str,
            "ended_wall_ms": int,
            "duration_ms": int,
            "end_reason": str,
            "outcome": str,
            "final_state": str,
        },
        pk="call_id",
        not_null={"call_id", "custom_parameters", "started_at", "started_wall_ms"},
        if_not_exists=True,
    )
    events = db.table("events")
    events.create(
        {
            "call_id": str,
            "seq": int,
            "t_ms": int,  # ms since the call started
            "wall_time": str,  # ISO-8601 UTC with ms
            "source": str,
            "kind": str,
            "data": str,  # JSON, sorted keys, compact
            "v": int,  # payload schema version
        },
        pk=("call_id", "seq"),
        not_null={"call_id", "seq", "t_ms", "wall_time", "source", "kind", "data", "v"},
        if_not_exists=True,
    )
    events.create_index(["kind"], if_not_exists=True)
    db.table("audio").create(
        {
            "call_id": str,
            "track": str,  # caller | agent
            "seq": int,
            "t_ms": int,
            "first_frame": int,  # 20 ms frame number within the track
            "frame_count": int,
            "payload": bytes,  # μ-law, 8 kHz
        },
        pk=("call_id", "track", "seq"),
        not_null={"call_id", "track", "seq", "t_ms", "first_frame", "frame_count", "payload"},
        if_not_exists=True,
    )
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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
    ) -> None:
        if batch_ms < 0 or batch_rows < 1:
            raise ValueError(
                f"need batch_ms >= 0 and batch_rows >= 1, got {batch_ms}, {batch_rows}"
            )
        self.path = Path(path)
        self._closed = False
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
        self._enqueue(event)

    def append_audio(self, chunk: AudioChunk) -> None:
        self._check_writable()
        self._enqueue(chunk)

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

    async def flush(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._writer.enqueue(_AsyncWaiter(loop, future, self._writer))
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
        where, params = ["call_id = ?"], [call_id]
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        rows = self._read(
            "SELECT call_id, seq, t_ms, wall_time, source, kind, data, v FROM events"
            f" WHERE {' AND '.join(where)} ORDER BY seq",
            params,
        )
        return [
            EventRecord(
                call_id=row[0],
                seq=row[1],
                t_ms=row[2],
                wall_ms=_wall_ms_from_iso(row[3]),
                source=cast(Source, row[4]),
                kind=row[5],
                data=json.loads(row[6]),
                v=row[7],
            )
            for row in rows
        ]

    def audio(self, call_id: str, track: Track) -> list[AudioChunk]:
        rows = self._read(
            "SELECT seq, t_ms, first_frame, payload FROM audio"
            " WHERE call_id = ? AND track = ? ORDER BY seq",
            (call_id, track),
        )
        return [
            AudioChunk(call_id, track, seq, t_ms, first, bytes(p)) for seq, t_ms, first, p in rows
        ]


def _call_record(row: Iterable[Any]) -> CallRecord:
    values = dict(zip((f.name for f in fields(CallRecord)), row, strict=True))
    values["custom_parameters"] = json.loads(values["custom_parameters"])
    return CallRecord(**values)
