"""The query commands (calls, events, stats, audio) and the README's SQL, on real calls.

The log is recorded by running the example machines end to end (recorded_calls.py);
each figure a command prints is checked against the events themselves.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from recorded_calls import ROOT, SCRIPTS, record_calls

from fsm_voice.audio.mulaw import decode
from fsm_voice.audio.wav import read_wav
from fsm_voice.cli import _parser, main
from fsm_voice.eventlog import CallRecord, EventRecord, SqliteEventLog
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.playback import agent_as_played
from fsm_voice.eventlog.records import AudioChunk

Ids = dict[str, str]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ids]:
    path = tmp_path_factory.mktemp("log") / "calls.db"
    return path, record_calls(path)


@pytest.fixture
def db(recorded: tuple[Path, Ids]) -> str:
    return str(recorded[0])


@pytest.fixture
def ids(recorded: tuple[Path, Ids]) -> Ids:
    return recorded[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def events_of(db: str, call_id: str) -> list[EventRecord]:
    with LogSet([db]) as logs:
        return logs.events(call_id)


# --- calls ---


def test_calls_json_has_one_row_per_call_with_the_counts_the_events_show(
    db: str, ids: Ids, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {r["call_id"]: r for r in json.loads(run(capsys, "calls", "--db", db, "--json"))}
    assert set(rows) == set(ids.values())
    happy = rows[ids["appointment-happy"]]
    assert (happy["machine"], happy["final_state"], happy["outcome"]) == (
        "appointment",
        "rescheduled",
        "completed",
    )
    assert (happy["turns"], happy["noinput"], happy["nomatch"]) == (3, 0, 0)
    assert happy["duration_ms"] > 20_000
    assert rows[ids["appointment-silent"]]["noinput"] == 3
    assert rows[ids["survey-nomatch"]]["nomatch"] == 2
    assert rows[ids["appointment-bargein"]]["bargeins"] == 1
    assert rows[ids["appointment-bargein"]]["final_state"] == "cancelled"
    for call_id in ids.values():  # turns = transcripts, counted independently
        events = events_of(db, call_id)
        assert rows[call_id]["turns"] == sum(e.kind == "transcript_committed" for e in events)


def test_calls_table_and_nl(db: str, ids: Ids, capsys: pytest.CaptureFixture[str]) -> None:
    table = run(capsys, "calls", "--db", db)
    assert f"{len(SCRIPTS)} call(s)" in table
    happy_line = next(line for line in table.splitlines() if ids["appointment-happy"] in line)
    assert "appointment" in happy_line and "rescheduled" in happy_line
    lines = run(capsys, "calls", "--db", db, "--nl").splitlines()
    assert [json.loads(line)["call_id"] for line in lines] == [ids[s] for s in SCRIPTS]


def test_several_files_and_globs_read_as_one(
    db: str, ids: Ids, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "b.db"
    more = record_calls(other, ("survey-happy",), first=len(SCRIPTS))
    both = json.loads(run(capsys, "calls", "--db", db, "--db", str(other), "--json"))
    assert {r["call_id"] for r in both} == set(ids.values()) | set(more.values())
    (tmp_path / "a.db").symlink_to(db)
    globbed = json.loads(run(capsys, "calls", "--db", str(tmp_path / "*.db"), "--json"))
    assert len(globbed) == len(SCRIPTS) + 1
    # a call's events come from its own file; a unique prefix names it
    prefix = more["survey-happy"][:-1]
    timeline = run(capsys, "events", prefix, "--db", db, "--db", str(other))
    assert "survey" in timeline and "conversation_ended" in timeline


def test_a_missing_file_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["calls", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no event log at" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()  # read-only: nothing created


# --- events ---


def test_events_timeline_shows_relative_times_and_payload_essentials(
    db: str, ids: Ids, capsys: pytest.CaptureFixture[str]
) -> None:
    call_id = ids["appointment-happy"]
    out = run(capsys, "events", call_id, "--db", db)
    transcripts = [e for e in events_of(db, call_id) if e.kind == "transcript_committed"]
    first = transcripts[0]
    line = next(x for x in out.splitlines() if f" {first.seq} " in x and "transcript" in x)
    assert f"{first.t_ms // 1000}.{first.t_ms % 1000:03d}" in line
    assert "“reschedule”" in line and "stt" in line
    assert "greet → pick_day on reschedule" in out
    assert "in rescheduled (rescheduled)" in out


def test_events_filters_and_json(db: str, ids: Ids, capsys: pytest.CaptureFixture[str]) -> None:
    call_id = ids["survey-nomatch"]
    rows = json.loads(
        run(capsys, "events", call_id, "--db", db, "--kind", "counter_changed", "--json")
    )
    assert [r["data"] for r in rows] == [
        {"counter": "nomatch", "value": 1},
        {"counter": "nomatch", "value": 2},
    ]
    lines = run(capsys, "events", call_id, "--db", db, "--source", "stt", "--nl").splitlines()
    expected = [e for e in events_of(db, call_id) if e.source == "stt"]
    assert [json.loads(x)["seq"] for x in lines] == [e.seq for e in expected]


def test_events_of_an_unknown_or_ambiguous_call(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "nope", "--db", db]) == 1
    assert "no call 'nope'" in capsys.readouterr().err
    assert main(["events", "FV", "--db", db]) == 1
    assert "more than one call" in capsys.readouterr().err


# --- stats ---


def _latencies(events: list[EventRecord]) -> list[int]:
    """The turn latency definition, independently of the SQL."""
    out, pending = [], None
    for e in events:
        if e.kind == "transcript_committed" and e.data["text"]:
            pending = int(e.data["end_ms"])
        elif e.kind == "first_audio_sent" and pending is not None:
            out.append(e.t_ms - pending)
            pending = None
    return out


def test_stats_match_the_events(db: str, ids: Ids, capsys: pytest.CaptureFixture[str]) -> None:
    stats = json.loads(run(capsys, "stats", "--db", db, "--json"))
    assert stats["calls"] == len(SCRIPTS)
    latencies = sorted(v for c in ids.values() for v in _latencies(events_of(db, c)))
    assert stats["turn_latency"]["turns"] == len(latencies) > 5
    assert stats["turn_latency"]["p50_ms"] == latencies[(len(latencies) + 1) // 2 - 1]
    assert stats["turn_latency"]["max_ms"] == latencies[-1]
    assert {"machine": "appointment", "state": "greet", "what": "noinput", "count": 3} in stats[
        "by_state"
    ]
    assert {"machine": "survey", "state": "q_solved", "what": "nomatch", "count": 2} in stats[
        "by_state"
    ]
    assert {"machine": "appointment", "state": "greet", "what": "bargein", "count": 1} in stats[
        "by_state"
    ]
    outcomes = {(o["machine"], o["final_state"]): o["calls"] for o in stats["outcomes"]}
    assert outcomes[("appointment", "rescheduled")] == 1
    assert outcomes[("survey", "thanks")] == 1
    assert sum(outcomes.values()) == len(SCRIPTS)
    assert stats["reconnects"] == []
    table = run(capsys, "stats", "--db", db)
    assert "turn latency" in table and "q_solved" in table and "provider reconnects: 0" in table


def test_stats_count_provider_reconnects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.db"
    with SqliteEventLog(path) as log:
        log.open_call(CallRecord("c1", 0, machine="ivr"))
        for seq, state in enumerate(["connecting", "streaming", "reconnecting", "streaming"]):
            data = {"machine": "stt", "state": state, "from": None, "on": None, "detail": ""}
            log.append(
                EventRecord("c1", seq, seq * 100, seq * 100, "stt", "state_entered", data, 2)
            )
    stats = json.loads(run(capsys, "stats", "--db", str(path), "--json"))
    assert stats["reconnects"] == [{"machine": "ivr", "source": "stt", "count": 1}]


# --- audio ---


def _voiced_ms(wav: Path, channel: int = 0) -> list[tuple[int, int]]:
    """Spans (ms) where the audio is not silence, 20 ms resolution, pauses < 200 ms bridged."""
    audio = read_wav(wav)
    if audio.encoding == "mulaw":
        pcm = decode(audio.data)
    else:
        pcm = np.frombuffer(audio.data, dtype="<i2").reshape(-1, audio.channels)[:, channel]
    level = [np.abs(pcm[i : i + 160].astype(np.int32)).mean() for i in range(0, len(pcm), 160)]
    spans: list[tuple[int, int]] = []
    for n, value in enumerate(level):
        if value < 100:
            continue
        start = n * 20
        if spans and start - spans[-1][1] <= 200:
            spans[-1] = (spans[-1][0], start + 20)
        else:
            spans.append((start, start + 20))
    return spans


def test_agent_audio_is_placed_when_played_and_cut_by_clear(
    db: str, ids: Ids, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_id = ids["appointment-bargein"]
    events = events_of(db, call_id)
    clear = next(e.t_ms for e in events if e.kind == "clear_sent")
    starts = [e.t_ms for e in events if e.kind == "first_audio_sent"]
    out = tmp_path / "agent.wav"
    assert "agent" in run(
        capsys, "audio", call_id, "--db", db, "--track", "agent", "--out", str(out)
    )
    spans = _voiced_ms(out)
    assert len(spans) == len(starts) == 3
    for (begin, _), sent in zip(spans, starts, strict=True):
        assert abs(begin - sent) <= 40  # starts when it left for the platform
    assert abs(spans[0][1] - clear) <= 20  # the greeting stops at the clear
    last_echo = max(e.t_ms for e in events if e.kind == "mark_echoed")
    assert abs(spans[-1][1] - last_echo) <= 40  # and the last prompt ends when it played


def test_caller_and_mixed_tracks(
    db: str, ids: Ids, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_id = ids["appointment-happy"]
    events = events_of(db, call_id)
    spoken = [
        (e.data["start_ms"], e.data["end_ms"]) for e in events if e.kind == "transcript_committed"
    ]
    caller = tmp_path / "caller.wav"
    run(capsys, "audio", call_id, "--db", db, "--track", "caller", "--out", str(caller))
    voiced = _voiced_ms(caller)
    assert len(voiced) == len(spoken) == 3
    for (begin, end), (start_ms, end_ms) in zip(voiced, spoken, strict=True):
        assert abs(begin - start_ms) <= 60 and abs(end - end_ms) <= 60
    stereo = tmp_path / "stereo.wav"
    run(capsys, "audio", call_id, "--db", db, "--stereo", "--out", str(stereo))
    assert read_wav(stereo).channels == 2
    assert _voiced_ms(stereo, channel=0) == voiced  # caller left
    mono = tmp_path / "mono.wav"
    run(capsys, "audio", call_id, "--db", db, "--track", "mixed", "--out", str(mono))
    assert len(read_wav(mono).data) == len(read_wav(stereo).data) // 2
    mixed = _voiced_ms(mono)
    agent = _voiced_ms(stereo, channel=1)
    for begin, end in voiced + agent:  # both voices are in the mix, where they were
        assert any(b <= begin + 20 and end - 20 <= e for b, e in mixed), (begin, end)


def test_a_chunk_holding_two_prompts_is_split_where_the_platform_went_idle() -> None:
    loud = bytes([0x00]) * 160  # μ-law 0x00 is full scale
    # One chunk of 10 frames sent at 0: 4 frames of prompt 1, then prompt 2 sent at 1000
    # (the recorder only cuts every 50 frames, so both prompts share the chunk).
    chunk = AudioChunk("c", "agent", 0, 0, 0, loud * 10)
    events = [
        EventRecord(
            "c", 0, 80, 0, "call", "state_entered", {"from": "awaiting_mark", "state": "listening"}
        ),
        EventRecord(
            "c", 1, 1000, 0, "call", "state_entered", {"from": "listening", "state": "speaking"}
        ),
    ]
    placed = agent_as_played([chunk], events)
    frames = [placed[i : i + 160] == loud for i in range(0, len(placed), 160)]
    assert frames == [True] * 4 + [False] * 46 + [True] * 6
    # a clear at 1050 ms drops what had not played yet, mid-frame
    clear = EventRecord("c", 2, 1050, 0, "transport", "clear_sent", {})
    cut = agent_as_played([chunk, AudioChunk("c", "agent", 1, 2000, 10, loud)], [*events, clear])
    assert cut[: 1050 * 8].count(loud[:1]) == 6 * 160 + 10 * 8  # 4 + 2 frames + half of one
    assert cut[1050 * 8 : 2000 * 8].count(loud[:1]) == 0
    assert cut[2000 * 8 :] == loud


# --- the README's SQL ---


def _readme_queries() -> dict[str, str]:
    # The README's "Querying the log" section lives in the log schema page now.
    readme = (ROOT / "docs" / "reference" / "log-schema.md").read_text()
    section = readme.split("## Querying the log", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    return {block.splitlines()[0].removeprefix("-- "): block for block in blocks}


Rows = list[tuple[Any, ...]]


def _check_outcomes(rows: Rows, ids: Ids, db: str) -> None:
    assert ("appointment", "completed", "rescheduled", 1) in rows
    assert ("survey", "completed", "thanks", 1) in rows
    assert sum(r[3] for r in rows) == len(SCRIPTS)


def _check_nomatch(rows: Rows, ids: Ids, db: str) -> None:
    assert rows == [(ids["survey-nomatch"], "survey", "q_solved")]


def _check_latency(rows: Rows, ids: Ids, db: str) -> None:
    by_machine = {r[0]: r for r in rows}
    for machine, (_, turns, avg_ms, max_ms) in by_machine.items():
        values = [
            v
            for name, c in ids.items()
            if name.startswith(machine)
            for v in _latencies(events_of(db, c))
        ]
        assert turns == len(values) and max_ms == max(values)
        assert avg_ms == round(sum(values) / len(values))
    assert set(by_machine) == {"appointment", "survey"}


def _check_bargeins(rows: Rows, ids: Ids, db: str) -> None:
    ((machine, prompt, count),) = rows
    assert machine == "appointment" and prompt.startswith("Hi Alex") and count == 1


def _check_conversation(rows: Rows, ids: Ids, db: str) -> None:
    heard = [text for _, who, text in rows if who == "caller"]
    assert heard == ["reschedule", "tuesday", "two o'clock"]  # appointment-happy, the latest
    assert rows[0][1] == "agent" and rows[-1][2].startswith("Done.")
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def _check_paths(rows: Rows, ids: Ids, db: str) -> None:
    paths = dict(rows)
    assert paths[ids["appointment-happy"]] == "greet → pick_day → pick_time → rescheduled"
    assert paths[ids["appointment-bargein"]] == "greet → confirm_cancel → cancelled"
    assert len(paths) == len(SCRIPTS)


CHECKS: dict[str, Callable[[Rows, Ids, str], None]] = {
    "calls by machine, outcome and the state the conversation ended in": _check_outcomes,
    "calls that hit nomatch twice in one visit of a state (the counter resets on entry)": (
        _check_nomatch
    ),
    "turn latency per machine: end of the caller's speech → the agent's first audio": (
        _check_latency
    ),
    "barge-ins per prompt: which sentences callers talk over": _check_bargeins,
    "the conversation of the latest call: what the agent said and the caller was heard to say": (
        _check_conversation
    ),
    "the path each call took through its machine": _check_paths,
}


def test_every_readme_query_has_a_check_and_there_are_at_least_five() -> None:
    assert set(_readme_queries()) == set(CHECKS)
    assert len(CHECKS) >= 5


@pytest.mark.parametrize("title", sorted(CHECKS))
def test_readme_query_runs_and_answers_sensibly(title: str, db: str, ids: Ids) -> None:
    sql = _readme_queries()[title]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(sql).fetchall()
    assert rows, title
    CHECKS[title](rows, ids, db)


# --- every Example: in the query commands' help runs ---


def test_the_query_commands_examples_run(
    recorded: tuple[Path, Ids],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse
    import shlex

    monkeypatch.chdir(tmp_path)
    (tmp_path / "calls.db").symlink_to(recorded[0])
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.db").symlink_to(recorded[0])
    # the examples name a call by the prefix of a real recording; ours start with FV0…
    prefix = recorded[1]["appointment-happy"]
    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    ran = Counter[str]()
    for name in ("calls", "events", "audio", "stats", "export", "import"):
        epilog = subparsers.choices[name].epilog or ""
        for line in epilog.splitlines()[1:]:
            argv = shlex.split(line.strip().replace("FV6753", prefix))[1:]
            assert main(argv) == 0, line
            ran[name] += 1
    capsys.readouterr()
    assert set(ran) == {"calls", "events", "audio", "stats", "export", "import"}
    assert (tmp_path / "call.wav").exists() and (tmp_path / "fixtures.db").exists()
