"""One Azure recognition session at the SDK boundary: build it, turn its callbacks
into plain events, close it. Everything here runs on the recogniser's SDK thread
(`fsm_voice.providers.azure_stt` hands the events to the loop).

Each callback copies what it needs out of the SDK's event object at once (the SDK
releases the native handle when the callback returns) into a small frozen event,
tagged with the session's generation so the adapter can tell a late event of a
session it already let go of.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fsm_voice.providers.azure_common import AzureSettings, AzureSpeechError, cancellation_error
from fsm_voice.providers.base import StreamPosition

__all__ = [
    "Cancelled",
    "FinalResult",
    "Hypothesis",
    "SdkEvent",
    "ServiceConnected",
    "Session",
    "SessionStopped",
    "SpeechStarted",
    "apply_phrases",
    "close_session",
    "open_session",
]

log = logging.getLogger(__name__)

_TICKS_PER_MS = 10_000  # the SDK's offsets and durations are 100 ns ticks


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    offset_ms: int


@dataclass(frozen=True, slots=True)
class Hypothesis:
    text: str
    offset_ms: int


@dataclass(frozen=True, slots=True)
class FinalResult:
    text: str
    offset_ms: int
    duration_ms: int
    confidence: float | None
    alternatives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cancelled:
    reason: str  # CancellationReason name: Error, EndOfStream, CancelledByUser
    error: AzureSpeechError


@dataclass(frozen=True, slots=True)
class SessionStopped:
    pass


@dataclass(frozen=True, slots=True)
class ServiceConnected:
    pass


SdkEvent = SpeechStarted | Hypothesis | FinalResult | Cancelled | SessionStopped | ServiceConnected


@dataclass(slots=True)
class Session:
    """One connection: a recogniser reading its own push stream."""

    generation: int
    recognizer: Any
    stream: Any
    position: StreamPosition = field(default_factory=StreamPosition)  # in call time
    signals: list[Any] = field(default_factory=list)


def offset_ms(ticks: Any) -> int:
    return int(ticks or 0) // _TICKS_PER_MS


def nbest(payload: str) -> tuple[float | None, tuple[str, ...]]:
    """Confidence of the best hypothesis and the other hypotheses, from the detailed
    result JSON (`OutputFormat.Detailed`); nothing when it is absent or malformed."""
    try:
        nbest = json.loads(payload).get("NBest") or []
        confidence = nbest[0].get("Confidence") if nbest else None
        others = tuple(str(h.get("Display", "")) for h in nbest[1:] if h.get("Display"))
        return (float(confidence) if confidence is not None else None), others
    except (ValueError, TypeError, AttributeError, IndexError):
        return None, ()


Deliver = Callable[[int, SdkEvent], None]
"""`(generation, event)`: where a session's events go (called on SDK threads)."""


def open_session(
    sdk: Any, settings: AzureSettings, generation: int, phrases: tuple[str, ...], deliver: Deliver
) -> Session:
    """A recogniser on a new 8 kHz μ-law push stream, continuous recognition started."""
    config = settings.speech_config(sdk)
    config.speech_recognition_language = settings.language
    silence = str(settings.silence_timeout_ms)
    # Segmentation silence ends each phrase in continuous recognition; end
    # silence bounds the service's own end-of-speech wait the same way.
    config.set_property(sdk.PropertyId.Speech_SegmentationSilenceTimeoutMs, silence)
    config.set_property(sdk.PropertyId.SpeechServiceConnection_EndSilenceTimeoutMs, silence)
    config.output_format = sdk.OutputFormat.Detailed  # NBest: confidence, alternatives
    stream_format = sdk.audio.AudioStreamFormat(
        samples_per_second=8000,
        bits_per_sample=8,
        channels=1,
        wave_stream_format=sdk.audio.AudioStreamWaveFormat.MULAW,
    )
    stream = sdk.audio.PushAudioInputStream(stream_format=stream_format)
    audio_config = sdk.audio.AudioConfig(stream=stream)
    recognizer = sdk.SpeechRecognizer(speech_config=config, audio_config=audio_config)
    session = Session(generation, recognizer, stream)
    _subscribe(sdk, session, deliver)
    apply_phrases(sdk, recognizer, phrases)
    try:
        recognizer.start_continuous_recognition_async().get()
    except Exception:
        close_session(session)
        raise
    return session


def apply_phrases(sdk: Any, recognizer: Any, phrases: tuple[str, ...]) -> None:
    """The listen state's expected phrases become the recogniser's phrase list."""
    phrase_list = sdk.PhraseListGrammar.from_recognizer(recognizer)
    phrase_list.clear()
    for phrase in phrases:
        phrase_list.addPhrase(phrase)


def close_session(session: Session) -> None:
    """Stop recognition and release the stream; failures here change nothing."""
    for signal in session.signals:
        signal.disconnect_all()
    try:
        session.recognizer.stop_continuous_recognition_async().get()
    except Exception as exc:
        log.debug("stopping recognition failed: %s", exc)
    try:
        session.stream.close()
    except Exception as exc:
        log.debug("closing the push stream failed: %s", exc)


def _subscribe(sdk: Any, session: Session, deliver: Deliver) -> None:
    recognizer = session.recognizer
    connection = sdk.Connection.from_recognizer(recognizer)
    handlers: list[tuple[Any, Callable[[Any], SdkEvent | None]]] = [
        (connection.connected, lambda e: ServiceConnected()),
        (recognizer.speech_start_detected, lambda e: SpeechStarted(offset_ms(e.offset))),
        (recognizer.recognizing, _hypothesis),
        (recognizer.recognized, lambda e: _final(sdk, e)),
        (recognizer.canceled, _cancelled),
        (recognizer.session_stopped, lambda e: SessionStopped()),
    ]
    for signal, convert in handlers:
        signal.connect(_relay(session.generation, convert, deliver))
        session.signals.append(signal)


def _relay(
    generation: int, convert: Callable[[Any], SdkEvent | None], deliver: Deliver
) -> Callable[[Any], None]:
    def on_sdk_thread(evt: Any) -> None:
        event = convert(evt)  # copied now: the SDK releases the event's handle after this
        if event is not None:
            deliver(generation, event)

    return on_sdk_thread


def _hypothesis(evt: Any) -> Hypothesis | None:
    text = str(evt.result.text or "")
    return Hypothesis(text, offset_ms(evt.result.offset)) if text else None


def _final(sdk: Any, evt: Any) -> FinalResult | None:
    result = evt.result
    if result.reason == sdk.ResultReason.RecognizedSpeech:
        confidence, alternatives = nbest(str(result.json or ""))
        text = str(result.text or "")
    elif result.reason == sdk.ResultReason.NoMatch:  # noise: an empty transcript
        confidence, alternatives, text = None, (), ""
    else:
        return None
    offset = offset_ms(result.offset)
    return FinalResult(text, offset, offset_ms(result.duration), confidence, alternatives)


def _cancelled(evt: Any) -> Cancelled:
    details = evt.cancellation_details
    reason = str(getattr(details.reason, "name", details.reason))
    return Cancelled(reason, cancellation_error(details, "recognition"))
