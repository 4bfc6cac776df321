"""`fsm-voice import` of a bad fixture: a clear message for every problem, the log unchanged.

Each case breaks a copy of a real fixture (replays/survey-nomatch) one way, imports it
into a log that already holds another call, and checks the message names the file,
line and field, that nothing of the call was written, and that the import succeeds
once the fixture is repaired.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fsm_voice.audio.mulaw import decode
from fsm_voice.audio.wav import read_wav, write_wav_mulaw, write_wav_pcm16
from fsm_voice.cli import main
from fsm_voice.errors import EventLogError, FixtureError
from fsm_voice.eventlog.fixture_read import read_fixture
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "replays" / "survey-nomatch"
OTHER = ROOT / "replays" / "appointment-hangup"


def edit_line(
    name: str, number: int, change: Callable[[dict[str, object]], str]
) -> Callable[[Path], None]:
    """Replace line `number` (1-based) of `name` with `change(its JSON object)`."""

    def apply(fixture: Path) -> None:
        path = fixture / name
        lines = path.read_text().splitlines()
        lines[number - 1] = change(json.loads(lines[number - 1]))
        path.write_text("\n".join(lines) + "\n")

    return apply


def set_field(key: str, value: object) -> Callable[[dict[str, object]], str]:
    return lambda obj: json.dumps(obj | {key: value})


def drop_field(key: str) -> Callable[[dict[str, object]], str]:
    return lambda obj: json.dumps({k: v for k, v in obj.items() if k != key})


def delete(name: str) -> Callable[[Path], None]:
    return lambda fixture: (fixture / name).unlink()


def truncate_wav(fixture: Path) -> None:
    path = fixture / "caller.wav"
    path.write_bytes(path.read_bytes()[:30])  # inside the fmt chunk


def shorten_agent_track(fixture: Path) -> None:
    path = fixture / "agent.wav"
    write_wav_mulaw(path, read_wav(path).data[:-8000])


def agent_track_as_pcm(fixture: Path) -> None:
    path = fixture / "agent.wav"
    write_wav_pcm16(path, decode(read_wav(path).data), 8000)


def drop_last_chunk(fixture: Path) -> None:
    path = fixture / "audio.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


def edit_meta(change: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def apply(fixture: Path) -> None:
        meta = json.loads((fixture / "meta.json").read_text())
        change(meta)
        (fixture / "meta.json").write_text(json.dumps(meta, indent=2))

    return apply


def call_field(key: str, value: object) -> Callable[[dict[str, object]], None]:
    def change(meta: dict[str, object]) -> None:
        call = meta["call"]
        assert isinstance(call, dict)
        call[key] = value

    return change


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing events file": (delete("events.jsonl"), "events.jsonl: missing"),
    "missing chunk index": (delete("audio.jsonl"), "audio.jsonl: missing"),
    "missing track": (delete("agent.wav"), "agent.wav: missing, but audio.jsonl has agent"),
    "bad JSON line": (
        edit_line("events.jsonl", 3, lambda obj: json.dumps(obj)[:-1]),
        "events.jsonl:3: invalid JSON: Expecting ',' delimiter",
    ),
    "not an object": (
        edit_line("events.jsonl", 4, lambda obj: "[1, 2]"),
        "events.jsonl:4: expected a JSON object, got [1, 2] (a list)",
    ),
    "NaN in data": (
        edit_line("events.jsonl", 4, lambda obj: json.dumps(obj | {"data": {"x": float("nan")}})),
        "events.jsonl:4: invalid JSON: NaN is not a number the log can store",
    ),
    "missing field": (
        edit_line("events.jsonl", 5, drop_field("t_ms")),
        "events.jsonl:5: field t_ms: missing",
    ),
    "wrong type": (
        edit_line("events.jsonl", 6, set_field("seq", "5")),
        'events.jsonl:6: field seq: expected an integer ≥ 0, got "5" (a string)',
    ),
    "boolean for an integer": (
        edit_line("audio.jsonl", 2, set_field("bytes", True)),
        "audio.jsonl:2: field bytes: expected an integer ≥ 1, got true (a boolean)",
    ),
    "unknown source": (
        edit_line("events.jsonl", 7, set_field("source", "nobody")),
        "events.jsonl:7: field source: expected one of transport, call, stt, tts, conversation,"
        ' runtime, got "nobody"',
    ),
    "misspelt field": (
        edit_line("events.jsonl", 8, lambda obj: json.dumps({"knd": obj.pop("kind")} | obj)),
        "events.jsonl:8: field knd: unknown (expected data, kind, seq, source, t_ms, v)",
    ),
    "repeated seq": (
        edit_line("events.jsonl", 9, set_field("seq", 0)),
        "events.jsonl:9: field seq: 0 repeats line 1",
    ),
    "unknown track": (
        edit_line("audio.jsonl", 1, set_field("track", "both")),
        'audio.jsonl:1: field track: expected one of caller, agent, got "both"',
    ),
    "meta wrong type": (
        edit_meta(call_field("duration_ms", "long")),
        'meta.json: field call.duration_ms: expected an integer ≥ 0 or null, got "long"',
    ),
    "meta bad time": (
        edit_meta(call_field("started_at", "yesterday")),
        "meta.json: field call.started_at: expected an ISO-8601 UTC time",
    ),
    "meta format": (
        edit_meta(lambda meta: meta.update(format=2)),
        "meta.json: field format: 2 (an integer) is not supported (only 1 is)",
    ),
    "corrupt WAV": (truncate_wav, "caller.wav: not a WAV file this can read"),
    "WAV not mu-law": (
        agent_track_as_pcm,
        "agent.wav: expected μ-law, 8000 Hz, mono (as export writes), got pcm16",
    ),
    "track shorter than its chunks": (
        shorten_agent_track,
        "audio.jsonl:60: agent chunk 23 needs bytes 184000–190880 of agent.wav, which holds 182880",
    ),
    "chunk missing from the index": (
        drop_last_chunk,
        "agent.wav: 190880 bytes of audio, but the agent chunks in audio.jsonl end at byte",
    ),
}


def rows(db: Path) -> tuple[list[CallRecord], int, int]:
    with LogSet([db]) as logs:
        calls = list(logs.calls())
        events = sum(len(logs.events(c.call_id)) for c in calls)
        chunks = sum(len(logs.audio(c.call_id, t)) for c in calls for t in ("caller", "agent"))
    return calls, events, chunks


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log that already holds another call."""
    db = tmp_path_factory.mktemp("seeded") / "calls.db"
    assert main(["import", str(OTHER), "--db", str(db)]) == 0
    return db


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_fixture_is_named_and_leaves_the_log_unchanged(
    case: str, seeded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breakage, expected = CASES[case]
    fixture = tmp_path / "fixture"
    shutil.copytree(SOURCE, fixture)
    breakage(fixture)
    db = tmp_path / "calls.db"
    shutil.copyfile(seeded, db)
    before = rows(db)
    capsys.readouterr()

    assert main(["import", str(fixture), "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fsm-voice import: {fixture}: ")
    assert "nothing imported" in err and f"{fixture}/{expected}" in err, err
    assert rows(db) == before
    assert main(["import", str(fixture), "--db", str(tmp_path / "new.db")]) == 1
    assert not (tmp_path / "new.db").exists()  # not even an empty log is left behind

    shutil.rmtree(fixture)  # repaired: a retry goes in whole
    shutil.copytree(SOURCE, fixture)
    assert main(["import", str(fixture), "--db", str(db)]) == 0
    calls, events, chunks = rows(db)
    assert len(calls) == len(before[0]) + 1
    assert events == before[1] + len((SOURCE / "events.jsonl").read_text().splitlines())
    assert chunks == before[2] + len((SOURCE / "audio.jsonl").read_text().splitlines())


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    fixture = tmp_path / "fixture"
    shutil.copytree(SOURCE, fixture)
    edit_line("events.jsonl", 5, drop_field("t_ms"))(fixture)
    edit_line("events.jsonl", 6, set_field("seq", "5"))(fixture)
    truncate_wav(fixture)
    with pytest.raises(FixtureError) as error:
        read_fixture(fixture)
    assert [p.removeprefix(f"{fixture}/").split(":")[:2] for p in error.value.problems] == [
        ["events.jsonl", "5"],
        ["events.jsonl", "6"],
        ["caller.wav", " not a WAV file this can read"],
    ]
    assert str(error.value).startswith(f"{fixture}: 3 problems, nothing imported:\n")


def test_a_directory_without_a_fixture_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tmp_path / "nowhere"), "--db", str(tmp_path / "x.db")]) == 1
    assert "nowhere is not a fixture: no such directory" in capsys.readouterr().err
    assert main(["import", str(tmp_path), "--db", str(tmp_path / "x.db")]) == 1
    assert "is not a fixture: no meta.json" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_a_whole_call_commits_in_one_transaction_or_not_at_all(tmp_path: Path) -> None:
    commits: list[int] = []
    found = read_fixture(SOURCE)
    with SqliteEventLog(tmp_path / "calls.db", batch_rows=10, on_commit=commits.append) as log:
        # far more rows than a batch: still one transaction
        log.write_call(found.call, found.events, found.audio)
        assert commits == [1 + len(found.events) + len(found.audio)]
        assert len(log.events(found.call.call_id)) == len(found.events)

        # a row the schema refuses (a repeated seq) takes the whole call with it
        call = CallRecord("FVbroken", 0)
        good = EventRecord("FVbroken", 0, 0, 0, "runtime", "socket_opened", {})
        chunk = AudioChunk("FVbroken", "caller", 0, 0, 0, b"\xff" * 160)
        with pytest.raises(EventLogError) as error:
            log.write_call(call, [good, good, good], [chunk])
        assert log.call("FVbroken") is None
        assert log.events("FVbroken") == [] and log.audio("FVbroken", "caller") == []
        assert "call 'FVbroken' (5 rows, none written): UNIQUE" in str(error.value)
        log.write_call(call, [good], [chunk])  # the retry goes in
        assert log.call("FVbroken") is not None and len(commits) == 2
