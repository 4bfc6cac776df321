"""The fake Azure SDK against the real one: every name the adapters use exists in the
installed `azure.cognitiveservices.speech` with the same shape, and in the fake.

The adapters cannot reach the service here, so this is what keeps the fake honest:
a renamed SDK method or enum value fails this test, not a production call.
"""

from __future__ import annotations

import inspect
import sys
from enum import Enum
from typing import Any

import azure.cognitiveservices.speech as speechsdk
import fake_azure_types as ft
import pytest
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService

from fsm_voice.clock import VirtualClock
from fsm_voice.errors import ConfigError
from fsm_voice.providers.azure_common import load_sdk
from fsm_voice.providers.azure_stt import AzureRecognizer
from fsm_voice.providers.azure_tts import AzureSynthesizer
from fsm_voice.providers.base import Transcript

# Module-level names the adapters (and the fake) use.
TOP_LEVEL = [
    *("SpeechConfig", "SpeechRecognizer", "SpeechSynthesizer", "Connection"),
    *("PhraseListGrammar", "PropertyId", "OutputFormat", "ResultReason"),
    *("CancellationReason", "CancellationErrorCode", "SpeechSynthesisOutputFormat"),
    *("ResultFuture", "EventSignal", "CancellationDetails"),
    "SpeechSynthesisCancellationDetails",
]
AUDIO = ["AudioStreamFormat", "AudioStreamWaveFormat", "PushAudioInputStream", "AudioConfig"]

# Class → the members the adapters touch.
MEMBERS: dict[str, list[str]] = {
    "SpeechRecognizer": [
        *("recognizing", "recognized", "canceled", "session_started", "session_stopped"),
        *("speech_start_detected", "start_continuous_recognition_async"),
        "stop_continuous_recognition_async",
    ],
    "SpeechSynthesizer": [
        *("synthesizing", "synthesis_started", "synthesis_completed", "synthesis_canceled"),
        *("speak_text_async", "start_speaking_text_async", "stop_speaking_async"),
    ],
    "SpeechConfig": [
        *("set_property", "get_property", "speech_recognition_language", "output_format"),
        *("speech_synthesis_voice_name", "set_speech_synthesis_output_format"),
        *("subscription_key", "region"),
    ],
    "Connection": ["from_recognizer", "connected", "disconnected", "open", "close"],
    "PhraseListGrammar": ["from_recognizer", "addPhrase", "clear", "setWeight"],
    "EventSignal": ["connect", "disconnect_all", "is_connected"],
    "ResultFuture": ["get"],
    "SpeechRecognitionResult": ["text", "reason", "offset", "duration", "json"],
    "SpeechSynthesisResult": ["audio_data", "reason", "cancellation_details", "result_id"],
    "CancellationDetails": ["reason", "code", "error_details"],
    "SpeechSynthesisCancellationDetails": ["reason", "error_code", "error_details"],
    "RecognitionEventArgs": ["offset"],
    "SpeechRecognitionEventArgs": ["result"],
    "SpeechRecognitionCanceledEventArgs": ["cancellation_details"],
    "SpeechSynthesisEventArgs": ["result"],
}

# Constructors, with the keywords the adapters pass.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("SpeechConfig", {"subscription": "k", "region": "westeurope"}),
    ("SpeechRecognizer", {"speech_config": None, "audio_config": None}),
    ("SpeechSynthesizer", {"speech_config": None, "audio_config": None}),
    (
        "audio.AudioStreamFormat",
        {"samples_per_second": 8000, "bits_per_sample": 8, "channels": 1, "wave_stream_format": 7},
    ),
    ("audio.PushAudioInputStream", {"stream_format": None}),
    ("audio.AudioConfig", {"stream": None}),
]


def resolve(module: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def fake_instances() -> dict[str, Any]:
    """An instance of each fake class (instance attributes count as surface)."""
    sdk = FakeSpeechSdk(FakeSpeechService())
    stream = sdk.audio.PushAudioInputStream()
    config = sdk.SpeechConfig(subscription="k", region="r")
    recognizer = sdk.SpeechRecognizer(config, sdk.audio.AudioConfig(stream=stream))
    recognition = ft.SpeechRecognitionResult(ft.ResultReason.RecognizedSpeech)
    details = ft.CancellationDetails(
        ft.CancellationReason.Error, ft.CancellationErrorCode.NoError, ""
    )
    synthesis = ft.SpeechSynthesisResult(ft.ResultReason.SynthesizingAudio)
    return {
        "SpeechRecognizer": recognizer,
        "SpeechSynthesizer": sdk.SpeechSynthesizer(config, None),
        "SpeechConfig": config,
        "Connection": sdk.Connection.from_recognizer(recognizer),
        "PhraseListGrammar": sdk.PhraseListGrammar.from_recognizer(recognizer),
        "EventSignal": ft.EventSignal([]),
        "ResultFuture": ft.ResultFuture(lambda: None),
        "SpeechRecognitionResult": recognition,
        "SpeechSynthesisResult": synthesis,
        "CancellationDetails": details,
        "SpeechSynthesisCancellationDetails": ft.SpeechSynthesisCancellationDetails(
            ft.CancellationReason.Error, ft.CancellationErrorCode.NoError, ""
        ),
        "RecognitionEventArgs": ft.RecognitionEventArgs("s", 0),
        "SpeechRecognitionEventArgs": ft.SpeechRecognitionEventArgs("s", recognition),
        "SpeechRecognitionCanceledEventArgs": ft.SpeechRecognitionCanceledEventArgs("s", details),
        "SpeechSynthesisEventArgs": ft.SpeechSynthesisEventArgs(synthesis),
    }


def test_module_names_exist_in_the_sdk_and_the_fake() -> None:
    fake = FakeSpeechSdk(FakeSpeechService())
    for name in TOP_LEVEL:
        assert hasattr(speechsdk, name), f"the SDK has no {name}"
        assert hasattr(fake, name), f"the fake has no {name}"
    for name in AUDIO:
        assert hasattr(speechsdk.audio, name), f"the SDK has no audio.{name}"
        assert hasattr(fake.audio, name), f"the fake has no audio.{name}"


@pytest.mark.parametrize("cls", sorted(MEMBERS))
def test_members_exist_in_the_sdk_and_the_fake(cls: str) -> None:
    fake = fake_instances()[cls]
    for member in MEMBERS[cls]:
        assert hasattr(getattr(speechsdk, cls), member), f"the SDK has no {cls}.{member}"
        assert hasattr(fake, member), f"the fake has no {cls}.{member}"


def test_enum_members_of_the_fake_match_the_sdk_by_name_and_value() -> None:
    enums = [value for value in vars(ft).values() if isinstance(value, type)]
    enums = [e for e in enums if issubclass(e, Enum) and e is not Enum]
    assert len(enums) >= 7
    for fake_enum in enums:
        real = getattr(speechsdk, fake_enum.__name__, None) or getattr(
            speechsdk.audio, fake_enum.__name__
        )
        for member in fake_enum:
            assert real[member.name].value == member.value, f"{fake_enum.__name__}.{member.name}"


@pytest.mark.parametrize(("dotted", "keywords"), CALLS)
def test_the_adapters_keywords_fit_the_sdks_signatures(
    dotted: str, keywords: dict[str, Any]
) -> None:
    inspect.signature(resolve(speechsdk, dotted)).bind_partial(**keywords)
    fake = FakeSpeechSdk(FakeSpeechService())
    inspect.signature(resolve(fake, dotted)).bind_partial(**keywords)


def test_the_real_sdk_is_what_the_adapters_load_by_default() -> None:
    assert load_sdk() is speechsdk


@pytest.mark.anyio
async def test_a_missing_sdk_is_an_error_that_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "azure.cognitiveservices.speech", None)  # not installed
    errors: list[tuple[str, bool]] = []

    class Listener:
        def on_speech_started(self, t_ms: int) -> None: ...
        def on_recognizing(self, text: str) -> None: ...
        def on_committed(self, transcript: Transcript) -> None: ...
        def on_error(self, reason: str, fatal: bool) -> None:
            errors.append((reason, fatal))

        def on_state(self, state: str, detail: str) -> None: ...

    recognizer = AzureRecognizer(key="k", clock=VirtualClock(), environ={})
    await recognizer.start(Listener())
    assert recognizer.machine.state == "error"
    ((reason, fatal),) = errors
    assert fatal and "pip install 'fsm-voice[azure]'" in reason
    await recognizer.stop()
    synthesizer = AzureSynthesizer(key="k", environ={})
    with pytest.raises(ConfigError, match=r"fsm-voice\[azure\]"):
        await synthesizer.start()
