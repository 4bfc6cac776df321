"""G.711 μ-law, the 8 kHz telephone codec Twilio Media Streams carry.

Bit-exact with `audioop.lin2ulaw(x, 2)` / `audioop.ulaw2lin(x, 2)` (audioop left the
stdlib in Python 3.13). Both directions are table lookups built once at import.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "SAMPLE_RATE",
    "SILENCE_BYTE",
    "decode",
    "encode",
]

SAMPLE_RATE: Final = 8000
FRAME_MS: Final = 20
FRAME_BYTES: Final = SAMPLE_RATE * FRAME_MS // 1000  # 160: one byte per sample
SILENCE_BYTE: Final = 0xFF  # the code for +0

_BIAS: Final = 0x84
_CLIP: Final = 32635  # largest magnitude that still fits in 15 bits after the bias


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Entry i is the code for the int16 whose bit pattern is i (the uint16 view).
    x = np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)
    # G.711 carries 14 bits; audioop drops the low two with an arithmetic shift, so
    # negative samples round toward -inf (-1 encodes as 0x7E, not 0x7F).
    x = (x >> 2) << 2
    negative = x < 0
    magnitude = np.minimum(np.abs(x), _CLIP) + _BIAS  # now in [0x84, 0x7FFF]
    # Segment = index of the highest set bit above bit 7 (0..7); frexp gives the
    # bit length exactly, with no float rounding to worry about.
    exponent = np.frexp(magnitude >> 7)[1].astype(np.int32) - 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code: npt.NDArray[np.int32] = (np.where(negative, 0x80, 0) | (exponent << 4) | mantissa) ^ 0xFF
    return code.astype(np.uint8)


def _build_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + _BIAS) << exponent
    linear = np.where(u & 0x80, _BIAS - magnitude, magnitude - _BIAS)
    return linear.astype(np.int16)


_ENCODE: Final = _build_encode_table()
_DECODE: Final = _build_decode_table()


def encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 PCM samples as μ-law bytes, one per sample."""
    samples = np.ascontiguousarray(pcm, dtype=np.int16)
    return _ENCODE[samples.view(np.uint16)].tobytes()


def decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode μ-law bytes to int16 PCM samples."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]
