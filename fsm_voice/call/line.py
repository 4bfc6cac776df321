"""Where each inbound message sits on the line: Twilio's sequence and chunk numbers.

Gaps and reorderings are noted in the log (`sequence_gap`, `chunk_gap`, …) as they
come. Each caller frame's call time is its place on the line, not its arrival: the
first frame's arrival plus 20 ms per chunk number after it. A frame late on a busy
server is not a pause in the caller's speech, and the log keeps exactly this (the
first chunk's arrival and every frame's number), so replay rebuilds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm_voice.audio.mulaw import FRAME_MS
from fsm_voice.eventlog.kind_names import KindName

__all__ = ["LinePosition"]

Note = Callable[[KindName, dict[str, Any]], None]  # (kind, data): a `transport` event


class LinePosition:
    def __init__(self, note: Note) -> None:
        self._note = note
        self._last_seq: int | None = None
        self._last_chunk: dict[str, int] = {}
        self._grid: tuple[int, int] | None = None  # (t_ms, frame) of the first caller frame
        self.frame_ms = 0  # call time of the caller frame placed last

    def sequence(self, number: int | None) -> None:
        """Note a message's `sequenceNumber` (None: it had none)."""
        if number is None:
            return
        last = self._last_seq
        if last is not None and number != last + 1:
            if number > last:
                missing = number - last - 1
                self._note(
                    "sequence_gap", {"expected": last + 1, "received": number, "missing": missing}
                )
            else:
                self._note("sequence_out_of_order", {"last": last, "received": number})
        if last is None or number > last:
            self._last_seq = number

    def chunk(self, track: str, chunk: int | None) -> int | None:
        """Detect lost/reordered chunks; return the frame's place in the track (from 0)."""
        if chunk is None:
            return None
        last = self._last_chunk.get(track)
        if last is not None and chunk != last + 1:
            if chunk > last:
                data = {"track": track, "expected": last + 1, "received": chunk}
                self._note("chunk_gap", data | {"missing": chunk - last - 1})
            else:
                self._note("chunk_out_of_order", {"track": track, "last": last, "received": chunk})
        if last is None or chunk > last:
            self._last_chunk[track] = chunk
        return chunk - 1

    def place_caller_frame(self, frame_no: int, t_ms: int) -> None:
        """Frame `frame_no` of the caller track arrived at `t_ms`: set `frame_ms`."""
        grid = self._grid
        if grid is None:
            grid = self._grid = (t_ms, frame_no)
        self.frame_ms = grid[0] + FRAME_MS * (frame_no - grid[1])
