"""A recorded call as replay needs it: its events and its two audio tracks.

Two sources: an `EventLog` (+ call id), or a fixture directory as `fsm-voice export`
writes it (`events.jsonl`, `caller.wav`, `agent.wav`, `meta.json`). The fixture
loader is tolerant: any of the meta fields may be missing or spelled another way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fsm_voice.audio.wav import read_wav_as_mulaw_8k
from fsm_voice.errors import EventLogError, FsmVoiceError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.fixture import import_fixture
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.eventlog.upcast import UpcastError, upcast

__all__ = ["CallerFrames", "Recording", "ReplayInputError", "load_fixture", "load_from_log"]


class ReplayInputError(FsmVoiceError):
    """The recording cannot be replayed (missing, unreadable, no such call)."""


@dataclass(frozen=True, slots=True)
class CallerFrames:
    """A run of contiguous caller frames: the first arrived at `t_ms`, then one per 20 ms."""

    t_ms: int
    first_frame: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Recording:
    call_id: str
    machine: str | None  # the machine's name, as the calls row or meta.json has it
    started_wall_ms: int
    events: tuple[EventRecord, ...]
    caller: tuple[CallerFrames, ...]
    agent: bytes  # the agent track as sent, chunks concatenated
    origin: str  # where it came from, for messages
    directory: Path | None = None  # the fixture directory, if any
    # False: the log stops before the call ended (the server was killed, or the call
    # is still live); what there is replays, and nothing after it is expected.
    ended: bool = True

    @property
    def duration_ms(self) -> int:
        return self.events[-1].t_ms if self.events else 0


def load_from_log(log: EventLog, call_id: str | None = None) -> Recording:
    """One call of `log` (the only call when `call_id` is None)."""
    if call_id is None:
        calls = log.calls()
        if len(calls) != 1:
            raise ReplayInputError(f"the log holds {len(calls)} calls: name one (--call)")
        call_id = calls[0].call_id
    record = log.call(call_id)
    if record is None:
        raise ReplayInputError(f"no call {call_id!r} in the log")
    caller = tuple(
        CallerFrames(c.t_ms, c.first_frame, c.payload) for c in log.audio(call_id, "caller")
    )
    agent = b"".join(c.payload for c in log.audio(call_id, "agent"))
    return Recording(
        call_id,
        record.machine,
        record.started_wall_ms,
        tuple(log.events(call_id)),
        caller,
        agent,
        f"call {call_id}",
        ended=record.ended_wall_ms is not None,
    )


def load_fixture(directory: str | Path) -> Recording:
    """A fixture directory written by `fsm-voice export`.

    The exporter's own importer is tried first (its chunk index keeps when each
    second of caller audio arrived); a fixture it refuses is read field by field.
    """
    root = Path(directory)
    events_path = root / "events.jsonl"
    if not events_path.is_file():
        raise ReplayInputError(f"{root}: no events.jsonl (not a replay fixture)")
    log = MemoryEventLog()
    try:
        call_id = import_fixture(root, log)
    except (EventLogError, KeyError, TypeError, ValueError):
        return _load_loose(root, events_path)
    return replace(load_from_log(log, call_id), origin=str(root), directory=root)


def _load_loose(root: Path, events_path: Path) -> Recording:
    meta = _read_meta(root / "meta.json")
    raw = [_raw_event(line, n) for n, line in _lines(events_path)]
    call_id = str(_pick(meta, ("call_id",), ("call", "call_id"), ("id",)) or _logged_id(raw))
    call_id = call_id or root.name
    events = tuple(_event(call_id, r, n) for n, r in enumerate(raw, 1))
    caller = b""
    if (root / "caller.wav").is_file():
        caller = read_wav_as_mulaw_8k(root / "caller.wav")
    agent = read_wav_as_mulaw_8k(root / "agent.wav") if (root / "agent.wav").is_file() else b""
    return Recording(
        call_id,
        _machine_name(meta),
        _started_ms(meta),
        events,
        _caller_frames(caller, events),
        agent,
        str(root),
        root,
        ended=_pick(meta, ("duration_ms",), ("call", "duration_ms")) is not None
        or any(e.kind == "call_ended" for e in events),
    )


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ReplayInputError(f"{path}: {e}") from None
    return meta if isinstance(meta, dict) else {}


def _pick(meta: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    """The first of several possible places a meta field may be."""
    for path in paths:
        value: Any = meta
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def _started_ms(meta: dict[str, Any]) -> int:
    wall = _pick(meta, ("started_wall_ms",), ("call", "started_wall_ms"))
    if wall is not None:
        return int(wall)
    iso = _pick(meta, ("started_at",), ("call", "started_at"))
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000) if iso else 0
    except ValueError:
        return 0


def _machine_name(meta: dict[str, Any]) -> str | None:
    machine = _pick(meta, ("machine",), ("call", "machine"), ("machine_name",))
    if isinstance(machine, dict):
        machine = machine.get("name")
    return str(machine) if machine is not None else None


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _raw_event(line: str, number: int) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except ValueError as e:
        raise ReplayInputError(f"events.jsonl line {number}: {e}") from None
    if not isinstance(raw, dict):
        raise ReplayInputError(f"events.jsonl line {number}: not an object")
    return raw


def _logged_id(raw: list[dict[str, Any]]) -> str:
    """The call id the conversation logged among its variables (the machine sees it)."""
    for event in raw:
        if event.get("kind") == "conversation_started":
            return str((event.get("data") or {}).get("variables", {}).get("call_id", ""))
    return ""


def _event(call_id: str, raw: dict[str, Any], number: int) -> EventRecord:
    """One line, read as the catalogue declares its kind now (`upcast`)."""
    try:
        return upcast(
            EventRecord(
                call_id,
                int(raw["seq"]),
                int(raw["t_ms"]),
                int(raw.get("wall_ms", 0)),
                raw["source"],
                str(raw["kind"]),
                dict(raw.get("data") or {}),
                int(raw.get("v", 1)),
            )
        )
    except (ValueError, KeyError, TypeError, UpcastError) as e:
        raise ReplayInputError(f"events.jsonl line {number}: {e}") from None


def _caller_frames(audio: bytes, events: tuple[EventRecord, ...]) -> tuple[CallerFrames, ...]:
    """The WAV has lost the arrival times: frame n arrived 20·n ms after the stream started.

    (That is how the phone paces them; in a log the chunks keep their real times.)
    """
    if not audio:
        return ()
    start = next((e.t_ms for e in events if e.kind == "stream_started"), 0)
    return (CallerFrames(start, 0, audio),)
