"""G.711 μ-law: bit-exact against a scalar reference and, where present, audioop."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pytest

from fsm_voice.audio import mulaw
from fsm_voice.audio.mulaw import decode, encode

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def ref_encode(sample: int) -> int:
    """Textbook G.711 μ-law encoder, one sample at a time."""
    # G.711 works on 14 bits; audioop feeds it `sample >> 2`, which floors, so negative
    # samples that are not multiples of 4 round away from zero (-1 -> 0x7E, not 0x7F).
    sample = (sample >> 2) << 2
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = 0
    while magnitude >= (0x100 << exponent):
        exponent += 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ref_decode(code: int) -> int:
    u = ~code & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if u & 0x80 else magnitude


def load_audioop() -> ModuleType:
    # audioop warns on import from 3.11 and is gone in 3.13.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            pytest.skip("audioop is not available on this Python")
    return audioop


def test_constants() -> None:
    assert mulaw.SAMPLE_RATE == 8000
    assert mulaw.FRAME_MS == 20
    assert mulaw.FRAME_BYTES == 160
    assert mulaw.SILENCE_BYTE == 0xFF
    assert decode(bytes([mulaw.SILENCE_BYTE]))[0] == 0


def test_encode_every_int16_matches_reference() -> None:
    expected = bytes(ref_encode(int(x)) for x in ALL_INT16)
    assert encode(ALL_INT16) == expected


def test_decode_every_code_matches_reference() -> None:
    decoded = decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tolist() == [ref_decode(c) for c in ALL_CODES]


def test_encode_every_int16_matches_audioop() -> None:
    audioop = load_audioop()
    assert encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16.astype("<i2").tobytes(), 2)


def test_decode_every_code_matches_audioop() -> None:
    audioop = load_audioop()
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype="<i2")
    np.testing.assert_array_equal(decode(ALL_CODES), expected)


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xFF), (1, 0xFF), (4, 0xFE), (-1, 0x7E), (-4, 0x7E), (32767, 0x80), (-32768, 0x00)],
)
def test_known_encode_vectors(sample: int, code: int) -> None:
    assert ref_encode(sample) == code
    assert encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "sample"), [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xFE, 8)]
)
def test_known_decode_vectors(code: int, sample: int) -> None:
    assert decode(bytes([code]))[0] == sample


def test_decode_encode_decode_round_trip() -> None:
    once = decode(ALL_CODES)
    np.testing.assert_array_equal(decode(encode(once)), once)


def test_encode_accepts_strided_and_big_endian_input() -> None:
    samples = ALL_INT16[::7]
    expected = encode(samples.copy())
    assert encode(samples) == expected
    assert encode(samples.astype(">i2")) == expected


def test_empty() -> None:
    assert encode(np.zeros(0, dtype=np.int16)) == b""
    assert decode(b"").shape == (0,)
