"""Telephone audio: G.711 μ-law, 20 ms frames, WAV files, resampling and the mixer.

This package is also voice_runtime's import path `voice_runtime.audio`: the mixer and
the seed's audio constants come from the compat wing (`fsm_voice.compat.mixer`).
"""

from typing import TYPE_CHECKING, Any

from fsm_voice.audio.frames import mix, mix_frames, pad_to_frame, silence, split_frames
from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, SILENCE_BYTE, decode, encode
from fsm_voice.audio.resample import (
    float_to_mulaw_8k,
    float_to_pcm16,
    mulaw_8k_to_float,
    pcm16_to_float,
    resample,
)
from fsm_voice.audio.wav import (
    WavAudio,
    WavError,
    read_wav,
    read_wav_as_mulaw_8k,
    wav_bytes_mulaw,
    wav_bytes_pcm16,
    write_wav_mulaw,
    write_wav_pcm16,
)

if TYPE_CHECKING:
    from fsm_voice.compat.mixer import (  # noqa: TID251
        CATCHUP_LIMIT,
        FRAME_INTERVAL,
        MAX_FRAMES,
        SILENCE_FRAME,
        AudioMixer,
    )

_FROM_COMPAT = frozenset(
    ("CATCHUP_LIMIT", "FRAME_INTERVAL", "MAX_FRAMES", "SILENCE_FRAME", "AudioMixer")
)


def __getattr__(name: str) -> Any:
    # Looked up on first use: the compat mixer imports this package's own modules, so
    # importing it while this package initialises would be circular.
    if name in _FROM_COMPAT:
        from fsm_voice.compat import mixer  # noqa: TID251

        return getattr(mixer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CATCHUP_LIMIT",
    "FRAME_BYTES",
    "FRAME_INTERVAL",
    "FRAME_MS",
    "MAX_FRAMES",
    "SAMPLE_RATE",
    "SILENCE_BYTE",
    "SILENCE_FRAME",
    "AudioMixer",
    "WavAudio",
    "WavError",
    "decode",
    "encode",
    "float_to_mulaw_8k",
    "float_to_pcm16",
    "mix",
    "mix_frames",
    "mulaw_8k_to_float",
    "pad_to_frame",
    "pcm16_to_float",
    "read_wav",
    "read_wav_as_mulaw_8k",
    "resample",
    "silence",
    "split_frames",
    "wav_bytes_mulaw",
    "wav_bytes_pcm16",
    "write_wav_mulaw",
    "write_wav_pcm16",
]
