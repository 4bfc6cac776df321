"""WAV reading and writing: μ-law (hand-written RIFF) and PCM16 (stdlib wave)."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from fsm_voice.audio import (
    WavAudio,
    WavError,
    decode,
    encode,
    read_wav,
    read_wav_as_mulaw_8k,
    wav_bytes_mulaw,
    wav_bytes_pcm16,
    write_wav_mulaw,
    write_wav_pcm16,
)

SUBTYPE_TAIL = b"\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    pad = b"\x00" * (len(body) & 1)
    return chunk_id + struct.pack("<I", len(body)) + body + pad


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_body(tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def sine(n: int, rate: int, freq: float = 440.0) -> np.ndarray:
    return (10000 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.int16)


def test_mulaw_round_trip_bytes() -> None:
    data = bytes(range(256)) * 3
    assert read_wav(wav_bytes_mulaw(data)) == WavAudio(8000, 1, "mulaw", data)


def test_mulaw_round_trip_file(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    data = bytes(range(200))
    write_wav_mulaw(path, data, sample_rate=16000, channels=2)
    assert read_wav(path) == WavAudio(16000, 2, "mulaw", data)
    assert read_wav(str(path)) == read_wav(path.read_bytes())


def test_mulaw_odd_length_is_padded() -> None:
    blob = wav_bytes_mulaw(bytes(161))
    assert len(blob) % 2 == 0
    assert struct.unpack_from("<I", blob, 4)[0] == len(blob) - 8
    assert read_wav(blob).data == bytes(161)


def test_mulaw_header_fields() -> None:
    data = bytes(range(100))
    blob = wav_bytes_mulaw(data, sample_rate=8000, channels=2)
    assert blob[0:4] == b"RIFF"
    assert struct.unpack_from("<I", blob, 4)[0] == len(blob) - 8
    assert blob[8:12] == b"WAVE"
    assert blob[12:16] == b"fmt "
    assert struct.unpack_from("<I", blob, 16)[0] == 18
    assert blob[20:22] == b"\x07\x00"  # WAVE_FORMAT_MULAW
    assert blob[22:24] == b"\x02\x00"  # channels
    assert blob[24:28] == struct.pack("<I", 8000)  # sample rate
    assert blob[28:32] == struct.pack("<I", 16000)  # bytes per second
    assert blob[32:34] == b"\x02\x00"  # block align
    assert blob[34:36] == b"\x08\x00"  # bits per sample
    assert blob[36:38] == b"\x00\x00"  # cbSize
    assert blob[38:42] == b"fact"
    assert struct.unpack_from("<II", blob, 42) == (4, 50)  # sample frames per channel
    assert blob[50:54] == b"data"
    assert struct.unpack_from("<I", blob, 54)[0] == 100
    assert blob[58:] == data


def test_pcm16_round_trip_mono_and_stereo(tmp_path: Path) -> None:
    mono = sine(1000, 16000)
    assert read_wav(wav_bytes_pcm16(mono, 16000)) == WavAudio(
        16000, 1, "pcm16", mono.astype("<i2").tobytes()
    )
    stereo = np.stack([mono, -mono], axis=1)
    path = tmp_path / "stereo.wav"
    write_wav_pcm16(path, stereo, 44100)
    audio = read_wav(path)
    assert (audio.sample_rate, audio.channels, audio.encoding) == (44100, 2, "pcm16")
    np.testing.assert_array_equal(np.frombuffer(audio.data, "<i2").reshape(-1, 2), stereo)


def test_pcm16_is_readable_by_stdlib_wave() -> None:
    samples = sine(500, 8000)
    with wave.open(io.BytesIO(wav_bytes_pcm16(samples, 8000))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.readframes(w.getnframes()) == samples.astype("<i2").tobytes()


def test_pcm16_rejects_3d() -> None:
    with pytest.raises(ValueError, match="1-D or 2-D"):
        wav_bytes_pcm16(np.zeros((2, 2, 2), dtype=np.int16), 8000)


def test_mulaw_rejects_ragged_channels() -> None:
    with pytest.raises(ValueError, match="channels"):
        wav_bytes_mulaw(bytes(3), channels=2)


@pytest.mark.parametrize(("tag", "bits", "encoding"), [(1, 16, "pcm16"), (7, 8, "mulaw")])
def test_reads_extensible(tag: int, bits: int, encoding: str) -> None:
    ext = fmt_body(0xFFFE, 1, 8000, bits) + struct.pack("<HHI", 22, bits, 4)
    ext += struct.pack("<I", tag) + SUBTYPE_TAIL
    audio = read_wav(riff(chunk(b"fmt ", ext), chunk(b"data", bytes(8))))
    assert (audio.encoding, audio.data) == (encoding, bytes(8))


def test_skips_unknown_and_odd_chunks() -> None:
    blob = riff(
        chunk(b"LIST", b"abc"),  # odd size: one pad byte follows
        chunk(b"fmt ", fmt_body(7, 1, 8000, 8)),
        chunk(b"junk", bytes(7)),
        chunk(b"data", b"\x01\x02\x03"),
    )
    assert read_wav(blob) == WavAudio(8000, 1, "mulaw", b"\x01\x02\x03")


def test_streamed_data_size_placeholder() -> None:
    blob = riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16)))
    blob += b"data" + struct.pack("<I", 0xFFFFFFFF) + bytes(10)
    assert read_wav(blob).data == bytes(10)


def test_torn_last_sample_frame_is_dropped() -> None:
    blob = riff(chunk(b"fmt ", fmt_body(1, 2, 8000, 16)), chunk(b"data", bytes(10)))
    assert read_wav(blob).data == bytes(8)


def test_read_stereo_16k_pcm_as_mulaw_8k() -> None:
    left = sine(16000, 16000)  # one second
    blob = wav_bytes_pcm16(np.stack([left, left], axis=1), 16000)
    out = read_wav_as_mulaw_8k(blob)
    assert len(out) == 8000
    spectrum = np.abs(np.fft.rfft(decode(out).astype(np.float64)))
    assert int(np.argmax(spectrum)) == 440  # 1 Hz bins over one second


def test_downmix_averages_channels() -> None:
    left = sine(8000, 8000)
    out = read_wav_as_mulaw_8k(wav_bytes_pcm16(np.stack([left, -left], axis=1), 8000))
    assert not decode(out).any()


def test_mono_8k_sources_convert_exactly() -> None:
    samples = sine(800, 8000)
    assert read_wav_as_mulaw_8k(wav_bytes_pcm16(samples, 8000)) == encode(samples)
    data = bytes(range(256))
    assert read_wav_as_mulaw_8k(wav_bytes_mulaw(data)) == data


def test_mulaw_16k_as_mulaw_8k() -> None:
    assert len(read_wav_as_mulaw_8k(wav_bytes_mulaw(encode(sine(3200, 16000)), 16000))) == 1600


GOOD = wav_bytes_mulaw(bytes(800))


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (b"", "too short"),
        (b"hello, this is not audio", "not a RIFF/WAVE"),
        (GOOD[:-50], "truncated"),
        (riff(chunk(b"fmt ", fmt_body(7, 1, 8000, 8))), "no 'data' chunk"),
        (riff(chunk(b"data", bytes(4))), "no 'fmt ' chunk"),
        (riff(chunk(b"fmt ", bytes(10)), chunk(b"data", bytes(4))), "needs at least 16"),
        (riff(chunk(b"fmt ", fmt_body(3, 1, 8000, 32)), chunk(b"data", bytes(4))), "tag 3"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 8)), chunk(b"data", bytes(4))), "8-bit"),
        (riff(chunk(b"fmt ", fmt_body(7, 0, 8000, 8)), chunk(b"data", bytes(4))), "inconsistent"),
        (riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, 8000, 8)), chunk(b"data", b"")), "EXTENSIBLE"),
    ],
)
def test_bad_files_raise_wav_error(blob: bytes, problem: str) -> None:
    with pytest.raises(WavError, match=problem):
        read_wav(blob)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(GOOD[:100])
    with pytest.raises(WavError, match=r"broken\.wav.*truncated"):
        read_wav(path)
    with pytest.raises(WavError, match=r"broken\.wav"):
        read_wav_as_mulaw_8k(path)
    assert issubclass(WavError, ValueError)
