"""Telephone audio: G.711 μ-law, 20 ms frames, WAV files, resampling and the mixer."""

from fsm_voice.audio.frames import mix, mix_frames, pad_to_frame, silence, split_frames
from fsm_voice.audio.mixer import AudioMixer
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

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "SAMPLE_RATE",
    "SILENCE_BYTE",
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
