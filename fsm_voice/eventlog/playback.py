"""A call's audio on the call's own clock: what the caller said and heard, when.

The caller track is placed by Twilio's chunk numbers (one 20 ms frame each), shifted
to when the stream's first frame arrived. The agent track is stored as *sent*: the
runtime hands frames to the socket as fast as it can and the platform buffers them
and plays them at real time. So each agent frame is placed at the later of when it
left (its chunk's `t_ms`) and when the frame before it finished playing, and two
facts in the event log correct that model:

- `clear_sent`: Twilio drops everything buffered, so agent audio that would have
  played after the clear never did; it is cut there.
- the call machine entering `listening`: the platform has echoed every mark, so all
  audio sent before then had played by then (a chunk can hold the tail of
  one prompt and the head of the next, sent seconds apart). A frame that could not
  have finished by that moment was sent after it: it starts when the call left
  `listening` (the next agent audio was queued). Real platforms echo a little late,
  so up to that lateness of the next prompt can still be placed early.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from fsm_voice.audio.frames import mix
from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE, SILENCE_BYTE, decode
from fsm_voice.audio.wav import wav_bytes_mulaw, wav_bytes_pcm16
from fsm_voice.eventlog.multi import CallReader
from fsm_voice.eventlog.records import AudioChunk, EventRecord

__all__ = ["agent_as_played", "call_wav", "caller_as_heard"]

_BYTES_PER_MS: Final = SAMPLE_RATE // 1000
_FRAME_MS: Final = FRAME_BYTES // _BYTES_PER_MS


@dataclass(frozen=True, slots=True)
class _Idle:
    start_ms: int  # the platform confirmed it had played everything sent
    end_ms: float  # the next agent audio was queued (inf: none was)


def _put(out: bytearray, at_ms: float, data: bytes) -> None:
    start = round(at_ms * _BYTES_PER_MS)
    if start > len(out):
        out += bytes([SILENCE_BYTE]) * (start - len(out))
    out[start : start + len(data)] = data


def caller_as_heard(chunks: Sequence[AudioChunk]) -> bytes:
    """The caller track at call time: chunks by frame number, from the first's arrival."""
    if not chunks:
        return b""
    first = min(chunks, key=lambda c: (c.first_frame, c.seq))
    offset_ms = max(0, first.t_ms - first.first_frame * _FRAME_MS)
    out = bytearray()
    for chunk in sorted(chunks, key=lambda c: (c.first_frame, c.seq)):
        _put(out, offset_ms + chunk.first_frame * _FRAME_MS, chunk.payload)
    return bytes(out)


def _idle_spans(events: Sequence[EventRecord]) -> list[_Idle]:
    spans: list[_Idle] = []
    since: int | None = None
    for e in events:
        if e.source != "call" or e.kind != "state_entered":
            continue
        if e.data.get("state") == "listening":
            since = e.t_ms if since is None else since
        elif e.data.get("from") == "listening" and since is not None:
            spans.append(_Idle(since, e.t_ms))
            since = None
    if since is not None:
        spans.append(_Idle(since, math.inf))
    return spans


def agent_as_played(chunks: Sequence[AudioChunk], events: Sequence[EventRecord]) -> bytes:
    """The agent track at call time, as the caller heard it (see the module docstring)."""
    idle = _idle_spans(events)
    clears = sorted(e.t_ms for e in events if e.kind == "clear_sent")
    out = bytearray()
    cursor = 0.0  # when the platform's buffer runs dry
    for chunk in sorted(chunks, key=lambda c: c.seq):
        while clears and clears[0] <= chunk.t_ms:
            cursor = min(cursor, clears.pop(0))  # the clear emptied the buffer
        cut_ms = clears[0] if clears else math.inf
        at = max(float(chunk.t_ms), cursor)
        for i in range(0, len(chunk.payload), FRAME_BYTES):
            frame = chunk.payload[i : i + FRAME_BYTES]
            idle = [span for span in idle if span.end_ms > at]
            if idle and at + _FRAME_MS > idle[0].start_ms:
                at = max(at, idle[0].end_ms)
            if at >= cut_ms:
                break
            if at + _FRAME_MS > cut_ms:  # the clear came while this frame played
                frame = frame[: round((cut_ms - at) * _BYTES_PER_MS)]
            _put(out, at, frame)
            at += _FRAME_MS
        cursor = min(at, cut_ms)
    return bytes(out)


def call_wav(reader: CallReader, call_id: str, track: str, stereo: bool = False) -> bytes:
    """`track` (caller, agent or mixed) as a WAV: μ-law for one track, PCM16 for a mix."""
    caller = caller_as_heard(reader.audio(call_id, "caller"))
    if track == "caller":
        return wav_bytes_mulaw(caller)
    agent = agent_as_played(reader.audio(call_id, "agent"), reader.events(call_id))
    if track == "agent":
        return wav_bytes_mulaw(agent)
    if not stereo:
        return wav_bytes_pcm16(decode(mix(caller, agent)), SAMPLE_RATE)
    length = max(len(caller), len(agent))
    pcm = np.zeros((length, 2), dtype=np.int16)
    pcm[: len(caller), 0] = decode(caller)
    pcm[: len(agent), 1] = decode(agent)
    return wav_bytes_pcm16(pcm, SAMPLE_RATE)
