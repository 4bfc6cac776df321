"""Twilio's playback buffer for the agent's audio, and when marks come back.

Pure bookkeeping, no I/O and no clock: the simulator's playout loop takes frames out and
says when each has finished playing; this class says which marks are then due.

Positions count bytes of agent audio since the call began. Per Twilio's Media Streams
docs (https://www.twilio.com/docs/voice/media-streams/websocket-messages, "Mark message"
and "Clear message"): a mark is echoed once the audio sent before it has finished
playing, at once if nothing before it is still unplayed; `clear` empties the buffer and
makes Twilio send back every pending mark.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Playback"]


class Playback:
    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()  # received, not yet started playing
        self._received = 0  # bytes ever received
        self._done = 0  # bytes finished playing, or dropped by clear
        self._marks: deque[tuple[int, str]] = deque()  # (position, name), in order
        self._marks_seen = False
        self._marked_to = 0  # audio up to here was followed by a mark, or dropped by clear

    @property
    def received_bytes(self) -> int:
        return self._received

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    @property
    def idle(self) -> bool:
        """Nothing left to play and no mark waiting to be echoed."""
        return not self._buffer and not self._marks

    @property
    def awaiting_mark(self) -> bool:
        """The agent marks its audio (it has sent a mark before), and audio has come since
        its last mark: what it is saying has not reached its end yet."""
        return self._marks_seen and self._received > self._marked_to

    def expect_marks(self) -> None:
        """The agent is known to mark its audio, so its first audio awaits a mark too."""
        self._marks_seen = True

    def add_audio(self, audio: bytes) -> None:
        self._buffer += audio
        self._received += len(audio)

    def add_mark(self, name: str) -> list[str]:
        """Queue a mark behind the audio received so far; returns the marks now due."""
        self._marks.append((self._received, name))
        self._marks_seen = True
        self._marked_to = self._received
        return self._due()

    def clear(self) -> list[str]:
        """Drop the buffer; returns every pending mark, all now due."""
        self._buffer.clear()
        self._done = self._received
        self._marked_to = self._received
        return self._due()

    def next_frame(self) -> tuple[bytes, int] | None:
        """The next frame to play and the position where it ends, or None if empty."""
        if not self._buffer:
            return None
        frame = bytes(self._buffer[: self.frame_bytes])
        del self._buffer[: self.frame_bytes]
        return frame, self._received - len(self._buffer)

    def finished(self, end: int) -> list[str]:
        """Playback has finished up to `end`; returns the marks now due."""
        self._done = max(self._done, end)
        return self._due()

    def _due(self) -> list[str]:
        due: list[str] = []
        while self._marks and self._marks[0][0] <= self._done:
            due.append(self._marks.popleft()[1])
        return due
