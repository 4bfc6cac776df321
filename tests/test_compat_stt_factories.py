"""The compat factories take the seed's provider names, option names and errors."""

from __future__ import annotations

import pytest
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService

from fsm_voice.stt import (
    AzurePersistentStt,
    AzureStt,
    ElevenLabsStt,
    PersistentSttSession,
    create_stt,
    get_stt_class,
)
from fsm_voice.tts import AzureTTS, AzureTts, ElevenLabsTTS, ElevenLabsTts, create_tts


def test_the_seeds_class_names_with_ours_as_aliases() -> None:
    assert type(create_stt(api_key="k")).__name__ == "PersistentSttSession"
    assert type(create_tts(api_key="k")).__name__ == "ElevenLabsTTS"
    assert get_stt_class("azure").__name__ == "AzurePersistentStt"
    assert (ElevenLabsStt, AzureStt) == (PersistentSttSession, AzurePersistentStt)
    assert (ElevenLabsTts, AzureTts) == (ElevenLabsTTS, AzureTTS)


def test_unknown_providers_are_value_errors_worded_as_the_seed() -> None:
    with pytest.raises(ValueError, match=r"^Unknown STT provider: whisper \(known: "):
        create_stt("whisper")
    with pytest.raises(ValueError, match=r"^Unknown STT provider: whisper"):
        get_stt_class("whisper")
    with pytest.raises(ValueError, match=r"^Unknown TTS provider: polly \(known: "):
        create_tts("polly")


def test_azure_stt_takes_subscription_key() -> None:
    sdk = FakeSpeechSdk(FakeSpeechService())
    stt = create_stt(
        "azure", subscription_key="seed-key", region="northeurope", sdk=sdk, environ={}
    )
    assert isinstance(stt, AzurePersistentStt)
    settings = stt.recognizer.settings  # type: ignore[attr-defined]
    assert settings.key.reveal() == "seed-key"
    assert settings.region == "northeurope"


def test_a_none_option_means_from_the_environment_as_in_the_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "from-env")
    monkeypatch.setenv("AZURE_SPEECH_KEY", "azure-from-env")
    stt = create_stt("elevenlabs", api_key=None, language_code=None)
    assert stt.recognizer.settings.api_key.reveal() == "from-env"  # type: ignore[attr-defined]
    tts = create_tts("azure", subscription_key=None, sdk=FakeSpeechSdk(FakeSpeechService()))
    assert tts.synthesizer.settings.key.reveal() == "azure-from-env"  # type: ignore[attr-defined]
    # A native option's None is kept: here it turns the long-turn renewal off.
    native = create_stt("elevenlabs", renew_after_speaking_ms=None)
    assert native.recognizer.renew_after_speaking_ms is None  # type: ignore[attr-defined]
