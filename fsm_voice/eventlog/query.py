"""Reading a log back: calls, a call's events, and each track as one piece of audio.

Works on any `EventLog`; `open_log` opens a recorded SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from fsm_voice.audio.mulaw import FRAME_BYTES, SILENCE_BYTE
from fsm_voice.audio.wav import wav_bytes_mulaw
from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.catalogue import KindCheck
from fsm_voice.eventlog.records import CallRecord, EventRecord, Track
from fsm_voice.eventlog.sqlite import SqliteEventLog

__all__ = ["call_events", "list_calls", "open_log", "track_pcm_mulaw", "track_wav"]


def open_log(
    path: str | Path, *, create: bool = False, kinds: KindCheck = "refuse"
) -> SqliteEventLog:
    """Open a recorded log; a missing file is an error unless `create`. `kinds`: what
    an event of a kind the catalogue does not declare gets (see `catalogue`)."""
    path = Path(path)
    if not create and not path.exists():
        raise EventLogError(f"no event log at {path}")
    return SqliteEventLog(path, kinds=kinds)


def list_calls(log: EventLog) -> list[CallRecord]:
    """Every call, oldest first."""
    return list(log.calls())


def call_events(
    log: EventLog, call_id: str, kind: str | None = None, source: str | None = None
) -> list[EventRecord]:
    """A call's events in seq order, optionally only one kind and/or source."""
    return list(log.events(call_id, kind=kind, source=source))


def track_pcm_mulaw(log: EventLog, call_id: str, track: Track) -> bytes:
    """The whole track as μ-law bytes, each chunk placed at its `first_frame`.

    Frames no chunk covers (the caller's audio stopped arriving, the agent said
    nothing) are μ-law silence, so time in the result matches time in the call.
    Where chunks overlap, the later one wins.
    """
    out = bytearray()
    for chunk in sorted(log.audio(call_id, track), key=lambda c: (c.first_frame, c.seq)):
        start = chunk.first_frame * FRAME_BYTES
        if start > len(out):
            out += bytes([SILENCE_BYTE]) * (start - len(out))
        out[start : start + len(chunk.payload)] = chunk.payload
    return bytes(out)


def track_wav(log: EventLog, call_id: str, track: Track) -> bytes:
    """`track_pcm_mulaw` as a μ-law WAV file (8 kHz mono)."""
    return wav_bytes_mulaw(track_pcm_mulaw(log, call_id, track))
