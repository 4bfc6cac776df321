"""A recorded call as a fixture directory, and back: what `export` and `import` do.

    events.jsonl   one event per line: seq, t_ms, source, kind, data, v (sorted keys)
    audio.jsonl    one audio chunk per line: track, seq, t_ms, first_frame, bytes
    caller.wav     the caller track as recorded (μ-law, 8 kHz, gaps as silence)
    agent.wav      the agent track as sent
    meta.json      machine name and version, providers, fsm_voice version, the call row

Everything is text a reviewer can diff except the WAVs, which any player opens. Wall
times are left out: only `started_at` (in meta.json) is kept, and an import derives
every event's wall time from it and `t_ms`. The chunk index keeps when each chunk
of audio arrived or left, which the WAVs alone cannot say. Exporting, importing into
an empty log and exporting again gives byte-identical files. An import checks every
file first (`fixture_read`) and then writes the call whole, or nothing of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from fsm_voice.audio.mulaw import FRAME_BYTES, SILENCE_BYTE
from fsm_voice.audio.wav import wav_bytes_mulaw
from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.fixture_read import FIXTURE_FORMAT, FixtureCall, read_fixture
from fsm_voice.eventlog.multi import CallReader
from fsm_voice.eventlog.records import TRACKS, AudioChunk, CallRecord, EventRecord
from fsm_voice.eventlog.sqlite_schema import _iso_utc

__all__ = [
    "FIXTURE_FORMAT",
    "FixtureCall",
    "WholeCallWriter",
    "add_fixture_call",
    "export_fixture",
    "import_fixture",
    "read_fixture",
]

_WALL_FIELDS: Final = ("started_wall_ms", "ended_wall_ms")


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"


def _fsm_voice_version() -> str:
    try:
        return version("fsm-voice")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _providers(events: Sequence[EventRecord]) -> dict[str, str]:
    """Each provider as it named itself when it first connected (as logged)."""
    found: dict[str, str] = {}
    for e in events:  # read through `upcast`: an STT v1 `provider_state_entered` is one too
        if (
            e.kind == "state_entered"
            and e.source in ("stt", "tts")
            and e.data.get("state") == "connecting"
        ):
            found.setdefault(e.source, str(e.data.get("detail", "")))
    return found


def _raw_track(chunks: Sequence[AudioChunk]) -> bytes:
    """Chunks placed by frame number; uncovered frames are μ-law silence."""
    out = bytearray()
    for chunk in sorted(chunks, key=lambda c: (c.first_frame, c.seq)):
        start = chunk.first_frame * FRAME_BYTES
        if start > len(out):
            out += bytes([SILENCE_BYTE]) * (start - len(out))
        out[start : start + len(chunk.payload)] = chunk.payload
    return bytes(out)


def _meta(call: CallRecord, events: Sequence[EventRecord]) -> dict[str, Any]:
    row = {k: v for k, v in asdict(call).items() if k not in _WALL_FIELDS}
    row["started_at"] = _iso_utc(call.started_wall_ms)
    return {
        "format": FIXTURE_FORMAT,
        "fsm_voice_version": _fsm_voice_version(),
        "machine": {"name": call.machine, "version": call.machine_version},
        "providers": _providers(events),
        "call": row,
    }


def export_fixture(reader: CallReader, call_id: str, out: Path) -> list[Path]:
    """Write call `call_id` to the directory `out`; returns the files written."""
    call = reader.call(call_id)
    if call is None:
        raise EventLogError(f"no call {call_id!r}")
    events = reader.events(call_id)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "events.jsonl": "".join(
            _line(
                {
                    "seq": e.seq,
                    "t_ms": e.t_ms,
                    "source": e.source,
                    "kind": e.kind,
                    "data": e.data,
                    "v": e.v,
                }
            )
            for e in events
        ).encode(),
        "meta.json": (json.dumps(_meta(call, events), indent=2, sort_keys=True) + "\n").encode(),
    }
    index: list[str] = []
    for track in TRACKS:
        chunks = reader.audio(call_id, track)
        files[f"{track}.wav"] = wav_bytes_mulaw(_raw_track(chunks))
        index += [
            _line(
                {
                    "track": track,
                    "seq": c.seq,
                    "t_ms": c.t_ms,
                    "first_frame": c.first_frame,
                    "bytes": len(c.payload),
                }
            )
            for c in chunks
        ]
    files["audio.jsonl"] = "".join(index).encode()
    for name, data in files.items():
        (out / name).write_bytes(data)
    return [out / name for name in sorted(files)]


@runtime_checkable
class WholeCallWriter(Protocol):
    """A log that can write a whole call in one transaction (`SqliteEventLog`)."""

    def write_call(
        self, call: CallRecord, events: list[EventRecord], audio: list[AudioChunk]
    ) -> None: ...


def add_fixture_call(log: EventLog, found: FixtureCall) -> str:
    """Add a call read by `read_fixture` to `log` (which must not hold it yet).

    A log that can write it in one transaction does (all rows or none); any other
    (in memory) gets the rows one by one, which cannot fail half-way on valid rows.
    """
    call_id = found.call.call_id
    if log.call(call_id) is not None:
        raise EventLogError(f"call {call_id} is already in the log")
    if isinstance(log, WholeCallWriter):
        log.write_call(found.call, found.events, found.audio)
        return call_id
    log.open_call(found.call)
    for event in found.events:
        log.append(event)
    for chunk in found.audio:
        log.append_audio(chunk)
    return call_id


def import_fixture(fixture: Path, log: EventLog) -> str:
    """Add the call in `fixture` to `log` (which must not hold it yet); returns its id.

    A fixture with any problem raises `FixtureError` (every problem, by file, line
    and field) before anything is written.
    """
    return add_fixture_call(log, read_fixture(fixture))
