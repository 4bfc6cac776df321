"""What the event log stores: plain records, independent of any storage.

Schema (DESIGN.md "The event log"): `calls` one row per call, `events` keyed by
(call_id, seq), `audio` μ-law chunks of about one second per call and track,
`refusals` requests refused before they became calls, counted per minute and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["transport", "call", "stt", "tts", "conversation", "runtime"]
Track = Literal["caller", "agent"]

SOURCES: tuple[Source, ...] = ("transport", "call", "stt", "tts", "conversation", "runtime")
TRACKS: tuple[Track, ...] = ("caller", "agent")
MINUTE_MS = 60_000


@dataclass(slots=True)
class CallRecord:
    """One call. Fields other than the ids are filled in as the call goes on."""

    call_id: str
    started_wall_ms: int
    call_sid: str | None = None
    stream_sid: str | None = None
    account_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None  # "inbound" | "outbound" | None when unknown
    machine: str | None = None
    machine_version: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)
    ended_wall_ms: int | None = None
    duration_ms: int | None = None
    end_reason: str | None = None  # caller_hangup, agent_hangup, socket_dropped, ...
    outcome: str | None = None  # completed | error | ... (the conversation layer refines it)
    final_state: str | None = None


@dataclass(slots=True, frozen=True)
class EventRecord:
    """One fact about one call. `kind` is past tense and never renamed."""

    call_id: str
    seq: int
    t_ms: int  # ms since the call started, from the Clock
    wall_ms: int
    source: Source
    kind: str
    data: dict[str, Any]
    v: int = 1  # payload schema version; a changed payload gets a new one + an upcaster


@dataclass(slots=True, frozen=True)
class AudioChunk:
    """About one second of one track's μ-law audio (8 kHz, one byte per sample)."""

    call_id: str
    track: Track
    seq: int  # chunk number within (call_id, track), from 0
    t_ms: int  # when its first byte arrived (caller) or left for the platform (agent)
    first_frame: int  # number of its first 20 ms frame within the track
    payload: bytes

    @property
    def frame_count(self) -> int:
        return (len(self.payload) + 159) // 160


@dataclass(slots=True, frozen=True)
class RefusalCount:
    """Requests refused before they became calls (WebSocket upgrades with a bad
    signature, over the call limit…) in one minute, for one reason. A flood of them
    costs a row a minute, never a row each."""

    minute_wall_ms: int  # the minute's start, ms since the epoch (a multiple of MINUTE_MS)
    reason: str  # signature_missing, signature_invalid, host_invalid, too_many_calls
    status: int  # the HTTP status they were answered with
    count: int = 1

    @classmethod
    def one(cls, wall_ms: int, reason: str, status: int) -> RefusalCount:
        """One refusal at `wall_ms`, in its minute."""
        return cls(wall_ms - wall_ms % MINUTE_MS, reason, status)
