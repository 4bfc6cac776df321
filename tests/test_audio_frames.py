"""20 ms frames, silence and mixing of μ-law tracks."""

from __future__ import annotations

import numpy as np
import pytest

from fsm_voice.audio import (
    FRAME_BYTES,
    SILENCE_BYTE,
    decode,
    encode,
    mix,
    mix_frames,
    pad_to_frame,
    silence,
    split_frames,
)


def tone(n: int, amplitude: float = 8000.0) -> bytes:
    t = np.arange(n)
    return encode((amplitude * np.sin(2 * np.pi * 440 * t / 8000)).astype(np.int16))


def test_split_whole_frames() -> None:
    data = bytes(range(256)) + bytes(64)
    frames = split_frames(data)
    assert [len(f) for f in frames] == [160, 160]
    assert b"".join(frames) == data


def test_split_pads_last_frame_with_silence() -> None:
    data = bytes(170)
    frames = split_frames(data)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[1] == bytes(10) + bytes([SILENCE_BYTE]) * 150


def test_split_without_pad_keeps_short_frame() -> None:
    assert [len(f) for f in split_frames(bytes(170), pad=False)] == [160, 10]


def test_split_custom_size_and_empty() -> None:
    assert split_frames(bytes(5), 2) == [bytes(2), bytes(2), b"\x00\xff"]
    assert split_frames(b"") == []
    with pytest.raises(ValueError, match="frame_bytes"):
        split_frames(bytes(5), 0)


@pytest.mark.parametrize(("n", "padded"), [(0, 0), (1, 160), (159, 160), (160, 160), (161, 320)])
def test_pad_to_frame(n: int, padded: int) -> None:
    out = pad_to_frame(bytes(n))
    assert len(out) == padded
    assert out[n:] == bytes([SILENCE_BYTE]) * (padded - n)


def test_silence() -> None:
    assert silence(20) == bytes([SILENCE_BYTE]) * FRAME_BYTES
    assert silence(0) == b""
    assert len(silence(1000)) == 8000
    assert not decode(silence(3)).any()
    with pytest.raises(ValueError, match="silence"):
        silence(-1)


def test_mix_with_silence_is_identity() -> None:
    a = tone(400)
    assert mix(a, silence(50)) == a
    assert mix(silence(50), a) == a


def test_mix_pads_shorter_track() -> None:
    a, b = tone(400), tone(100, 2000.0)
    out = mix(a, b)
    assert len(out) == 400
    assert out[100:] == a[100:]


def test_mix_adds_quiet_tracks() -> None:
    a = encode(np.full(10, 1000, dtype=np.int16))
    out = decode(mix(a, a))
    assert np.all(np.abs(out - 2 * decode(a)[0]) < 64)  # within one μ-law step


def test_mix_saturates_instead_of_wrapping() -> None:
    loud = bytes([0x80]) * FRAME_BYTES  # +32124, the largest positive code
    assert mix(loud, loud) == loud
    quiet_loud = encode(np.full(FRAME_BYTES, 20000, dtype=np.int16))
    assert mix(quiet_loud, quiet_loud) == loud
    negative = bytes([0x00]) * FRAME_BYTES
    assert mix(negative, negative) == negative


def test_mix_frames_is_mix() -> None:
    assert mix_frames is mix
