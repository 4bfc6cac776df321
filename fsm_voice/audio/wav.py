"""WAV files: μ-law and 16-bit PCM, read and written.

The stdlib `wave` module only knows PCM (and on 3.11 not WAVE_FORMAT_EXTENSIBLE), so
it writes PCM16 here, while μ-law headers are written and all files parsed by hand.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from fsm_voice.audio.mulaw import SAMPLE_RATE, decode, encode
from fsm_voice.audio.resample import float_to_pcm16, pcm16_to_float, resample

__all__ = [
    "WavAudio",
    "WavError",
    "read_wav",
    "read_wav_as_mulaw_8k",
    "wav_bytes_mulaw",
    "wav_bytes_pcm16",
    "write_wav_mulaw",
    "write_wav_pcm16",
]

WAVE_FORMAT_PCM: Final = 1
WAVE_FORMAT_MULAW: Final = 7
WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE
# Bytes 4..15 of every KSDATAFORMAT_SUBTYPE_* GUID; bytes 0..3 hold the format tag.
_SUBTYPE_TAIL: Final = b"\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
# Streaming writers leave this in the data size when they cannot seek back.
_UNKNOWN_SIZE: Final = 0xFFFFFFFF


class WavError(ValueError):
    """A WAV file that is malformed or in a format this package does not read."""


@dataclass(frozen=True)
class WavAudio:
    """Decoded WAV contents; `data` is interleaved (μ-law bytes or little-endian int16)."""

    sample_rate: int
    channels: int
    encoding: Literal["mulaw", "pcm16"]
    data: bytes


@dataclass(frozen=True)
class _Format:
    tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits: int


def read_wav(source: str | Path | bytes) -> WavAudio:
    """Read a μ-law or PCM16 WAV from a path or from the file's bytes."""
    if isinstance(source, bytes):
        return _parse(source, "<bytes>")
    return _parse(Path(source).read_bytes(), str(source))


def _parse(buf: bytes, name: str) -> WavAudio:
    if len(buf) < 12:
        raise WavError(f"{name}: {len(buf)} bytes is too short for a WAV header")
    if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise WavError(f"{name}: not a RIFF/WAVE file (starts with {buf[:12]!r})")
    fmt: _Format | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(buf):  # a few stray trailing bytes are not a chunk
        chunk_id, size = struct.unpack_from("<4sI", buf, pos)
        body = buf[pos + 8 : pos + 8 + size]
        if chunk_id == b"data" and size == _UNKNOWN_SIZE:
            body = buf[pos + 8 :]
        elif len(body) < size:
            raise WavError(
                f"{name}: {chunk_id!r} chunk declares {size} bytes but only {len(body)}"
                " remain (truncated file?)"
            )
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body, name)
        elif chunk_id == b"data" and data is None:
            data = body
        pos += 8 + size + (size & 1)  # chunks are padded to even length
    if fmt is None:
        raise WavError(f"{name}: no 'fmt ' chunk")
    if data is None:
        raise WavError(f"{name}: no 'data' chunk")
    whole = len(data) - len(data) % fmt.block_align  # drop a torn last sample frame
    encoding: Literal["mulaw", "pcm16"] = "pcm16" if fmt.tag == WAVE_FORMAT_PCM else "mulaw"
    return WavAudio(fmt.sample_rate, fmt.channels, encoding, data[:whole])


def _parse_fmt(body: bytes, name: str) -> _Format:
    if len(body) < 16:
        raise WavError(f"{name}: 'fmt ' chunk is {len(body)} bytes, needs at least 16")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40 or body[28:40] != _SUBTYPE_TAIL:
            raise WavError(f"{name}: WAVE_FORMAT_EXTENSIBLE with a malformed sub-format")
        tag = struct.unpack_from("<I", body, 24)[0]
    expected_bits = {WAVE_FORMAT_PCM: 16, WAVE_FORMAT_MULAW: 8}.get(tag)
    if expected_bits is None:
        raise WavError(f"{name}: format tag {tag} is not supported (only PCM 1 and μ-law 7)")
    if bits != expected_bits:
        raise WavError(f"{name}: {bits}-bit samples in format {tag}, expected {expected_bits}")
    if channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise WavError(
            f"{name}: inconsistent fmt ({channels} channels, {rate} Hz, block {block_align})"
        )
    return _Format(tag, channels, rate, block_align, bits)


def wav_bytes_mulaw(data: bytes, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """A complete μ-law WAV file (format 7, with the `fact` chunk non-PCM formats need)."""
    _check_layout(sample_rate, channels)
    if len(data) % channels:
        raise ValueError(f"{len(data)} μ-law bytes do not split into {channels} channels")
    # tag, channels, rate, bytes/s, block align, bits/sample, cbSize (0: no extra fields)
    layout = (WAVE_FORMAT_MULAW, channels, sample_rate, sample_rate * channels, channels, 8, 0)
    fmt = struct.pack("<HHIIHHH", *layout)
    fact = struct.pack("<I", len(data) // channels)
    pad = b"\x00" * (len(data) & 1)
    body = b"".join(
        [
            b"WAVE",
            _chunk(b"fmt ", fmt),
            _chunk(b"fact", fact),
            _chunk(b"data", data) + pad,
        ]
    )
    return _chunk(b"RIFF", body)


def _chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body


def write_wav_mulaw(
    path: str | Path, data: bytes, sample_rate: int = SAMPLE_RATE, channels: int = 1
) -> None:
    """Write μ-law bytes to `path` as a WAV file."""
    Path(path).write_bytes(wav_bytes_mulaw(data, sample_rate, channels))


def wav_bytes_pcm16(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    """A PCM16 WAV file from mono (1-D) or interleaved (frames x channels) samples."""
    if samples.ndim not in (1, 2):
        raise ValueError(f"samples must be 1-D or 2-D, got shape {samples.shape}")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    _check_layout(sample_rate, channels)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return out.getvalue()


def write_wav_pcm16(path: str | Path, samples: npt.NDArray[np.int16], sample_rate: int) -> None:
    """Write int16 samples to `path` as a PCM16 WAV file."""
    Path(path).write_bytes(wav_bytes_pcm16(samples, sample_rate))


def _check_layout(sample_rate: int, channels: int) -> None:
    if sample_rate < 1 or channels < 1:
        raise ValueError(f"need a positive rate and channel count, got {sample_rate}, {channels}")


def read_wav_as_mulaw_8k(source: str | Path | bytes) -> bytes:
    """Any μ-law/PCM16 WAV as 8 kHz mono μ-law, ready to play into a call."""
    audio = read_wav(source)
    if audio.encoding == "mulaw" and audio.channels == 1 and audio.sample_rate == SAMPLE_RATE:
        return audio.data  # already telephone audio: no lossy re-encode
    if audio.encoding == "mulaw":
        pcm = decode(audio.data)
    else:
        pcm = np.frombuffer(audio.data, dtype="<i2").astype(np.int16)
    frames = pcm16_to_float(pcm).reshape(-1, audio.channels)
    mono = frames.mean(axis=1, dtype=np.float32)  # average, so the downmix cannot clip
    return encode(float_to_pcm16(resample(mono, audio.sample_rate, SAMPLE_RATE)))
