"""Reading a fixture directory (what `export` writes, see `fixture.py`), checked.

`read_fixture` parses every file and checks every field of every line before anything
reaches a log, so an import has all of its rows in hand, valid, or writes none. A bad
fixture raises `FixtureError` naming every problem at once, each by file, line and
field (`events.jsonl:7: field seq: expected an integer ≥ 0, got "3" (a string)`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from fsm_voice.audio.mulaw import FRAME_BYTES
from fsm_voice.audio.wav import WavError, read_wav
from fsm_voice.errors import FixtureError
from fsm_voice.eventlog.records import SOURCES, TRACKS, AudioChunk, CallRecord, EventRecord
from fsm_voice.eventlog.sqlite_schema import _wall_ms_from_iso
from fsm_voice.eventlog.upcast import UpcastError, upcast

__all__ = ["FIXTURE_FILES", "FIXTURE_FORMAT", "FixtureCall", "read_fixture"]

FIXTURE_FORMAT: Final = 1
FIXTURE_FILES: Final = ("meta.json", "events.jsonl", "audio.jsonl", "caller.wav", "agent.wav")
MAX_PROBLEMS_SHOWN: Final = 20  # a fixture broken on every line need not fill the terminal

# What a field must hold: (how the message says it, the check).
_Spec = dict[str, tuple[str, Callable[[Any], bool]]]


def _int(value: Any, least: int) -> bool:
    return type(value) is int and value >= least  # not bool, which is an int to Python


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _iso_time(value: Any) -> bool:
    try:
        _wall_ms_from_iso(value)
    except (TypeError, ValueError):  # not a string, not ISO, or without a time zone
        return False
    return True


_EVENT: Final[_Spec] = {
    "seq": ("an integer ≥ 0", lambda v: _int(v, 0)),
    "t_ms": ("an integer ≥ 0", lambda v: _int(v, 0)),
    "source": ("one of " + ", ".join(SOURCES), lambda v: v in SOURCES),
    "kind": ("a non-empty string", _text),
    "data": ("a JSON object", lambda v: isinstance(v, dict)),
    "v": ("an integer ≥ 1", lambda v: _int(v, 1)),
}
_CHUNK: Final[_Spec] = {
    "track": ("one of " + ", ".join(TRACKS), lambda v: v in TRACKS),
    "seq": ("an integer ≥ 0", lambda v: _int(v, 0)),
    "t_ms": ("an integer ≥ 0", lambda v: _int(v, 0)),
    "first_frame": ("an integer ≥ 0", lambda v: _int(v, 0)),
    "bytes": ("an integer ≥ 1", lambda v: _int(v, 1)),
}


def _call_spec() -> _Spec:
    spec: _Spec = {
        name: ("a string or null", lambda v: v is None or isinstance(v, str))
        for name in (f.name for f in fields(CallRecord))
        if name not in ("started_wall_ms", "ended_wall_ms")  # derived: see fixture.py
    }
    spec["call_id"] = ("a non-empty string", _text)
    spec["started_at"] = ("an ISO-8601 UTC time like 2026-01-01T00:00:00.000Z", _iso_time)
    spec["duration_ms"] = ("an integer ≥ 0 or null", lambda v: v is None or _int(v, 0))
    spec["custom_parameters"] = (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    )
    return spec


_CALL: Final = _call_spec()


@dataclass(frozen=True)
class FixtureCall:
    """One recorded call as read from a fixture: every row an import writes."""

    call: CallRecord
    events: list[EventRecord]
    audio: list[AudioChunk]


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.found: list[str] = []

    def add(self, name: str, line: int | None, message: str) -> None:
        where = str(self.root / name) + (f":{line}" if line is not None else "")
        self.found.append(f"{where}: {message}")

    def check(
        self,
        name: str,
        line: int | None,
        obj: dict[str, Any],
        spec: _Spec,
        *,
        required: Collection[str] | None = None,
        prefix: str = "",
    ) -> bool:
        """Whether `obj` has only fields of `spec` (all, or those `required`), each valid;
        reports every one that is not."""
        ok = True
        for key in sorted(obj.keys() - spec.keys()):
            known = ", ".join(sorted(spec))
            self.add(name, line, f"field {prefix}{key}: unknown (expected {known})")
            ok = False
        for key, (expected, valid) in spec.items():
            if key not in obj:
                if required is None or key in required:
                    self.add(name, line, f"field {prefix}{key}: missing")
                    ok = False
            elif not valid(obj[key]):
                got = _show(obj[key])
                self.add(name, line, f"field {prefix}{key}: expected {expected}, got {got}")
                ok = False
        return ok

    def raise_if_any(self) -> None:
        if not self.found:
            return
        shown = [f"  {p}" for p in self.found[:MAX_PROBLEMS_SHOWN]]
        if len(self.found) > MAX_PROBLEMS_SHOWN:
            shown.append(f"  … and {len(self.found) - MAX_PROBLEMS_SHOWN} more")
        count = "1 problem" if len(self.found) == 1 else f"{len(self.found)} problems"
        message = f"{self.root}: {count}, nothing imported:\n" + "\n".join(shown)
        raise FixtureError(message, tuple(self.found))


def _show(value: Any) -> str:
    """`"3" (a string)`: the value as JSON, cut short, and what it is."""
    what = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value))
    text = json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= 40 else text[:37] + "…"
    return text if what is None else f"{text} ({what})"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number the log can store")


def _json_lines(problems: _Problems, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each non-blank line of `name` that is a JSON object, with its 1-based number."""
    try:
        raw = (problems.root / name).read_bytes()
    except FileNotFoundError:
        problems.add(name, None, "missing (export writes it; empty when there is nothing)")
        return
    except OSError as e:
        problems.add(name, None, f"cannot read it: {e.strerror}")
        return
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError:
            problems.add(name, number, "not UTF-8 text")
            continue
        except json.JSONDecodeError as e:
            problems.add(name, number, f"invalid JSON: {e.msg} (column {e.colno})")
            continue
        except ValueError as e:  # NaN or Infinity
            problems.add(name, number, f"invalid JSON: {e}")
            continue
        if not isinstance(obj, dict):
            problems.add(name, number, f"expected a JSON object, got {_show(obj)}")
            continue
        yield number, obj


def _read_meta(problems: _Problems) -> CallRecord | None:
    root = problems.root
    if not root.is_dir():
        raise FixtureError(f"{root} is not a fixture: no such directory")
    path = root / "meta.json"
    if not path.is_file():
        files = ", ".join(FIXTURE_FILES)
        raise FixtureError(f"{root} is not a fixture: no meta.json (export writes {files})")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        problems.add("meta.json", None, "not UTF-8 text")
        return None
    except json.JSONDecodeError as e:
        problems.add("meta.json", e.lineno, f"invalid JSON: {e.msg} (column {e.colno})")
        return None
    except (OSError, ValueError) as e:
        problems.add("meta.json", None, f"cannot read it: {e}")
        return None
    if not isinstance(meta, dict):
        problems.add("meta.json", None, f"expected a JSON object, got {_show(meta)}")
        return None
    if "format" not in meta:
        problems.add("meta.json", None, "field format: missing")
    elif meta["format"] != FIXTURE_FORMAT:
        shown = _show(meta["format"])
        problems.add("meta.json", None, f"field format: {shown} is not supported (only 1 is)")
        return None
    row = meta.get("call")
    if not isinstance(row, dict):
        problems.add("meta.json", None, f"field call: expected an object, got {_show(row)}")
        return None
    # The other fields may be left out: they take their CallRecord defaults.
    required = ("call_id", "started_at")
    if not problems.check("meta.json", None, row, _CALL, required=required, prefix="call."):
        return None
    values = dict(row)
    started = _wall_ms_from_iso(values.pop("started_at"))
    duration = values.get("duration_ms")
    ended = None if duration is None else started + duration
    return CallRecord(**values, started_wall_ms=started, ended_wall_ms=ended)


def _read_events(problems: _Problems, call: CallRecord) -> list[EventRecord]:
    events: list[EventRecord] = []
    lines: dict[int, int] = {}  # seq → the line it was first on
    for number, e in _json_lines(problems, "events.jsonl"):
        if not problems.check("events.jsonl", number, e, _EVENT):
            continue
        seq = e["seq"]
        if seq in lines:
            problems.add("events.jsonl", number, f"field seq: {seq} repeats line {lines[seq]}")
            continue
        lines[seq] = number
        wall = call.started_wall_ms + e["t_ms"]
        stored = EventRecord(
            call.call_id, seq, e["t_ms"], wall, e["source"], e["kind"], e["data"], e["v"]
        )
        try:  # as the catalogue declares it now; the file stays as it was written
            events.append(upcast(stored))
        except UpcastError as error:
            problems.add("events.jsonl", number, str(error))
    return events


def _track_audio(problems: _Problems, track: str, needed: bool) -> bytes | None:
    """The track's μ-law bytes; None (reported when `needed`) when it cannot be read."""
    name = f"{track}.wav"
    path = problems.root / name
    if not path.is_file():
        if needed:
            problems.add(name, None, f"missing, but audio.jsonl has {track} chunks")
        return None
    try:
        wav = read_wav(path)
    except (WavError, OSError) as e:
        problems.add(
            name, None, f"not a WAV file this can read: {str(e).removeprefix(f'{path}: ')}"
        )
        return None
    if (wav.encoding, wav.sample_rate, wav.channels) != ("mulaw", 8000, 1):
        got = f"{wav.encoding}, {wav.sample_rate} Hz, {wav.channels} channel(s)"
        problems.add(name, None, f"expected μ-law, 8000 Hz, mono (as export writes), got {got}")
        return None
    return wav.data


def _read_audio(problems: _Problems, call_id: str) -> list[AudioChunk]:
    index: list[tuple[int, dict[str, Any]]] = []
    lines: dict[tuple[str, int], int] = {}  # (track, seq) → the line it was first on
    for number, c in _json_lines(problems, "audio.jsonl"):
        if not problems.check("audio.jsonl", number, c, _CHUNK):
            continue
        key = (c["track"], c["seq"])
        if key in lines:
            message = f"field seq: {c['track']} chunk {c['seq']} repeats line {lines[key]}"
            problems.add("audio.jsonl", number, message)
            continue
        lines[key] = number
        index.append((number, c))
    chunks: list[AudioChunk] = []
    for track in TRACKS:
        mine = [(n, c) for n, c in index if c["track"] == track]
        data = _track_audio(problems, track, needed=bool(mine))
        if data is None:
            continue
        end = 0
        for number, c in mine:
            start = c["first_frame"] * FRAME_BYTES
            stop = start + c["bytes"]
            end = max(end, stop)
            if stop > len(data):
                problems.add(
                    "audio.jsonl",
                    number,
                    f"{track} chunk {c['seq']} needs bytes {start}–{stop} of {track}.wav, "
                    f"which holds {len(data)}",
                )
                continue
            chunks.append(
                AudioChunk(call_id, track, c["seq"], c["t_ms"], c["first_frame"], data[start:stop])
            )
        if len(data) > end:
            problems.add(
                f"{track}.wav",
                None,
                f"{len(data)} bytes of audio, but the {track} chunks in audio.jsonl end at "
                f"byte {end}: the recording and its chunk index do not match",
            )
    return chunks


def read_fixture(fixture: Path) -> FixtureCall:
    """Every row of the call in the directory `fixture`, checked; `FixtureError` if any
    file, line or field is wrong (all of them named at once)."""
    problems = _Problems(Path(fixture))
    call = _read_meta(problems)
    # Lines are checked even when meta.json is bad: every problem shows in one go.
    rows_call = call or CallRecord("", 0)
    events = _read_events(problems, rows_call)
    audio = _read_audio(problems, rows_call.call_id)
    problems.raise_if_any()
    assert call is not None  # a call that did not parse left a problem
    return FixtureCall(call, events, audio)
