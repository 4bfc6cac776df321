"""Several event-log files read as one, read-only: the query tools' view of the logs.

Each server process writes its own SQLite file (DESIGN.md "Scale past one machine"),
so `fsm-voice calls --db 'logs/*.db'` lists the calls of all of them and reads each
call's events and audio from the file that holds it. Files are opened with
`mode=ro`: a query tool must never create, migrate or lock a live log for writing.
"""

from __future__ import annotations

import glob
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from fsm_voice.errors import EventLogError
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
    _call_record,
    read_events,
    select_events,
)

__all__ = ["CallReader", "LogSet", "expand_paths"]


class CallReader(Protocol):
    """What the query tools read of one call: a `LogSet`, or any `EventLog`."""

    def call(self, call_id: str) -> CallRecord | None: ...

    def events(
        self, call_id: str, *, kind: str | None = None, source: str | None = None
    ) -> Sequence[EventRecord]: ...

    def audio(self, call_id: str, track: Track) -> Sequence[AudioChunk]: ...


def expand_paths(patterns: Iterable[str | Path]) -> list[Path]:
    """Paths and globs → existing files, in the order given, each once."""
    found: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches or not all(Path(m).is_file() for m in matches):
            raise EventLogError(f"no event log at {text}")
        found.extend(Path(m) for m in matches if Path(m) not in found)
    return found


class LogSet:
    """Read-only union of event-log files: calls from all, a call's data from its own."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = expand_paths(paths)
        self._conns: list[sqlite3.Connection] = []
        try:
            for path in self.paths:
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self._conns.append(sqlite3.connect(uri, uri=True, check_same_thread=False))
        except sqlite3.Error as e:
            self.close()
            raise EventLogError(f"cannot open event log {path}: {e}") from e
        self._home: dict[str, sqlite3.Connection] = {}

    def __enter__(self) -> LogSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def _run(self, conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise EventLogError(f"could not read the event log: {e}") from e

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """`sql` run on every file, the rows concatenated (aggregate across files yourself)."""
        return [row for conn in self._conns for row in self._run(conn, sql, params)]

    # --- calls ---

    def calls(self) -> list[CallRecord]:
        """Every call of every file, oldest first."""
        sql = f"SELECT {_CALL_COLUMNS} FROM calls"
        records = [_call_record(row) for row in self.query(sql)]
        return sorted(records, key=lambda c: (c.started_wall_ms, c.call_id))

    def refusals(self) -> list[RefusalCount]:
        """Refused requests per minute and reason, summed across files, oldest first.

        A file from before schema version 2 has no `refusals` table (its refused
        upgrades are `calls` rows with outcome `rejected`): it adds nothing here."""
        counts: dict[tuple[int, str], RefusalCount] = {}
        has_table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refusals'"
        for conn in self._conns:
            if not self._run(conn, has_table, ()):
                continue
            for row in self._run(conn, _SELECT_REFUSALS, ()):
                r = RefusalCount(*row)
                before = counts.get((r.minute_wall_ms, r.reason))
                count = r.count + (before.count if before is not None else 0)
                counts[(r.minute_wall_ms, r.reason)] = RefusalCount(
                    r.minute_wall_ms, r.reason, r.status, count
                )
        return [counts[key] for key in sorted(counts)]

    def resolve(self, call_id: str) -> str:
        """The full call id for `call_id` or a unique prefix of one (as git does for commits)."""
        if self._lookup(call_id) is not None:
            return call_id
        like = call_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql = "SELECT call_id FROM calls WHERE call_id LIKE ? ESCAPE '\\' LIMIT 2"
        found = {row[0] for row in self.query(sql, (like,))}
        if len(found) == 1:
            return str(found.pop())
        files = ", ".join(str(p) for p in self.paths)
        if not found:
            raise EventLogError(f"no call {call_id!r} in {files}")
        raise EventLogError(f"{call_id!r} names more than one call in {files}")

    def _lookup(self, call_id: str) -> sqlite3.Connection | None:
        conn = self._home.get(call_id)
        if conn is None:
            for candidate in self._conns:
                sql = "SELECT 1 FROM calls WHERE call_id = ?"
                if self._run(candidate, sql, (call_id,)):
                    conn = self._home[call_id] = candidate
                    break
        return conn

    def _conn(self, call_id: str) -> sqlite3.Connection:
        conn = self._lookup(call_id)
        if conn is None:
            raise EventLogError(f"no call {call_id!r} in {', '.join(map(str, self.paths))}")
        return conn

    def call(self, call_id: str) -> CallRecord | None:
        conn = self._lookup(call_id)
        if conn is None:
            return None
        sql = f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?"
        return _call_record(self._run(conn, sql, (call_id,))[0])

    # --- one call's data ---

    def events(
        self, call_id: str, *, kind: str | None = None, source: str | None = None
    ) -> list[EventRecord]:
        """A call's events in seq order, optionally only one kind and/or source."""
        sql, params = select_events(call_id, kind, source)
        return read_events(self._run(self._conn(call_id), sql, params), kind, source)

    def audio(self, call_id: str, track: Track) -> list[AudioChunk]:
        """A call's chunks of one track in seq order."""
        sql = (
            "SELECT seq, t_ms, first_frame, payload FROM audio"
            " WHERE call_id = ? AND track = ? ORDER BY seq"
        )
        rows = self._run(self._conn(call_id), sql, (call_id, track))
        return [AudioChunk(call_id, track, s, t, f, bytes(p)) for s, t, f, p in rows]
