"""The catalogue of event kinds: well formed, complete for the corpus of recorded calls
(replays/ and the example machines' calls), and the logs refuse a kind it lacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from recorded_calls import record_calls

from fsm_voice.eventlog.catalogue import (
    PayloadField,
    UnknownEventKindError,
    catalogue,
    check_kind,
    declaration,
    payload_problems,
)
from fsm_voice.eventlog.records import SOURCES, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog

PAST_TENSE_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def test_every_declaration_is_well_formed() -> None:
    kinds = catalogue()
    assert len(kinds) > 100
    for declared in kinds:
        assert PAST_TENSE_SNAKE.match(declared.kind), declared.kind
        assert declared.sources and set(declared.sources) <= set(SOURCES), declared.kind
        assert declared.meaning and "\n" not in declared.meaning, declared.kind
        assert declared.v == 1, declared.kind  # no payload has changed yet
        names = [f.name for f in declared.fields]
        assert len(names) == len(set(names)), declared.kind


def test_a_kind_is_looked_up_by_its_source() -> None:
    call = declaration("call", "state_entered")
    conversation = declaration("conversation", "state_entered")
    assert call is not None and conversation is not None
    assert [f.name for f in call.fields] == ["state", "from", "on"]
    assert [f.name for f in conversation.fields] == ["state", "previous", "event"]
    assert declaration("transport", "state_entered") is None
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
    call_id = path.parent.name
    return [
        EventRecord(call_id, e["seq"], e["t_ms"], 0, e["source"], e["kind"], e["data"], e["v"])
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
    assert sorted({p for event in events for p in payload_problems(event)}) == []
