"""A line as the scripted caller's mouth sends it.

The synthesised audio is cut into 160-byte μ-law frames (the last one padded) that the
mouth sends one per 20 ms; the utterance remembers its last voiced frame, so the line's
`voiced_end_ms` leaves out the synthesiser's trailing silence, and records when its
first frame went out and when the line (voiced, then all of it) ended.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import anyio
import numpy as np

from fsm_voice.audio.frames import split_frames
from fsm_voice.audio.mulaw import FRAME_BYTES, SILENCE_BYTE, decode

SILENT_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES
# A frame counts as voiced above this RMS (int16): about -40 dBFS, well over the
# near-zero tail a synthesiser leaves after the last word.
VOICED_RMS = 300.0


@dataclass
class Utterance:
    frames: deque[bytes]
    last_voiced: int  # index of the last voiced frame
    sent: int = 0
    start_ms: int = 0
    voiced_end_ms: int = 0
    end_ms: int = 0
    done: anyio.Event = field(default_factory=anyio.Event)

    @classmethod
    def of(cls, audio: bytes) -> Utterance:
        """The utterance of `audio` (μ-law); no audio is one silent frame."""
        frames = split_frames(audio, FRAME_BYTES, pad=True) or [SILENT_FRAME]
        voiced = [i for i, frame in enumerate(frames) if _voiced(frame)]
        return cls(deque(frames), voiced[-1] if voiced else len(frames) - 1)


def _voiced(frame: bytes) -> bool:
    pcm = decode(frame).astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm))) > VOICED_RMS
