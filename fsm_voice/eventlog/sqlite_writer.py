"""The SQLite event log's writer thread: its queue, batching, commits and fallback.

The thread owns the write connection and commits everything waiting in one
transaction per `batch_ms` tick, sooner when `batch_rows` rows wait or someone
flushes. A batch that fails is done again a row at a time, keeping every good row;
a `_Group` (a whole imported call) commits in a transaction of its own, all or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.failed_writes import FailedWrites
from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord, RefusalCount
from fsm_voice.eventlog.sqlite_schema import (
    _COUNT_REFUSALS,
    _INSERT_AUDIO,
    _INSERT_EVENT,
    _audio_row,
    _call_columns,
    _create_schema,
    _encode_data,
    _insert_audio,
    _iso_utc,
    _refusal_rows,
)


class _Update:
    __slots__ = ("call_id", "fields")

    def __init__(self, call_id: str, fields: dict[str, Any]) -> None:
        self.call_id = call_id
        self.fields = fields


class _Waiter:
    """Resolved by the writer once everything enqueued before it is committed.

    With a `call_id`, it hears only of that call's failed rows: a call's flush must
    never raise for another call's bad row. Without one, of every failure not yet told.
    """

    call_id: str | None = None

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
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[None],
        writer: _Writer,
        call_id: str | None = None,
    ) -> None:
        self._loop = loop
        self._future = future
        self._writer = writer
        self.call_id = call_id

    def done(self, error: EventLogError | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._resolve, error)
        except RuntimeError:  # the loop is closed: nobody awaits any more
            if error is not None:
                self._writer.keep_error(error, self.call_id)

    def _resolve(self, error: EventLogError | None) -> None:
        if self._future.done():  # cancelled: keep the error for the next flush
            if error is not None:
                self._writer.keep_error(error, self.call_id)
        elif error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(None)


class _Stop:
    pass


class _Group:
    """Rows that commit together in one transaction of their own, or not at all."""

    __slots__ = ("audio", "call", "events")

    def __init__(
        self, call: CallRecord, events: list[EventRecord], audio: list[AudioChunk]
    ) -> None:
        self.call = call
        self.events = events
        self.audio = audio


_Op = CallRecord | _Update | EventRecord | AudioChunk | _Group | RefusalCount | _Waiter | _Stop


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
        self._failed = FailedWrites()  # told to the flush of the call whose row failed
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
            op.done(self.take_error(op.call_id))

    def stop(self) -> EventLogError | None:
        """Commit what is pending, end the thread; the error not reported yet, if any."""
        waiter = _SyncWaiter()
        self.enqueue(waiter)
        self.enqueue(_Stop())
        error = waiter.wait()
        self._thread.join()
        return error or self.take_error()

    def keep_error(self, error: EventLogError, call_id: str | None = None) -> None:
        """Hold `error` for the next flush of `call_id` or of the whole log, or the close
        (the first one wins, others count)."""
        self._failed.keep(call_id, error)

    def take_error(self, call_id: str | None = None) -> EventLogError | None:
        """The failures not told yet as one error: `call_id`'s, or (None) everyone's."""
        return self._failed.take(call_id)

    def _record(self, what: str, cause: BaseException, call_id: str | None = None) -> None:
        """Keep a failure: a row's belongs to its call, a whole batch's to the log."""
        error = EventLogError(f"event log {self.path}: could not write {what}: {cause}")
        error.__cause__ = cause  # as `raise ... from cause` would
        self.keep_error(error, call_id)

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
        groups: list[_Group] = []
        refusals: list[RefusalCount] = []
        stop = False
        for op in batch:
            if isinstance(op, _Group):
                groups.append(op)
            elif isinstance(op, RefusalCount):
                refusals.append(op)
            elif isinstance(op, EventRecord):
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
            for group in groups:  # after the batch's other rows, before its waiters
                self._commit_group(conn, group)
            if refusals:
                self._count_refusals(conn, refusals)
        except BaseException:
            pending.extendleft(reversed(waiters))  # for _finish to answer
            raise
        for waiter in waiters:  # else an error waits for the next flush or close
            waiter.done(self.take_error(waiter.call_id))
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

    def _count_refusals(self, conn: sqlite3.Connection, refusals: list[RefusalCount]) -> None:
        """A batch's refusals as one upsert per minute and reason (a flood is a few rows)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_COUNT_REFUSALS, _refusal_rows(refusals))
            conn.execute("COMMIT")
        except Exception as e:
            _rollback(conn)
            self._record(f"{len(refusals)} refused request(s)' counts", e)

    def _commit_group(self, conn: sqlite3.Connection, group: _Group) -> None:
        rows = 1 + len(group.events) + len(group.audio)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._apply_call(conn, group.call)
            conn.executemany(_INSERT_EVENT, map(self._event_row, group.events))
            conn.executemany(_INSERT_AUDIO, map(_audio_row, group.audio))
            conn.execute("COMMIT")
        except Exception as e:
            _rollback(conn)  # no fallback row by row: the group is whole or absent
            self._record(f"call {group.call.call_id!r} ({rows} rows, none written)", e)
            return
        if self._on_commit is not None:
            try:
                self._on_commit(rows)
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
                self._try(f"call {call.call_id!r}", call.call_id, self._apply_call, conn, call)
            for event in events:
                what = f"event {event.call_id!r} seq {event.seq}"
                self._try(what, event.call_id, self._insert_event, conn, event)
            for chunk in audio:
                what = f"audio {chunk.call_id!r} {chunk.track} seq {chunk.seq}"
                self._try(what, chunk.call_id, _insert_audio, conn, chunk)
            conn.execute("COMMIT")
        except Exception as e:
            _rollback(conn)
            self._record(f"a batch of {len(calls) + len(events) + len(audio)} rows", e)
            return False
        return True

    def _try(
        self,
        what: str,
        call_id: str,
        write: Callable[[sqlite3.Connection, Any], object],
        conn: sqlite3.Connection,
        op: object,
    ) -> None:
        try:
            write(conn, op)
        except Exception as e:
            if not conn.in_transaction:  # SQLite rolled it all back (disk full, I/O error)
                raise
            self._record(what, e, call_id)

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
        return (e.call_id, e.seq, e.t_ms, wall_time, e.source, e.kind, _encode_data(e.data), e.v)


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (disk full, I/O error).
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
