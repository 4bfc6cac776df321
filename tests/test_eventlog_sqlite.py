"""What only the SQLite log promises: the file's layout, batching, WAL, crash safety."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog import (
    SCHEMA_VERSION,
    AudioChunk,
    CallRecord,
    EventRecord,
    SqliteEventLog,
    open_log,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def event(seq: int, call_id: str = "c1", data: dict[str, object] | None = None) -> EventRecord:
    return EventRecord(
        call_id, seq, seq * 20, T0 + seq, "runtime", "tick_counted", data or {"n": seq}
    )


def plain(path: Path) -> closing[sqlite3.Connection]:
    """A connection as a user's own tool would open it."""
    return closing(sqlite3.connect(path))


class Trace:
    """Collects the statements the writer starts."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, sql: str) -> None:
        self.statements.append(sql)

    def commits(self) -> int:
        return self.statements.count("COMMIT")


class Commits:
    """Counts the rows the writer has committed, and lets a test wait for a total."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._rows = 0
        self._changed = threading.Condition()

    def __call__(self, rows: int) -> None:
        with self._changed:
            self.sizes.append(rows)
            self._rows += rows
            self._changed.notify_all()

    def wait_until(self, total_rows: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._rows >= total_rows, timeout=30)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "calls.db"


@pytest.fixture
def log(db_path: Path) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(db_path, kinds="off") as made:
        yield made


def test_wal_and_synchronous_normal(db_path: Path) -> None:
    trace = Trace()
    with SqliteEventLog(db_path, kinds="off", trace=trace):
        pass
    assert "PRAGMA journal_mode=WAL" in trace.statements
    assert "PRAGMA synchronous=NORMAL" in trace.statements
    assert "PRAGMA wal_autocheckpoint=10000" in trace.statements
    with plain(db_path) as conn:
        # journal_mode=WAL is stored in the file; synchronous is per connection,
        # hence the trace above.
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_file_is_plain_tables_a_person_can_read(log: SqliteEventLog, db_path: Path) -> None:
    log.open_call(CallRecord("c1", started_wall_ms=T0 + 5, custom_parameters={"b": "2", "a": "1"}))
    log.append(EventRecord("c1", 0, 0, T0 + 1234, "stt", "heard", {"z": 1, "a": ["é", None]}))
    log.append_audio(AudioChunk("c1", "caller", 0, 0, 3, b"\xff" * 200))
    log.update_call("c1", ended_wall_ms=T0 + 60_000)
    log.flush_sync()
    with plain(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"calls", "events", "audio"} <= tables
        indexes = conn.execute("SELECT sql FROM sqlite_master WHERE type='index' AND sql NOT NULL")
        assert any(re.search(r'ON "events" \("kind"\)', sql) for (sql,) in indexes)
        row = conn.execute("SELECT * FROM events").fetchone()
        assert row == (
            "c1",
            0,
            0,
            "2026-01-01T00:00:01.234Z",
            "stt",
            "heard",
            '{"a":["é",null],"z":1}',
            1,
        )
        calls = conn.execute(
            "SELECT started_at, started_wall_ms, ended_at, custom_parameters FROM calls"
        ).fetchall()
        assert calls == [
            ("2026-01-01T00:00:00.005Z", T0 + 5, "2026-01-01T00:01:00.000Z", '{"a":"1","b":"2"}')
        ]
        audio = conn.execute("SELECT track, first_frame, frame_count, payload FROM audio")
        assert audio.fetchall() == [("caller", 3, 2, b"\xff" * 200)]
        pk = [r[1] for r in conn.execute("PRAGMA table_info(events)") if r[5]]
        assert pk == ["call_id", "seq"]


def test_reopening_keeps_what_was_written(db_path: Path) -> None:
    with SqliteEventLog(db_path, kinds="off") as first:
        first.open_call(CallRecord("c1", started_wall_ms=T0))
        first.append(event(0))
    with open_log(db_path, kinds="off") as again:
        assert [c.call_id for c in again.calls()] == ["c1"]
        assert again.events("c1") == [event(0)]
        again.append(event(1))
    with open_log(db_path) as third:
        assert [e.seq for e in third.events("c1")] == [0, 1]


def test_batching_commits_far_fewer_times_than_appends(db_path: Path) -> None:
    trace = Trace()
    with SqliteEventLog(db_path, kinds="off", trace=trace) as log:
        log.open_call(CallRecord("c1", started_wall_ms=T0))
        log.flush_sync()
        before = trace.commits()
        for seq in range(2000):
            log.append(event(seq))
        log.flush_sync()
        commits = trace.commits() - before
        assert len(log.events("c1")) == 2000
    assert 1 <= commits <= 100, commits  # typically 2 or 3


def test_batch_rows_starts_a_commit_without_waiting_for_the_tick(db_path: Path) -> None:
    commits = Commits()
    # A tick far longer than any test: only batch_rows can make this commit.
    with SqliteEventLog(
        db_path, kinds="off", batch_ms=3_600_000, batch_rows=100, on_commit=commits
    ) as log:
        for seq in range(1000):
            log.append(event(seq))
        assert commits.wait_until(1000)
        with plain(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (1000,)
    assert max(commits.sizes) <= 100  # batch_rows also caps a transaction


def test_the_tick_commits_without_a_flush(db_path: Path) -> None:
    commits = Commits()
    with SqliteEventLog(
        db_path, kinds="off", batch_ms=5, batch_rows=1_000_000, on_commit=commits
    ) as log:
        log.append(event(0))
        assert commits.wait_until(1)
        assert log.events("c1") == [event(0)]


def test_another_process_reads_while_the_writer_is_mid_transaction(db_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()
    armed = threading.Event()

    def hold_inside_transaction(sql: str) -> None:
        if armed.is_set() and sql.startswith("INSERT INTO events"):
            armed.clear()
            entered.set()
            release.wait()

    count_events = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], timeout=0)\n"
        "print(conn.execute('SELECT count(*) FROM events').fetchone()[0])\n"
        "conn.close()\n"
    )

    def count_in_other_process() -> int:
        done = subprocess.run(
            [sys.executable, "-c", count_events, str(db_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(done.stdout)

    with SqliteEventLog(db_path, kinds="off", trace=hold_inside_transaction) as log:
        for seq in range(10):
            log.append(event(seq))
        log.flush_sync()
        armed.set()
        for seq in range(10, 20):
            log.append(event(seq))
        flusher = threading.Thread(target=log.flush_sync)
        flusher.start()
        try:
            assert entered.wait(timeout=30)  # the writer holds an open write transaction
            assert count_in_other_process() == 10
        finally:
            release.set()
            flusher.join()
        assert count_in_other_process() == 20


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, threading
    from fsm_voice.eventlog import CallRecord, EventRecord, SqliteEventLog

    log = SqliteEventLog(sys.argv[1], kinds="off")

    def write(call_id, flush_every, report):
        log.open_call(CallRecord(call_id, started_wall_ms=0))
        seq = 0
        while True:
            data = {"n": seq, "pad": "x" * 100}
            log.append(EventRecord(call_id, seq, seq, seq, "runtime", "tick_counted", data))
            seq += 1
            if seq % flush_every == 0:
                log.flush_sync()
                if report:
                    print(seq - 1, flush=True)

    # A second writer keeps the writer thread busy, so the kill lands mid-batch.
    threading.Thread(target=write, args=("busy", 5000, False), daemon=True).start()
    write("c1", 100, True)
    """
)


@pytest.mark.parametrize("lines_before_kill", [3, 20])
def test_sigkill_loses_at_most_the_unflushed_tail(db_path: Path, lines_before_kill: int) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        last_flushed = -1
        try:
            for _ in range(lines_before_kill):
                line = proc.stdout.readline()
                assert line, f"writer died: {proc.stderr.read()}"
                last_flushed = int(line)
        finally:
            proc.kill()  # SIGKILL: no cleanup
            proc.wait()
    assert proc.returncode == -9
    with plain(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        seqs = {
            call_id: [
                s
                for (s,) in conn.execute(
                    "SELECT seq FROM events WHERE call_id = ? ORDER BY seq", (call_id,)
                )
            ]
            for call_id in ("c1", "busy")
        }
    assert seqs["c1"][: last_flushed + 1] == list(range(last_flushed + 1))
    # Batches commit in order, so what survives of each call is a prefix: no holes.
    for survived in seqs.values():
        assert survived == list(range(len(survived)))


def test_a_missing_directory_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "calls.db"
    with pytest.raises(EventLogError, match=re.escape(str(path))):
        SqliteEventLog(path)


def test_a_file_that_is_not_a_database_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(EventLogError, match=re.escape(str(path))) as info:
        SqliteEventLog(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_text().startswith("these are my notes")  # left alone


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match=re.escape(str(tmp_path))):
        SqliteEventLog(tmp_path)


def test_a_file_from_a_newer_version_is_refused(db_path: Path) -> None:
    with plain(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(EventLogError, match="newer"):
        SqliteEventLog(db_path, kinds="off")


def test_open_log_wants_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="no event log"):
        open_log(tmp_path / "missing.db")
    with open_log(tmp_path / "new.db", create=True) as log:
        assert log.calls() == []


def test_a_write_error_names_the_path_and_later_batches_still_commit(
    log: SqliteEventLog, db_path: Path
) -> None:
    log.append(event(0))
    log.flush_sync()
    log.append(event(0, data={"again": True}))  # (call_id, seq) already taken
    log.append(event(1))
    with pytest.raises(EventLogError) as info:
        log.flush_sync()
    message = str(info.value)
    assert str(db_path) in message and "UNIQUE constraint failed" in message
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    for seq in range(2, 50):
        log.append(event(seq))
    log.flush_sync()
    assert [e.seq for e in log.events("c1")] == list(range(50))
    assert log.events("c1")[0].data == {"n": 0}


def test_an_unclosed_log_still_commits_when_collected(db_path: Path) -> None:
    log = SqliteEventLog(db_path, kinds="off", batch_ms=3_600_000)
    log.append(event(0))
    del log  # the finalizer stops the writer, which commits first
    with plain(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)


class Boom(BaseException):
    pass


def test_a_writer_thread_that_dies_fails_flushes_instead_of_hanging(db_path: Path) -> None:
    def explode(rows: int) -> None:
        raise Boom("hook exploded")

    log = SqliteEventLog(db_path, kinds="off", on_commit=explode)
    log.append(event(0))
    with pytest.raises(EventLogError, match=r"writer thread stopped.*hook exploded"):
        log.flush_sync()
    with pytest.raises(EventLogError, match="writer thread stopped"):
        log.append(event(1))
    assert log.events("c1") == [event(0)]  # committed before the hook ran; reads still work
    log.close()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"mark_id": 5, "name": "echo-10", "outcome": "played"},
        {"b": 1, "a": [1, 2.5, {"z": None, "y": True}], "t": ("x", "y")},
        {"text": 'é \u2028 "quoted" \\ \x01'},
        {3: "int key", 1: 2},
    ],
)
def test_the_writers_json_is_the_sorted_compact_json_of_the_schema(data: dict[str, object]) -> None:
    from fsm_voice.eventlog.sqlite_schema import _JSON, _encode_data

    assert _encode_data(data) == _JSON.encode(data)


@pytest.mark.parametrize("data", [{"x": float("nan")}, {"x": object()}])
def test_the_writers_json_refuses_what_the_schema_json_refuses(data: dict[str, object]) -> None:
    from fsm_voice.eventlog.sqlite_schema import _encode_data

    with pytest.raises((ValueError, TypeError)):
        _encode_data(data)
