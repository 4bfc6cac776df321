"""Upcasters: events written by an older fsm_voice read back as the catalogue declares
them now, on every read path, with the stored rows and files left as they were."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from fsm_voice.cli import main
from fsm_voice.eventlog.catalogue import declaration, payload_problems
from fsm_voice.eventlog.fixture import export_fixture, import_fixture, read_fixture
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.records import CallRecord, EventRecord, Source
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.eventlog.upcast import (
    UPCASTERS,
    Upcaster,
    UpcastError,
    current_v,
    stored_kinds,
    upcast,
)

ROOT = Path(__file__).resolve().parent.parent

# One old payload for each registered upcaster, as the older version wrote it.
OLD: dict[tuple[str, str, int], dict[str, Any]] = {
    ("call", "state_entered", 1): {"state": "speaking", "from": "listening", "on": "x"},
    ("conversation", "state_entered", 1): {
        "state": "greet",
        "previous": "__start__",
        "event": "__start__",
    },
    ("stt", "provider_state_entered", 1): {
        "state": "connecting",
        "detail": "offline",
        "provider": "offline",
    },
}


def _old(key: tuple[str, str, int], seq: int = 0) -> EventRecord:
    source, kind, v = key
    return EventRecord("c1", seq, seq * 10, seq * 10, cast(Source, source), kind, OLD[key], v)


def test_every_upcaster_has_an_old_sample() -> None:
    assert set(OLD) == set(UPCASTERS)


@pytest.mark.parametrize("key", sorted(UPCASTERS), ids=lambda k: f"{k[0]}-{k[1]}-v{k[2]}")
def test_every_upcaster_reaches_the_current_declaration(key: tuple[str, str, int]) -> None:
    event = upcast(_old(key))
    declared = declaration(event.source, event.kind)
    assert declared is not None and event.v == declared.v
    assert payload_problems(event) == []


def test_each_old_form_reads_as_state_entered_v2() -> None:
    call, conversation, stt = (upcast(_old(key)) for key in OLD)
    assert (call.kind, call.v, call.data) == (
        "state_entered",
        2,
        {"machine": "call", "state": "speaking", "from": "listening", "on": "x"},
    )
    assert (conversation.kind, conversation.v, conversation.data) == (
        "state_entered",
        2,
        {"machine": "conversation", "state": "greet", "from": "__start__", "on": "__start__"},
    )
    # v1 of the recogniser did not record the state it left nor what moved it.
    assert (stt.source, stt.kind, stt.v, stt.data) == (
        "stt",
        "state_entered",
        2,
        {
            "machine": "stt",
            "state": "connecting",
            "from": None,
            "on": None,
            "detail": "offline",
            "provider": "offline",
        },
    )


def test_a_current_or_undeclared_event_is_returned_as_it_is() -> None:
    current = upcast(_old(("call", "state_entered", 1)))
    assert upcast(current) is current
    made_up = EventRecord("c1", 0, 0, 0, "runtime", "thing_happened", {"x": 1})
    assert upcast(made_up) is made_up
    assert current_v("call", "state_entered") == 2 and current_v("runtime", "x") == 1


def test_upcasters_chain_until_current(monkeypatch: pytest.MonkeyPatch) -> None:
    def v0(kind: str, d: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
        # A made-up v0 that called the state `name`.
        return kind, {"state": d["name"], "detail": d["detail"]}, 1

    key = ("stt", "provider_state_entered", 0)
    monkeypatch.setitem(cast(dict[tuple[str, str, int], Upcaster], UPCASTERS), key, v0)
    old = EventRecord(
        "c1", 3, 0, 0, "stt", "provider_state_entered", {"name": "x", "detail": ""}, 0
    )
    event = upcast(old)
    assert (event.kind, event.v, event.seq) == ("state_entered", 2, 3)
    assert event.data == {"machine": "stt", "state": "x", "from": None, "on": None, "detail": ""}
    assert old.data == {"name": "x", "detail": ""}  # the stored event is not touched


def test_an_old_version_without_an_upcaster_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = cast(dict[tuple[str, str, int], Upcaster], UPCASTERS)
    monkeypatch.delitem(registry, ("conversation", "state_entered", 1))
    with pytest.raises(UpcastError, match=r"conversation 'state_entered' v1 has no upcaster to v2"):
        upcast(_old(("conversation", "state_entered", 1)))
    old_mark = EventRecord("c1", 0, 0, 0, "transport", "mark_sent", {}, 0)
    with pytest.raises(UpcastError, match=r"'mark_sent' v0"):
        upcast(old_mark)


def test_a_query_by_kind_finds_the_old_names() -> None:
    assert stored_kinds("state_entered") == ("state_entered", "provider_state_entered")
    assert stored_kinds("state_entered", "call") == ("state_entered",)
    assert stored_kinds("mark_sent") == ("mark_sent",)


# --- an SQLite file written by an older fsm_voice (rows inserted by raw SQL) ---


def _old_file(path: Path) -> None:
    with SqliteEventLog(path) as log:  # today's schema, no events
        log.open_call(CallRecord("c1", 0, machine="ivr"))
    rows = [_old(key, seq) for seq, key in enumerate(OLD)]
    rows.append(_old(("stt", "provider_state_entered", 1), 3))
    reconnecting = {"state": "reconnecting", "detail": "drop"}
    rows.append(EventRecord("c1", 4, 40, 40, "stt", "provider_state_entered", reconnecting))
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO events (call_id, seq, t_ms, wall_time, source, kind, data, v)"
            " VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z', ?, ?, ?, ?)",
            [(e.call_id, e.seq, e.t_ms, e.source, e.kind, json.dumps(e.data), e.v) for e in rows],
        )
    conn.close()


def _stored(path: Path) -> list[tuple[str, str, int]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT kind, data, v FROM events ORDER BY seq"))
    finally:
        conn.close()


def test_an_old_sqlite_file_reads_back_as_v2(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    before = _stored(path)
    with SqliteEventLog(path) as log:
        events = log.events("c1")
        stt = log.events("c1", kind="state_entered", source="stt")
        renamed = log.events("c1", kind="provider_state_entered")
        calls = log.events("c1", kind="state_entered", source="call")
    assert [(e.kind, e.v, e.data["machine"]) for e in events] == [
        ("state_entered", 2, "call"),
        ("state_entered", 2, "conversation"),
        ("state_entered", 2, "stt"),
        ("state_entered", 2, "stt"),
        ("state_entered", 2, "stt"),
    ]
    assert sorted({p for e in events for p in payload_problems(e)}) == []
    assert [e.seq for e in stt] == [2, 3, 4] and [e.seq for e in calls] == [0]
    assert renamed == []  # the old name is not a current kind: nothing reads as it
    with LogSet([str(path)]) as logs:
        assert logs.events("c1") == events
        assert [e.seq for e in logs.events("c1", kind="state_entered", source="stt")] == [2, 3, 4]
    assert _stored(path) == before  # read, never migrated


def test_fsm_voice_events_and_stats_read_an_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    assert main(["events", "c1", "--db", str(path), "--json"]) == 0
    lines = json.loads(capsys.readouterr().out)
    assert [(e["kind"], e["data"]["machine"]) for e in lines][:3] == [
        ("state_entered", "call"),
        ("state_entered", "conversation"),
        ("state_entered", "stt"),
    ]
    argv = ["events", "c1", "--db", str(path), "--kind", "state_entered", "--source", "stt"]
    assert main([*argv, "--json"]) == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)] == [2, 3, 4]
    # The stats' SQL reads rows as stored: the v1 name counts as a reconnect.
    assert main(["stats", "--db", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["reconnects"] == [{"machine": "ivr", "source": "stt", "count": 1}]


def test_the_memory_log_reads_old_events_upcast() -> None:
    with MemoryEventLog(kinds="off") as log:  # a copy of old data, not a writer
        for seq, key in enumerate(OLD):
            log.append(_old(key, seq))
        assert [e.data["machine"] for e in log.events("c1")] == ["call", "conversation", "stt"]
        assert [e.seq for e in log.events("c1", kind="state_entered", source="stt")] == [2]


# --- fixtures: the corpus is read as v2, its files stay as recorded ---


def test_an_old_fixture_reads_imports_and_exports_as_v2(tmp_path: Path) -> None:
    fixture = tmp_path / "fixture"
    shutil.copytree(ROOT / "replays" / "appointment-stt-reconnect", fixture)
    text = (fixture / "events.jsonl").read_text()
    assert '"provider_state_entered"' in text  # recorded before v2
    kinds = {(e.source, e.kind, e.v) for e in read_fixture(fixture).events}
    assert ("stt", "state_entered", 2) in kinds and ("conversation", "state_entered", 2) in kinds
    assert not any(kind == "provider_state_entered" for _, kind, _ in kinds)
    from fsm_voice.replay.recording import load_fixture  # replay's own fixture reader

    assert ("stt", "state_entered", 2) in {
        (e.source, e.kind, e.v) for e in load_fixture(fixture).events
    }
    loose = tmp_path / "loose"  # without its chunk index: replay reads it line by line
    shutil.copytree(fixture, loose)
    (loose / "audio.jsonl").unlink()
    assert not any(e.kind == "provider_state_entered" for e in load_fixture(loose).events)
    with SqliteEventLog(tmp_path / "calls.db") as log:
        call_id = import_fixture(fixture, log)
        log.flush_sync()
        out = tmp_path / "exported"
        export_fixture(log, call_id, out)
    exported = (out / "events.jsonl").read_text()
    assert '"provider_state_entered"' not in exported and '"machine": "stt"' in exported
    assert (fixture / "events.jsonl").read_text() == text
