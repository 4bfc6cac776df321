"""voice_runtime's environment variables, with the defaults its documentation gives.

Read once, where a factory needs them; credentials come back as `Secret`s so they
cannot leak into a log line or a repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from fsm_voice.call.config import env_flag
from fsm_voice.security import Secret

__all__ = ["VoiceRuntimeSettings", "monitor_enabled"]

DEFAULT_SERVER_PORT = 8080
DEFAULT_ELEVENLABS_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"  # ElevenLabs' premade voice "Rachel"
DEFAULT_ELEVENLABS_MODEL = "eleven_multilingual_v2"
DEFAULT_STT_MODEL_ID = "scribe_v2_realtime"
DEFAULT_STT_LANGUAGE_CODE = "fi"
DEFAULT_AZURE_SPEECH_REGION = "westeurope"
DEFAULT_AZURE_TTS_VOICE = "fi-FI-NooraNeural"


def monitor_enabled(env: Mapping[str, str] | None = None) -> bool:
    """VOICE_MONITOR: live monitoring through ffplay; off unless set to 1/true/yes/on."""
    env = os.environ if env is None else env
    return env_flag(env.get("VOICE_MONITOR", ""))


@dataclass(frozen=True)
class VoiceRuntimeSettings:
    """Every variable voice_runtime documents; None where it has no default."""

    stream_url: str | None
    server_port: int
    twilio_account_sid: str | None
    twilio_auth_token: Secret | None
    twilio_phone_number: str | None
    elevenlabs_api_key: Secret | None
    elevenlabs_voice_id: str
    elevenlabs_model: str
    stt_model_id: str
    stt_language_code: str
    azure_speech_key: Secret | None
    azure_speech_region: str
    azure_tts_voice: str
    monitor: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VoiceRuntimeSettings:
        env = os.environ if env is None else env
        port = env.get("VOICE_SERVER_PORT") or str(DEFAULT_SERVER_PORT)
        try:
            server_port = int(port)
        except ValueError:
            raise ValueError(f"VOICE_SERVER_PORT must be a port number, got {port!r}") from None
        return cls(
            stream_url=env.get("VOICE_STREAM_URL") or None,
            server_port=server_port,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=Secret.from_env("TWILIO_AUTH_TOKEN", env),
            twilio_phone_number=env.get("TWILIO_PHONE_NUMBER") or None,
            elevenlabs_api_key=Secret.from_env("ELEVENLABS_API_KEY", env),
            elevenlabs_voice_id=env.get("ELEVENLABS_VOICE_ID") or DEFAULT_ELEVENLABS_VOICE_ID,
            elevenlabs_model=env.get("ELEVENLABS_MODEL") or DEFAULT_ELEVENLABS_MODEL,
            stt_model_id=env.get("STT_MODEL_ID") or DEFAULT_STT_MODEL_ID,
            stt_language_code=env.get("STT_LANGUAGE_CODE") or DEFAULT_STT_LANGUAGE_CODE,
            azure_speech_key=Secret.from_env("AZURE_SPEECH_KEY", env),
            azure_speech_region=env.get("AZURE_SPEECH_REGION") or DEFAULT_AZURE_SPEECH_REGION,
            azure_tts_voice=env.get("AZURE_TTS_VOICE") or DEFAULT_AZURE_TTS_VOICE,
            monitor=monitor_enabled(env),
        )
