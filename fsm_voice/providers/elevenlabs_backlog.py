"""Caller audio on its way to a Scribe session, and where it sits in the call.

`CallerBacklog` holds the frames not yet sent: in order, bounded (oldest dropped
first, the loss counted), taken in chunks of up to `max_chunk_bytes` that never join
frames across a gap in call time. `SessionTimeline` remembers, for the session the
chunks went to, which call time each stretch of its audio came from, so Scribe's
word timestamps (seconds into the session's audio) become call times even after a
reconnect flushed a backlog or frames were lost on the line.
"""

from __future__ import annotations

import bisect
from collections import deque

__all__ = ["BYTES_PER_MS", "CallerBacklog", "Chunk", "SessionTimeline"]

BYTES_PER_MS = 8  # μ-law 8 kHz: one byte per sample

Chunk = tuple[int, bytes]  # (call time of its first byte, μ-law)


class CallerBacklog:
    """Frames waiting for a session, oldest first."""

    def __init__(self, max_bytes: int, max_chunk_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_chunk_bytes = max_chunk_bytes
        self.size = 0
        self.dropped = 0  # bytes dropped since `take_dropped`
        self._frames: deque[Chunk] = deque()

    def __bool__(self) -> bool:
        return bool(self._frames)

    def add(self, t_ms: int, mulaw: bytes) -> int:
        """Queue a frame; returns how many of the oldest bytes fell out to make room."""
        self._frames.append((t_ms, mulaw))
        self.size += len(mulaw)
        overflow = 0
        while self.size > self.max_bytes:
            _, oldest = self._frames.popleft()
            self.size -= len(oldest)
            overflow += len(oldest)
        self.dropped += overflow
        return overflow

    def take(self) -> Chunk:
        """The next chunk: frames contiguous in call time, up to `max_chunk_bytes`."""
        t_ms, first = self._frames.popleft()
        parts = [first]
        size = len(first)
        end_ms = t_ms + len(first) // BYTES_PER_MS
        while self._frames:
            next_t, frame = self._frames[0]
            if next_t != end_ms or size + len(frame) > self.max_chunk_bytes:
                break
            self._frames.popleft()
            parts.append(frame)
            size += len(frame)
            end_ms += len(frame) // BYTES_PER_MS
        self.size -= size
        return t_ms, b"".join(parts)

    def put_back(self, chunk: Chunk) -> None:
        """A chunk that could not be sent goes first again (it is not lost)."""
        self._frames.appendleft(chunk)
        self.size += len(chunk[1])

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped

    def clear(self) -> None:
        self._frames.clear()
        self.size = 0


class SessionTimeline:
    """Session audio offset (ms) → call time (ms), stretch by stretch."""

    def __init__(self) -> None:
        self.sent_ms = 0  # audio sent to the session so far
        self._offsets: list[int] = []
        self._call_ms: list[int] = []

    def sent(self, t_ms: int, size: int) -> None:
        """`size` bytes starting at call time `t_ms` went to the session."""
        if not self._offsets or self.to_call_ms(self.sent_ms) != t_ms:
            self._offsets.append(self.sent_ms)
            self._call_ms.append(t_ms)
        self.sent_ms += size // BYTES_PER_MS

    def to_call_ms(self, offset_ms: float) -> int:
        """The call time of the session's audio at `offset_ms`."""
        if not self._offsets:
            return round(offset_ms)
        i = max(bisect.bisect_right(self._offsets, offset_ms) - 1, 0)
        return self._call_ms[i] + round(offset_ms - self._offsets[i])
