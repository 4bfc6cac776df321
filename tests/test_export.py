"""`fsm-voice export` / `import`: a recorded call as a fixture directory, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recorded_calls import record_calls

from fsm_voice.audio.wav import read_wav
from fsm_voice.cli import main
from fsm_voice.eventlog import SqliteEventLog
from fsm_voice.eventlog.fixture import import_fixture
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.query import track_pcm_mulaw

FILES = ["agent.wav", "audio.jsonl", "caller.wav", "events.jsonl", "meta.json"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("log") / "calls.db"
    return path, record_calls(path, ("appointment-bargein", "survey-nomatch"))


def export(db: Path, call_id: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["export", call_id, "--db", str(db), "--out", str(out)]) == 0
    return capsys.readouterr().out


def test_export_writes_reviewable_events_and_playable_tracks(
    recorded: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = recorded
    call_id = ids["appointment-bargein"]
    out = tmp_path / "replays" / "bargein"
    printed = export(db, call_id, out, capsys)
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert all(name in printed for name in FILES)

    lines = (out / "events.jsonl").read_text().splitlines()
    with SqliteEventLog(db) as log:
        events = log.events(call_id)
        tracks = {t: track_pcm_mulaw(log, call_id, t) for t in ("caller", "agent")}
    assert len(lines) == len(events)
    first = json.loads(lines[0])
    assert list(first) == ["data", "kind", "seq", "source", "t_ms", "v"]  # sorted, no wall time
    assert lines[0] == json.dumps(first, sort_keys=True, ensure_ascii=False)
    decoded = [json.loads(line) for line in lines]
    assert [d["seq"] for d in decoded] == [e.seq for e in events]
    assert all(isinstance(d["t_ms"], int) for d in decoded)
    stop = next(d for d in decoded if d["kind"] == "prompt_stopped")
    assert stop["source"] == "conversation" and stop["data"]["prompt_id"] == "p1"

    for track, pcm in tracks.items():
        wav = read_wav(out / f"{track}.wav")
        assert (wav.encoding, wav.sample_rate, wav.channels) == ("mulaw", 8000, 1)
        assert wav.data == pcm and len(pcm) > 8000  # the raw recorded track

    meta = json.loads((out / "meta.json").read_text())
    assert meta["machine"] == {"name": "appointment", "version": None}
    assert meta["providers"] == {"stt": "scripted", "tts": "scripted"}  # from their moves
    assert meta["fsm_voice_version"] and meta["format"] == 1
    assert meta["call"]["call_id"] == call_id
    assert meta["call"]["started_at"] == "2026-01-01T00:00:00.000Z"
    assert "started_wall_ms" not in meta["call"]


def test_a_fixture_round_trips_byte_for_byte(
    recorded: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = recorded
    call_id = ids["survey-nomatch"]
    first = tmp_path / "first"
    export(db, call_id, first, capsys)
    copy = tmp_path / "copy.db"
    assert main(["import", str(first), "--db", str(copy)]) == 0
    assert call_id in capsys.readouterr().out
    second = tmp_path / "second"
    export(copy, call_id, second, capsys)
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # the imported call is the recorded call: its chunks and events, wall times derived
    with LogSet([db]) as original, LogSet([copy]) as imported:
        assert imported.audio(call_id, "agent") == original.audio(call_id, "agent")
        assert imported.audio(call_id, "caller") == original.audio(call_id, "caller")
        a, b = original.events(call_id), imported.events(call_id)
        assert [(e.seq, e.t_ms, e.kind, e.data) for e in a] == [
            (e.seq, e.t_ms, e.kind, e.data) for e in b
        ]
        recorded_call, record = original.call(call_id), imported.call(call_id)
        assert recorded_call is not None and record is not None
        assert [e.wall_ms for e in b] == [recorded_call.started_wall_ms + e.t_ms for e in b]
        assert record.machine == "survey" and record.duration_ms == recorded_call.duration_ms


def test_importing_a_call_twice_or_a_non_fixture_fails(
    recorded: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, ids = recorded
    fixture = tmp_path / "fx"
    export(db, ids["survey-nomatch"], fixture, capsys)
    with SqliteEventLog(tmp_path / "x.db") as log:
        assert import_fixture(fixture, log) == ids["survey-nomatch"]
    assert main(["import", str(fixture), "--db", str(tmp_path / "x.db")]) == 1
    assert "already in the log" in capsys.readouterr().err
    assert main(["import", str(tmp_path), "--db", str(tmp_path / "y.db")]) == 1
    assert "is not a fixture" in capsys.readouterr().err


def test_export_of_an_unknown_call_fails(
    recorded: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "nope", "--db", str(recorded[0]), "--out", str(tmp_path / "o")]) == 1
    assert "no call 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
