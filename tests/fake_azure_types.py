"""The plain objects of the fake Azure Speech SDK (see tests/fake_azure_sdk.py):
enums with the real names and values, results, event arguments, configs, the push
stream and event signals. No behaviour beyond holding and handing over data."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from enum import Enum
from typing import Any

_TICKS_PER_MS = 10_000
AUTH_401 = (
    "WebSocket upgrade failed: Authentication error (401). "
    "Please check subscription information and region name."
)
QUOTA_429 = "WebSocket upgrade failed: Too many requests (429). Quota exceeded."


# --- enums: the real names and values ---


class ResultReason(Enum):
    NoMatch = 0
    Canceled = 1
    RecognizingSpeech = 2
    RecognizedSpeech = 3
    SynthesizingAudio = 8
    SynthesizingAudioCompleted = 9
    SynthesizingAudioStarted = 12


class CancellationReason(Enum):
    Error = 1
    EndOfStream = 2
    CancelledByUser = 3


class CancellationErrorCode(Enum):
    NoError = 0
    AuthenticationFailure = 1
    BadRequest = 2
    TooManyRequests = 3
    Forbidden = 4
    ConnectionFailure = 5
    ServiceTimeout = 6
    ServiceError = 7
    ServiceUnavailable = 8
    RuntimeError = 9


class PropertyId(Enum):
    SpeechServiceConnection_InitialSilenceTimeoutMs = 3200
    SpeechServiceConnection_EndSilenceTimeoutMs = 3201
    CancellationDetails_ReasonDetailedText = 6002
    Speech_SegmentationSilenceTimeoutMs = 9002


class OutputFormat(Enum):
    Simple = 0
    Detailed = 1


class SpeechSynthesisOutputFormat(Enum):
    Raw8Khz8BitMonoMULaw = 1
    Riff24Khz16BitMonoPcm = 13


class AudioStreamWaveFormat(Enum):
    PCM = 0x0001
    MULAW = 0x0007


# --- plain SDK objects ---


class ResultFuture:
    def __init__(self, resolve: Callable[[], Any]) -> None:
        self._resolve = resolve

    def get(self) -> Any:
        return self._resolve()


class EventSignal:
    def __init__(self, errors: list[BaseException]) -> None:
        self._errors = errors
        self._callbacks: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()

    def connect(self, callback: Callable[[Any], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def disconnect_all(self) -> None:
        with self._lock:
            self._callbacks.clear()

    def is_connected(self) -> bool:
        return bool(self._callbacks)

    def signal(self, payload: Any) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(payload)
            except Exception as exc:  # the SDK swallows them; the tests want to see them
                self._errors.append(exc)


class CancellationDetails:
    def __init__(self, reason: CancellationReason, code: CancellationErrorCode, text: str):
        self.reason, self.code, self.error_details = reason, code, text


class SpeechSynthesisCancellationDetails:
    def __init__(self, reason: CancellationReason, code: CancellationErrorCode, text: str):
        self.reason, self.error_code, self.error_details = reason, code, text


class SpeechRecognitionResult:
    def __init__(self, reason: ResultReason, text: str = "", offset: int = 0, duration: int = 0):
        self.reason, self.text, self.offset, self.duration = reason, text, offset, duration
        self.json = ""
        self.result_id = f"r{next(_ids)}"
        self.cancellation_details: CancellationDetails | None = None


class SpeechSynthesisResult:
    def __init__(self, reason: ResultReason, audio_data: bytes = b"") -> None:
        self.reason, self.audio_data = reason, audio_data
        self.result_id = f"s{next(_ids)}"
        self.cancellation_details: SpeechSynthesisCancellationDetails | None = None


class SessionEventArgs:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


class ConnectionEventArgs(SessionEventArgs):
    pass


class RecognitionEventArgs(SessionEventArgs):
    def __init__(self, session_id: str, offset: int) -> None:
        super().__init__(session_id)
        self.offset = offset


class SpeechRecognitionEventArgs(RecognitionEventArgs):
    def __init__(self, session_id: str, result: SpeechRecognitionResult) -> None:
        super().__init__(session_id, result.offset)
        self.result = result


class SpeechRecognitionCanceledEventArgs(SpeechRecognitionEventArgs):
    def __init__(self, session_id: str, details: CancellationDetails) -> None:
        result = SpeechRecognitionResult(ResultReason.Canceled)
        result.cancellation_details = details
        super().__init__(session_id, result)
        self.cancellation_details = details


class SpeechSynthesisEventArgs:
    def __init__(self, result: SpeechSynthesisResult) -> None:
        self.result = result


_ids = itertools.count(1)


class SpeechConfig:
    def __init__(
        self,
        subscription: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        host: str | None = None,
        auth_token: str | None = None,
        speech_recognition_language: str | None = None,
    ) -> None:
        self._subscription = subscription or ""
        self._region = region or ""
        self.speech_recognition_language = speech_recognition_language or "en-US"
        self.speech_synthesis_voice_name = ""
        self.output_format = OutputFormat.Simple
        self.synthesis_output_format = SpeechSynthesisOutputFormat.Riff24Khz16BitMonoPcm
        self._properties: dict[PropertyId, str] = {}

    @property
    def subscription_key(self) -> str:
        return self._subscription

    @property
    def region(self) -> str:
        return self._region

    def set_property(self, property_id: PropertyId, value: str) -> None:
        self._properties[property_id] = value

    def get_property(self, property_id: PropertyId) -> str:
        return self._properties.get(property_id, "")

    def set_speech_synthesis_output_format(self, format_id: SpeechSynthesisOutputFormat) -> None:
        self.synthesis_output_format = format_id


class AudioStreamFormat:
    def __init__(
        self,
        samples_per_second: int | None = None,
        bits_per_sample: int = 16,
        channels: int = 1,
        compressed_stream_format: Any = None,
        wave_stream_format: AudioStreamWaveFormat = AudioStreamWaveFormat.PCM,
    ) -> None:
        self.samples_per_second, self.bits_per_sample = samples_per_second, bits_per_sample
        self.channels, self.wave_stream_format = channels, wave_stream_format


class PushAudioInputStream:
    """Bytes written here are read by the recogniser's worker thread."""

    def __init__(self, stream_format: AudioStreamFormat | None = None) -> None:
        self.stream_format = stream_format or AudioStreamFormat(16000)
        self.service: Any = None  # set by the recogniser reading it
        self.closed = False
        self.written = 0
        self._chunks: list[bytes] = []
        self._ready = threading.Condition()

    def write(self, buffer: bytes) -> None:
        service = self.service
        if self.closed:
            raise RuntimeError("Exception with error code: 0x5 (SPXERR_INVALID_STATE)")
        if service is not None and service.fail_writes:
            raise RuntimeError("Exception with error code: 0x1b (SPXERR_RUNTIME_ERROR)")
        with self._ready:
            if service is not None:
                service.busy_add(1)  # until the worker has processed it
            self._chunks.append(bytes(buffer))
            self.written += len(buffer)
            self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()

    def take(self, should_stop: Callable[[], bool]) -> bytes | None:
        """The next chunk; None once closed (or told to stop) with nothing left."""
        with self._ready:
            while not self._chunks and not self.closed and not should_stop():
                self._ready.wait()
            return self._chunks.pop(0) if self._chunks and not should_stop() else None

    def discard(self) -> int:
        with self._ready:
            left, self._chunks = len(self._chunks), []
            self._ready.notify_all()
            return left

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()


class AudioConfig:
    def __init__(
        self,
        use_default_microphone: bool = False,
        filename: str | None = None,
        stream: PushAudioInputStream | None = None,
        device_name: str | None = None,
    ):
        self.stream = stream


class PhraseListGrammar:
    def __init__(self, phrases: list[str], phrases_ever: set[str]) -> None:
        self._phrases, self._phrases_ever = phrases, phrases_ever

    @classmethod
    def from_recognizer(cls, recognizer: Any) -> PhraseListGrammar:
        return cls(recognizer.phrases, recognizer.phrases_ever)

    def addPhrase(self, phrase: str) -> None:
        self._phrases.append(phrase)
        self._phrases_ever.add(phrase)

    def clear(self) -> None:
        self._phrases.clear()

    def setWeight(self, weight: float) -> None:
        pass


class Connection:
    """The recogniser's connection to the service: connected/disconnected signals."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.connected, self.disconnected = EventSignal(errors), EventSignal(errors)

    @classmethod
    def from_recognizer(cls, recognizer: Any) -> Connection:
        if recognizer.connection is None:
            recognizer.connection = cls(recognizer.service.callback_errors)
        connection: Connection = recognizer.connection
        return connection

    def open(self, for_continuous_recognition: bool) -> None:
        pass

    def close(self) -> None:
        pass
