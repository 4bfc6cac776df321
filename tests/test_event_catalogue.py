"""The catalogue of event kinds: well formed, complete for the corpus of recorded calls
(replays/ and the example machines' calls), and the logs refuse a kind it lacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from recorded_calls import record_calls

from fsm_voice.call.handle import CallHandle
from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.catalogue import (
    PayloadField,
    UnknownEventKindError,
    catalogue,
    check_kind,
    declaration,
    payload_problems,
)
from fsm_voice.eventlog.catalogue_docs import (
    README_END,
    README_START,
    render_kinds_by_source,
    render_reference,
    replace_kinds_table,
)
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import SOURCES, CallRecord, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.eventlog.upcast import upcast
from fsm_voice.testing import in_process_call

PAST_TENSE_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def test_every_declaration_is_well_formed() -> None:
    kinds = catalogue()
    assert len(kinds) > 100
    for declared in kinds:
        assert PAST_TENSE_SNAKE.match(declared.kind), declared.kind
        assert declared.sources and set(declared.sources) <= set(SOURCES), declared.kind
        assert declared.meaning and "\n" not in declared.meaning, declared.kind
        # A changed payload has a version above 1; its older forms are read through
        # upcasters (tests/test_upcast.py: each reaches the current declaration).
        assert declared.v >= 1, declared.kind
        names = [f.name for f in declared.fields]
        assert len(names) == len(set(names)), declared.kind


def test_a_kind_is_looked_up_by_its_source() -> None:
    call = declaration("call", "state_entered")
    stt = declaration("stt", "transcript_committed")
    assert call is not None and stt is not None
    # One naming for every machine's move: one declaration, four sources (v2).
    assert [f.name for f in call.fields] == ["machine", "state", "from", "on", "detail", "provider"]
    assert (
        call is declaration("conversation", "state_entered") is declaration("stt", "state_entered")
    )
    assert declaration("transport", "state_entered") is None
    assert declaration("stt", "provider_state_entered") is None  # v1's name: read via upcast
    both = declaration("transport", "protocol_violation")
    assert both is not None and both is declaration("call", "protocol_violation")


def test_check_kind_names_the_kind_and_where_it_is_declared() -> None:
    check_kind("stt", "transcript_committed")
    with pytest.raises(UnknownEventKindError, match=r"'tts'.*declared for stt"):
        check_kind("tts", "transcript_committed")
    with pytest.raises(UnknownEventKindError, match="'thing_happened' from 'runtime'"):
        check_kind("runtime", "thing_happened")


def test_field_specs() -> None:
    nullable = PayloadField.parse("confidence", "float|None")
    assert nullable.required and nullable.accepts(None) and nullable.accepts(0.5)
    assert nullable.accepts(1)  # JSON keeps no 1.0 apart from 1
    optional = PayloadField.parse("start_ms", "int?")
    assert not optional.required and optional.spec == "int?"
    assert not optional.accepts(True)  # a bool is no int here
    with pytest.raises(ValueError, match="unknown type"):
        PayloadField.parse("x", "integer")


def test_payload_problems() -> None:
    def event(data: dict[str, object], v: int = 1) -> EventRecord:
        return EventRecord("c1", 0, 0, 0, "transport", "mark_sent", data, v)

    assert payload_problems(event({"mark_id": 1, "name": "m"})) == []
    assert payload_problems(event({"mark_id": "1", "name": "m", "x": 1}, v=2)) == [
        "transport mark_sent: v 2, declared 1",
        "transport mark_sent: field 'mark_id' is str, declared int",
        "transport mark_sent: undeclared field(s) ['x']",
    ]
    assert payload_problems(event({"name": "m"})) == [
        "transport mark_sent: required field 'mark_id' is missing"
    ]


# --- the corpus: every kind recorded is declared, with the payload it declares ---

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = sorted((ROOT / "replays").glob("*/events.jsonl"))


def _recorded_events(path: Path) -> list[EventRecord]:
    """The file's events as every reader gets them: upcast to the current versions (the
    corpus stays as it was recorded)."""
    call_id = path.parent.name
    return [
        upcast(
            EventRecord(call_id, e["seq"], e["t_ms"], 0, e["source"], e["kind"], e["data"], e["v"])
        )
        for e in map(json.loads, path.read_text().splitlines())
    ]


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.parent.name)
def test_every_kind_in_the_replay_corpus_is_declared_with_its_payload(recording: Path) -> None:
    problems = {p for event in _recorded_events(recording) for p in payload_problems(event)}
    assert sorted(problems) == []


def test_the_replay_corpus_is_there() -> None:
    assert len(RECORDINGS) >= 10


def test_calls_recorded_by_the_example_machines_match_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    record_calls(path)
    with SqliteEventLog(path) as log:
        events = [e for call in log.calls() for e in log.events(call.call_id)]
    assert len({e.kind for e in events}) > 40
    # The SQLite log refuses an undeclared kind quietly (the call goes on): say so here.
    assert [e.data for e in events if e.kind == "log_write_failed"] == []
    assert sorted({p for event in events for p in payload_problems(event)}) == []


# --- the logs refuse a kind the catalogue does not declare ---


def _made_up(call_id: str, seq: int) -> EventRecord:
    return EventRecord(call_id, seq, 0, 0, "runtime", "thing_happened", {})


def _declared(call_id: str, seq: int) -> EventRecord:
    return EventRecord(call_id, seq, 0, 0, "runtime", "socket_opened", {})


def test_the_memory_log_raises_at_append() -> None:
    with MemoryEventLog() as log:
        with pytest.raises(UnknownEventKindError, match="'thing_happened' from 'runtime'"):
            log.append(_made_up("c1", 0))
        log.append(_declared("c1", 1))
        assert [e.seq for e in log.events("c1")] == [1]


@pytest.mark.parametrize("make", ["memory", "sqlite"])
def test_refused_like_a_bad_row_told_to_its_call_only(make: str, tmp_path: Path) -> None:
    log: MemoryEventLog | SqliteEventLog = (
        MemoryEventLog(kinds="refuse") if make == "memory" else SqliteEventLog(tmp_path / "c.db")
    )
    with log:
        log.append(_declared("c1", 0))
        log.append(_made_up("c1", 1))
        log.append(_declared("c1", 2))
        log.append(_declared("c2", 0))
        with pytest.raises(EventLogError, match="could not write event 'c1' seq 1: event kind"):
            log.flush_sync()
        assert [e.seq for e in log.events("c1")] == [0, 2]  # the good rows are kept
        assert [e.seq for e in log.events("c2")] == [0]


def test_kinds_off_keeps_any_kind(tmp_path: Path) -> None:
    for log in (MemoryEventLog(kinds="off"), SqliteEventLog(tmp_path / "c.db", kinds="off")):
        with log:
            log.append(_made_up("c1", 0))
            log.flush_sync()
            assert [e.kind for e in log.events("c1")] == ["thing_happened"]


def test_an_imported_call_with_an_undeclared_kind_is_not_written(tmp_path: Path) -> None:
    with SqliteEventLog(tmp_path / "c.db") as log:
        with pytest.raises(UnknownEventKindError):
            log.write_call(CallRecord("c1", 0), [_declared("c1", 0), _made_up("c1", 1)], [])
        assert log.calls() == []


@pytest.mark.anyio
async def test_a_live_call_logging_an_undeclared_kind_goes_on(tmp_path: Path) -> None:
    async def agent(call: CallHandle) -> None:
        call.record("runtime", "thing_happened", {})  # a kind nobody declared
        await call.hangup("done")

    with SqliteEventLog(tmp_path / "calls.db") as log:
        async with in_process_call(agent, log=log) as c:
            await c.wait_ended()
        await c.runtime.finished.wait()
        events = log.events(c.runtime.call_id)
    kinds = [e.kind for e in events]
    assert "thing_happened" not in kinds and kinds[-1] == "log_write_failed"
    assert "thing_happened" in events[-1].data["error"]
    assert "call_ended" in kinds


# --- the README's table of kinds is generated from the catalogue ---


def test_the_readmes_table_of_kinds_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(README_START) == 1 and readme.count(README_END) == 1
    table = readme.split(README_START, 1)[1].split(README_END, 1)[0]
    assert table == "\n" + render_kinds_by_source(), "run scripts/event_catalogue.py"


def test_every_declared_kind_is_in_the_table_under_each_of_its_sources() -> None:
    rows: dict[str, list[str]] = {}
    for line in render_kinds_by_source().splitlines()[2:]:
        _, source, names, _ = line.split("|")
        rows[source.strip(" `")] = [name.strip(" `") for name in names.split(",")]
    for declared in catalogue():
        for source in declared.sources:
            assert declared.kind in rows[source], (source, declared.kind)


def test_the_generator_replaces_only_the_block_and_needs_the_markers() -> None:
    text = f"before\n{README_START}\n| stale |\n{README_END}\nafter\n"
    assert replace_kinds_table(text, "| new |\n") == (
        f"before\n{README_START}\n| new |\n{README_END}\nafter\n"
    )
    with pytest.raises(ValueError, match="event-kinds"):
        replace_kinds_table("no markers here")


def test_the_reference_has_a_row_per_declaration_with_its_fields() -> None:
    reference = render_reference().splitlines()
    assert len(reference) == 2 + len(catalogue())
    assert "| `mark_sent` | transport | 1 | `mark_id`: int, `name`: str |" in "\n".join(reference)
    assert all(row.count("|") == 6 for row in reference)  # no "|" inside a cell
