"""Per-call settings: read-only, shared by every call of a server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallConfig:
    connect_timeout_ms: int = 10_000  # socket open → `start` must arrive
    # A mark not echoed by then is released as "timeout"; 0: none unless the mark asks
    # (a call's end releases every mark, and a timer per mark is two log rows and a
    # loop timer for marks that are echoed within a second).
    mark_timeout_ms: int = 0
    hangup_grace_ms: int = 2_000  # after we close, stop waiting for the socket to go
    agent_grace_ms: int = 2_000  # after the call ends, the agent's time to return
    max_violations: int = 100  # protocol violations on one socket before we close it
    audio_chunk_frames: int = 50  # frames per recorded audio chunk (50 × 20 ms = 1 s)
    max_buffered_frames: int = 3_000  # per caller-audio subscriber (60 s) before dropping
