"""What came into the recorded call from outside, in the order it came.

Inbound facts are what the replay phone and the recorded providers deliver: Twilio's
messages (rebuilt from the logged transport events), the caller's frames (from the
caller track) and the recogniser's outputs (the logged `stt` events). Each keeps its
recorded `t_ms` and `seq`; caller frames are not events, so they have no seq.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fsm_voice.replay.views import CallerFrame, PlatformMessage, RecordingViews, SttOutput

__all__ = ["Fact", "inbound_facts"]

FactKind = Literal["message", "media", "close", "stt"]


@dataclass(frozen=True, slots=True)
class Fact:
    t_ms: int
    seq: int | None  # the recorded event's seq (None: a caller frame, not an event)
    kind: FactKind
    message: dict[str, Any] | None = None  # Twilio's JSON, without sequenceNumber
    payload: bytes = b""  # a caller frame
    frame: int = 0  # its number in the caller track (Twilio's chunk is frame + 1)
    code: int = 1000  # for "close"
    output: SttOutput | None = None  # for "stt": the recogniser's, delivered mid-call


def inbound_facts(views: RecordingViews) -> list[Fact]:
    """Every inbound fact, in the order the recorded call received them."""
    mid_call = views.stt_phases()[1]
    facts = [_platform_fact(m) for m in views.platform]
    facts.extend(Fact(o.t_ms, o.seq, "stt", output=o) for o in mid_call)
    facts.sort(key=lambda f: f.seq or 0)  # the recorded order (every one is an event)
    facts.extend(map(_caller_fact, views.caller))
    # A caller frame arrives before what else happened in its millisecond: the frame
    # at t is the one the recogniser heard speech in, and the last frame of a call
    # arrives before the hang-up; but none before the stream's start. (Stable sort:
    # events keep their recorded order.)
    start = next((m.t_ms for m in views.platform if m.kind == "start"), 0)

    def order(fact: Fact) -> tuple[int, int]:
        if fact.seq is None:
            return (fact.t_ms, 2 if fact.t_ms <= start else 0)
        return (fact.t_ms, 1)

    facts.sort(key=order)
    return facts


def _platform_fact(m: PlatformMessage) -> Fact:
    d = m.fields
    message: dict[str, Any]
    if m.kind == "close":
        return Fact(m.t_ms, m.seq, "close", code=m.code)
    if m.kind == "connected":
        message = {"event": "connected", "protocol": d.get("protocol"), "version": d.get("version")}
    elif m.kind == "start":
        message = {"event": "start", "start": _start(d)}
    elif m.kind == "dtmf":
        message = {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": m.digit}}
    elif m.kind == "mark":
        message = {"event": "mark", "mark": {"name": m.mark}}
    else:
        message = {"event": "stop", "stop": {}}
    return Fact(m.t_ms, m.seq, "message", message=message)


def _start(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "streamSid": d.get("stream_sid", ""),
        "accountSid": d.get("account_sid", ""),
        "callSid": d.get("call_sid", ""),
        "tracks": list(d.get("tracks", ["inbound"])),
        "customParameters": dict(d.get("custom_parameters", {})),
        "mediaFormat": {
            "encoding": d.get("encoding", "audio/x-mulaw"),
            "sampleRate": d.get("sample_rate", 8000),
            "channels": d.get("channels", 1),
        },
    }


def _caller_fact(frame: CallerFrame) -> Fact:
    return Fact(frame.t_ms, None, "media", None, frame.payload, frame.number)
