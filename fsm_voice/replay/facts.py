"""What came into the recorded call from outside, in the order it came.

Inbound facts are what the replay phone and the recorded providers deliver: Twilio's
messages (rebuilt from the logged transport events), the caller's frames (from the
caller track) and the recogniser's outputs (the logged `stt` events). Each keeps its
recorded `t_ms` and `seq`; caller frames are not events, so they have no seq.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.recording import Recording

__all__ = ["Fact", "inbound_facts", "split_stt_events"]

FactKind = Literal["message", "media", "close", "stt"]

# stt events that are the recogniser's outputs, delivered to its listener mid-call.
STT_OUTPUTS = frozenset(
    ("speech_started", "transcript_partial", "transcript_committed", "provider_error")
)


@dataclass(frozen=True, slots=True)
class Fact:
    t_ms: int
    seq: int | None  # the recorded event's seq (None: a caller frame, not an event)
    kind: FactKind
    message: dict[str, Any] | None = None  # Twilio's JSON, without sequenceNumber
    payload: bytes = b""  # a caller frame
    frame: int = 0  # its number in the caller track (Twilio's chunk is frame + 1)
    code: int = 1000  # for "close"
    event: EventRecord | None = None  # for "stt"


def inbound_facts(recording: Recording) -> list[Fact]:
    """Every inbound fact, in the order the recorded call received them."""
    facts: list[Fact] = []
    closing = False  # the runtime asked to close: the socket_closed that follows is its own
    mid_call = split_stt_events(recording.events)[1]
    for event in recording.events:
        if event.kind == "socket_close_requested":
            closing = True
        if event.source == "transport":
            fact = _transport_fact(event, closing)
            if fact is not None:
                facts.append(fact)
        elif event.source == "stt" and event.seq in mid_call:
            facts.append(Fact(event.t_ms, event.seq, "stt", event=event))
    facts.extend(_caller_frames(recording))
    # A caller frame arrives before what else happened in its millisecond: the frame
    # at t is the one the recogniser heard speech in, and the last frame of a call
    # arrives before the hang-up; but none before the stream's start. (Stable sort:
    # events keep their recorded order.)
    start = next((f.t_ms for f in facts if f.message and f.message["event"] == "start"), 0)

    def order(fact: Fact) -> tuple[int, int]:
        if fact.seq is None:
            return (fact.t_ms, 2 if fact.t_ms <= start else 0)
        return (fact.t_ms, 1)

    facts.sort(key=order)
    return facts


def split_stt_events(
    events: tuple[EventRecord, ...],
) -> tuple[list[EventRecord], frozenset[int], list[EventRecord]]:
    """The recogniser's events: (reported inside start(), mid-call, inside stop()).

    Provider state changes logged before the conversation began happened inside
    `start()`, those after the call ended inside `stop()`: the recorded recogniser
    reports them there, so they land at the same place in the replayed log.
    """
    began = next((e.seq for e in events if e.source == "conversation"), None)
    ended = next((e.seq for e in events if e.kind == "call_ended"), None)
    at_start: list[EventRecord] = []
    at_stop: list[EventRecord] = []
    mid: set[int] = set()
    for event in events:
        if event.source != "stt":
            continue
        if event.kind == "provider_state_entered" and (began is None or event.seq < began):
            at_start.append(event)
        elif event.kind == "provider_state_entered" and ended is not None and event.seq > ended:
            at_stop.append(event)
        elif event.kind in STT_OUTPUTS or event.kind == "provider_state_entered":
            mid.add(event.seq)
    return at_start, frozenset(mid), at_stop


def _transport_fact(event: EventRecord, closing: bool) -> Fact | None:
    d = event.data
    message: dict[str, Any] | None = None
    if event.kind == "connected":
        message = {"event": "connected", "protocol": d.get("protocol"), "version": d.get("version")}
    elif event.kind == "stream_started":
        message = {"event": "start", "start": _start(d)}
    elif event.kind == "dtmf_received":
        message = {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": d["digit"]}}
    elif event.kind == "mark_echoed":
        message = {"event": "mark", "mark": {"name": d["name"]}}
    elif event.kind == "stream_stopped":
        message = {"event": "stop", "stop": {}}
    elif event.kind == "socket_closed" and not closing:
        return Fact(event.t_ms, event.seq, "close", code=int(d.get("code", 1000)))
    if message is None:
        return None  # our own sends (mark_sent, clear_sent) and derived facts
    return Fact(event.t_ms, event.seq, "message", message=message)


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


def _caller_frames(recording: Recording) -> list[Fact]:
    facts: list[Fact] = []
    for run in recording.caller:  # (a comprehension: a five-minute call has 15,000 frames)
        payload, t0, first = run.payload, run.t_ms, run.first_frame
        facts.extend(
            Fact(
                t0 + FRAME_MS * k,
                None,
                "media",
                None,
                payload[k * FRAME_BYTES : (k + 1) * FRAME_BYTES],
                first + k,
            )
            for k in range(len(payload) // FRAME_BYTES)
        )
    return facts
