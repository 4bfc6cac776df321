"""Refused upgrades in the event log: one row per minute and reason, in every log, in
old logs (schema version 1) too, and in `fsm-voice stats`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fsm_voice.cli import main
from fsm_voice.eventlog import EventLog, MemoryEventLog, SqliteEventLog
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.records import CallRecord, EventRecord, RefusalCount
from fsm_voice.eventlog.sqlite import SCHEMA_VERSION

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a minute's start
MINUTE = 60_000

IMPLEMENTATIONS: dict[str, Callable[[Path], EventLog]] = {
    "memory": lambda _: MemoryEventLog(),
    # Two rows a batch: the counts cross batches, as in a flood.
    "sqlite": lambda tmp_path: SqliteEventLog(tmp_path / "calls.db", batch_rows=2),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    made = IMPLEMENTATIONS[request.param](tmp_path)
    yield made
    made.close()


def test_refusals_are_counted_per_minute_and_reason(log: EventLog) -> None:
    for ms in (0, 1, 30_000, MINUTE - 1):
        log.count_refusal(T0 + ms, "signature_invalid", 403)
    log.count_refusal(T0 + 5, "too_many_calls", 503)
    log.count_refusal(T0 + MINUTE, "signature_invalid", 403)
    log.flush_sync()
    assert list(log.refusals()) == [
        RefusalCount(T0, "signature_invalid", 403, 4),
        RefusalCount(T0, "too_many_calls", 503, 1),
        RefusalCount(T0 + MINUTE, "signature_invalid", 403, 1),
    ]
    assert list(log.calls()) == []  # none of them is a call


def test_a_flood_costs_a_row_a_minute(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "calls.db") as log:
        for i in range(5_000):
            log.count_refusal(T0 + i, "signature_missing", 403)
        log.flush_sync()
    with sqlite3.connect(tmp_path / "calls.db") as conn:
        rows = conn.execute("SELECT minute, reason, status, count FROM refusals").fetchall()
    assert rows == [("2026-01-01T00:00:00.000Z", "signature_missing", 403, 5_000)]


def version_1_log(path: Path) -> None:
    """A log as fsm_voice wrote it before `refusals`: a refused upgrade was a call."""
    with SqliteEventLog(path) as log:
        log.open_call(CallRecord("FVold", T0, machine="echo"))
        data = {"reason": "signature_invalid", "status": 403, "path": "/voice", "client": None}
        log.append(EventRecord("FVold", 0, 0, T0, "runtime", "upgrade_rejected", data))
        log.update_call("FVold", end_reason="signature_invalid", outcome="rejected")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE refusals")
        conn.execute("PRAGMA user_version = 1")


def test_an_old_log_reads_as_before_and_gains_the_table_when_written(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_1_log(path)
    with LogSet([path]) as logs:  # read-only: nothing is migrated
        assert logs.refusals() == []
        assert [(c.call_id, c.outcome) for c in logs.calls()] == [("FVold", "rejected")]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    with SqliteEventLog(path) as log:  # a writer migrates it
        log.count_refusal(T0, "signature_missing", 403)
        log.flush_sync()
        assert log.refusals() == [RefusalCount(T0, "signature_missing", 403, 1)]
        [old] = log.calls()
        assert (old.end_reason, old.outcome) == ("signature_invalid", "rejected")
        assert [e.kind for e in log.events("FVold")] == ["upgrade_rejected"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (2,)


def test_stats_shows_refused_upgrades_across_logs_old_and_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version_1_log(tmp_path / "a.db")
    with SqliteEventLog(tmp_path / "b.db") as log:
        for ms in (0, MINUTE, MINUTE + 1):
            log.count_refusal(T0 + ms, "signature_invalid", 403)
        log.count_refusal(T0 + 2 * MINUTE, "too_many_calls", 503)
    with SqliteEventLog(tmp_path / "c.db") as log:
        log.count_refusal(T0 + 3 * MINUTE, "signature_invalid", 403)
    assert main(["stats", "--db", str(tmp_path / "*.db"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["refused_upgrades"] == [
        {
            "reason": "signature_invalid",
            "status": 403,
            "count": 4,
            "first_minute_wall_ms": T0,
            "last_minute_wall_ms": T0 + 3 * MINUTE,
        },
        {
            "reason": "too_many_calls",
            "status": 503,
            "count": 1,
            "first_minute_wall_ms": T0 + 2 * MINUTE,
            "last_minute_wall_ms": T0 + 2 * MINUTE,
        },
    ]
    assert main(["stats", "--db", str(tmp_path / "*.db")]) == 0
    text = capsys.readouterr().out
    assert "5 upgrade(s) refused before a call" in text
    assert "signature_invalid" in text and "2026-01-01 00:03Z" in text
