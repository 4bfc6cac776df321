"""Slicing μ-law audio into 20 ms frames, silence, and mixing two tracks."""

from __future__ import annotations

import numpy as np

from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE, SILENCE_BYTE, decode, encode

__all__ = ["mix", "mix_frames", "pad_to_frame", "silence", "split_frames"]

_BYTES_PER_MS = SAMPLE_RATE // 1000


def split_frames(data: bytes, frame_bytes: int = FRAME_BYTES, *, pad: bool = True) -> list[bytes]:
    """Cut `data` into frames; the last partial frame is padded with silence if `pad`."""
    if frame_bytes <= 0:
        raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
    frames = [data[i : i + frame_bytes] for i in range(0, len(data), frame_bytes)]
    if pad and frames and len(frames[-1]) < frame_bytes:
        frames[-1] = pad_to_frame(frames[-1], frame_bytes)
    return frames


def pad_to_frame(data: bytes, frame_bytes: int = FRAME_BYTES) -> bytes:
    """Pad `data` with μ-law silence up to a whole number of frames."""
    short = -len(data) % frame_bytes
    return bytes(data) + bytes([SILENCE_BYTE]) * short


def silence(ms: int) -> bytes:
    """`ms` milliseconds of μ-law silence at 8 kHz."""
    if ms < 0:
        raise ValueError(f"silence length must be >= 0 ms, got {ms}")
    return bytes([SILENCE_BYTE]) * (ms * _BYTES_PER_MS)


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two μ-law tracks sample by sample, saturating; the shorter one is padded."""
    length = max(len(a), len(b))
    total = np.zeros(length, dtype=np.int32)
    # int32 so two loud samples add up instead of wrapping around in int16.
    total[: len(a)] += decode(a)
    total[: len(b)] += decode(b)
    return encode(np.clip(total, -32768, 32767).astype(np.int16))


# voice_runtime called it mix_frames; kept so ported code still runs.
mix_frames = mix
