"""Resampling through soxr in float32, and the telephone conversions."""

from __future__ import annotations

import numpy as np
import pytest

from fsm_voice.audio import (
    encode,
    float_to_mulaw_8k,
    float_to_pcm16,
    mulaw_8k_to_float,
    pcm16_to_float,
    resample,
)


def sine(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum)) * rate / len(samples)


def test_upsample_keeps_frequency_and_length() -> None:
    out = resample(sine(1000, 8000), 8000, 16000)
    assert out.dtype == np.float32
    assert out.shape == (16000,)
    assert peak_hz(out, 16000) == pytest.approx(1000, abs=1)


def test_downsample_keeps_frequency() -> None:
    out = resample(sine(1000, 24000), 24000, 8000)
    assert out.dtype == np.float32
    assert out.shape == (8000,)
    assert peak_hz(out, 8000) == pytest.approx(1000, abs=1)


def test_equal_rates_is_identity() -> None:
    x = sine(1000, 8000)
    assert resample(x, 8000, 8000) is x


def test_resample_is_deterministic() -> None:
    x = sine(700, 8000)
    np.testing.assert_array_equal(resample(x, 8000, 22050), resample(x, 8000, 22050))


def test_resample_multichannel() -> None:
    x = np.stack([sine(500, 16000), sine(900, 16000)], axis=1)
    out = resample(x, 16000, 8000)
    assert out.shape == (8000, 2)
    assert out.dtype == np.float32


def test_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        resample(sine(1000, 8000), 0, 8000)


def test_pcm16_float_conversions() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    f = pcm16_to_float(pcm)
    assert f.dtype == np.float32
    assert f.min() == -1.0
    assert f.max() < 1.0
    np.testing.assert_array_equal(float_to_pcm16(f), pcm)


def test_float_to_pcm16_clips() -> None:
    out = float_to_pcm16(np.array([1.5, -1.5, 1.0, -1.0, 0.0], dtype=np.float32))
    assert out.dtype == np.int16
    assert out.tolist() == [32767, -32768, 32767, -32768, 0]


def test_telephone_path() -> None:
    mulaw = encode(float_to_pcm16(sine(1000, 8000)))
    wide = mulaw_8k_to_float(mulaw, 16000)
    assert wide.dtype == np.float32
    assert wide.shape == (16000,)
    assert peak_hz(wide, 16000) == pytest.approx(1000, abs=1)
    back = float_to_mulaw_8k(wide, 16000)
    assert len(back) == 8000
    assert float_to_mulaw_8k(sine(1000, 8000), 8000) == mulaw
