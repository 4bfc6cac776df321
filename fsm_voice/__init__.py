"""fsm_voice: a runtime for phone-call voice agents.

The top level also answers voice_runtime's twelve top-level names (`from fsm_voice
import VoiceSession, create_stt, …`). They are imported on first use, so `import
fsm_voice` (and the CLI) does not load the compat wing, the providers or the mixer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsm_voice.audio import AudioMixer, mix_frames
    from fsm_voice.errors import CallHangupError, CallNotAnsweredError, MissingStreamUrlError
    from fsm_voice.providers.protocols import SttProvider, TtsProvider
    from fsm_voice.session import VoiceSession
    from fsm_voice.stt import create_stt, get_stt_class
    from fsm_voice.transport import get_sms_transport
    from fsm_voice.tts import create_tts

# voice_runtime 0.1.15's `__all__`, in its order: name → the module that defines it here.
_SEED_NAMES = {
    "VoiceSession": "fsm_voice.session",
    "MissingStreamUrlError": "fsm_voice.errors",
    "CallNotAnsweredError": "fsm_voice.errors",
    "CallHangupError": "fsm_voice.errors",
    "create_stt": "fsm_voice.stt",
    "get_stt_class": "fsm_voice.stt",
    "create_tts": "fsm_voice.tts",
    "get_sms_transport": "fsm_voice.transport",
    "AudioMixer": "fsm_voice.audio",
    "mix_frames": "fsm_voice.audio",
    "SttProvider": "fsm_voice.providers.protocols",
    "TtsProvider": "fsm_voice.providers.protocols",
}

__all__ = [
    "AudioMixer",
    "CallHangupError",
    "CallNotAnsweredError",
    "MissingStreamUrlError",
    "SttProvider",
    "TtsProvider",
    "VoiceSession",
    "create_stt",
    "create_tts",
    "get_sms_transport",
    "get_stt_class",
    "mix_frames",
]


def __getattr__(name: str) -> Any:
    module = _SEED_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'fsm_voice' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once found, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
