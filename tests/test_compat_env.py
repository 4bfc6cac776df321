"""voice_runtime's environment variables and factory names, with their documented defaults."""

from __future__ import annotations

import pytest

from fsm_voice import providers
from fsm_voice.compat.options import fit_options
from fsm_voice.compat.settings import VoiceRuntimeSettings
from fsm_voice.stt import (
    AzureStt,
    ElevenLabsStt,
    OfflineStt,
    ScriptedStt,
    create_stt,
    get_stt_class,
)
from fsm_voice.tts import ScriptedTts, create_tts


def test_documented_defaults_with_an_empty_environment() -> None:
    settings = VoiceRuntimeSettings.from_env({})
    assert settings.stream_url is None  # required: the Twilio helpers refuse to run without it
    assert settings.server_port == 8080
    assert settings.elevenlabs_voice_id == "21m00Tcm4TlvDq8ikWAM"  # "Rachel"
    assert settings.elevenlabs_model == "eleven_multilingual_v2"
    assert settings.stt_model_id == "scribe_v2_realtime"
    assert settings.stt_language_code == "fi"
    assert settings.azure_speech_region == "westeurope"
    assert settings.azure_tts_voice == "fi-FI-NooraNeural"
    assert settings.monitor is False
    assert (settings.twilio_account_sid, settings.twilio_auth_token) == (None, None)
    assert (settings.elevenlabs_api_key, settings.azure_speech_key) == (None, None)


def test_values_from_the_environment_and_secrets_stay_masked() -> None:
    env = {
        "VOICE_STREAM_URL": "wss://example.test/voice",
        "VOICE_SERVER_PORT": "9000",
        "TWILIO_ACCOUNT_SID": "AC123",
        "TWILIO_AUTH_TOKEN": "tok-secret",
        "TWILIO_PHONE_NUMBER": "+15550001111",
        "ELEVENLABS_API_KEY": "el-secret",
        "STT_LANGUAGE_CODE": "en",
        "AZURE_SPEECH_KEY": "az-secret",
        "AZURE_SPEECH_REGION": "northeurope",
        "VOICE_MONITOR": "true",
    }
    settings = VoiceRuntimeSettings.from_env(env)
    assert settings.stream_url == "wss://example.test/voice"
    assert (settings.server_port, settings.stt_language_code) == (9000, "en")
    assert settings.azure_speech_region == "northeurope"
    assert settings.monitor is True
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.reveal() == "tok-secret"
    for secret in ("tok-secret", "el-secret", "az-secret"):
        assert secret not in repr(settings)


def test_a_bad_port_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="VOICE_SERVER_PORT must be a port number, got 'x'"):
        VoiceRuntimeSettings.from_env({"VOICE_SERVER_PORT": "x"})


def test_stt_factory_names_and_default() -> None:
    assert get_stt_class() is ElevenLabsStt
    assert [get_stt_class(p) for p in ("azure", "offline", "scripted")] == [
        AzureStt,
        OfflineStt,
        ScriptedStt,
    ]
    assert isinstance(create_stt("scripted"), ScriptedStt)
    assert isinstance(create_tts("scripted"), ScriptedTts)
    with pytest.raises(ValueError, match="Unknown STT provider: whisper"):
        create_stt("whisper")
    with pytest.raises(ValueError, match="Unknown TTS provider: polly"):
        create_tts("polly")


def test_protocols_are_importable_from_providers() -> None:
    assert providers.SttProvider.__name__ == "SttProvider"
    assert providers.TtsProvider.__name__ == "TtsProvider"


def test_shared_option_names_fit_what_a_provider_takes() -> None:
    # voice_runtime's `SttClass(language_code="en")` must not break a provider that has
    # no language option; any other unknown option still fails loudly.
    fitted = fit_options("STT", "scripted", {"language_code": "en", "endpoint_ms": 200}, {})
    assert fitted == {"endpoint_ms": 200}
    assert isinstance(get_stt_class("scripted")(language_code="en"), ScriptedStt)
    with pytest.raises(TypeError):
        create_stt("scripted", no_such_option=1)
