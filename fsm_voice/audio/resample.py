"""Sample-rate conversion with soxr, always in float32.

soxr's int16 path adds dither, so identical input would not give identical output
(replay needs it to); float32 in, float32 out is deterministic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from fsm_voice.audio.mulaw import SAMPLE_RATE, decode, encode

__all__ = [
    "float_to_mulaw_8k",
    "float_to_pcm16",
    "mulaw_8k_to_float",
    "pcm16_to_float",
    "resample",
]

_SCALE = 32768.0


def pcm16_to_float(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """int16 PCM to float32 in [-1, 1)."""
    return np.asarray(samples, dtype=np.float32) / np.float32(_SCALE)


def float_to_pcm16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """float32 in [-1, 1) to int16 PCM, rounded and clipped (resampling overshoots)."""
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * np.float32(_SCALE))
    clipped: npt.NDArray[np.float32] = np.clip(scaled, -32768, 32767)
    return clipped.astype(np.int16)


def resample(
    samples: npt.NDArray[np.float32], from_rate: int, to_rate: int
) -> npt.NDArray[np.float32]:
    """Resample mono (1-D) or interleaved (frames x channels) float32 audio."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return samples
    x = np.ascontiguousarray(samples, dtype=np.float32)
    return np.asarray(soxr.resample(x, from_rate, to_rate), dtype=np.float32)


def mulaw_8k_to_float(data: bytes, to_rate: int) -> npt.NDArray[np.float32]:
    """Telephone μ-law (8 kHz mono) to float32 at `to_rate`, e.g. for a speech model."""
    return resample(pcm16_to_float(decode(data)), SAMPLE_RATE, to_rate)


def float_to_mulaw_8k(samples: npt.NDArray[np.float32], from_rate: int) -> bytes:
    """Mono float32 at `from_rate` (e.g. TTS output) to 8 kHz μ-law for the phone."""
    return encode(float_to_pcm16(resample(samples, from_rate, SAMPLE_RATE)))
