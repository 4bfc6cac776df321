"""Records one audio track into 100 ms chunks for the event log.

A chunk holds contiguous frames only: a gap in frame numbers (a lost or reordered
Twilio chunk) or an explicit `cut` (a `clear`) starts a new chunk, so the stored
track keeps where every byte belongs in time.

A chunk is handed to the log as soon as it holds `chunk_frames` frames (5: 100 ms), and
the log's writer commits what it is handed every tick (`SqliteEventLog(batch_ms=20)`).
So a crash (SIGKILL; a power cut aside) loses, per track, the frames of the chunk
being filled (fewer than `chunk_frames`: ≤ 80 ms) plus the rows of the writer's
current tick. Chunks of ~1 s lost up to 980 ms per track. Small chunks cost more rows
and ~28% more file per track-second (`benchmarks/eventlog_bench.py --audio 60`).
"""

from __future__ import annotations

from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.records import AudioChunk, Track

FRAME_BYTES = 160
CHUNK_FRAMES = 5  # 100 ms: what a crash may lose of a track, writer tick aside


class TrackRecorder:
    def __init__(self, log: EventLog, call_id: str, track: Track, chunk_frames: int = CHUNK_FRAMES):
        self._log = log
        self._call_id = call_id
        self._track: Track = track
        self._chunk_bytes = chunk_frames * FRAME_BYTES
        self._buffer = bytearray()
        self._first_frame = 0
        self._next_frame = 0
        self._t_ms = 0
        self._seq = 0
        self.frames = 0  # frames recorded so far

    def add(self, payload: bytes, t_ms: int, frame_no: int | None = None) -> None:
        """Append one frame; `frame_no` is its place in the track (default: the next)."""
        if frame_no is None:
            frame_no = self._next_frame
        if self._buffer and frame_no != self._next_frame:
            self.cut()
        if not self._buffer:
            self._first_frame = frame_no
            self._t_ms = t_ms
        self._buffer += payload
        self._next_frame = frame_no + max(1, (len(payload) + FRAME_BYTES - 1) // FRAME_BYTES)
        self.frames += 1
        if len(self._buffer) >= self._chunk_bytes:
            self.cut()

    def cut(self) -> None:
        """Write out what is buffered as one chunk."""
        if not self._buffer:
            return
        chunk = AudioChunk(
            self._call_id,
            self._track,
            self._seq,
            self._t_ms,
            self._first_frame,
            bytes(self._buffer),
        )
        self._log.append_audio(chunk)
        self._seq += 1
        self._buffer.clear()

    @property
    def next_frame(self) -> int:
        return self._next_frame
