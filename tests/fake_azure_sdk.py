"""A fake of `azure.cognitiveservices.speech` and of the service behind it.

The Azure Speech SDK talks to the service over its own protocol, which cannot be
served locally, so the adapters are tested at the SDK boundary: `FakeSpeechSdk(service)`
has the module's surface (the names come from the installed SDK, and
tests/test_azure_sdk_surface.py checks each one exists there) and emits the
documented event sequences from real background threads, as the SDK does:

- continuous recognition: session_started, then per utterance speech_start_detected,
  recognizing (growing text), recognized after the segmentation silence timeout; on
  a failure canceled (reason Error, an error code and text) then session_stopped;
  stop_continuous_recognition ends with session_stopped.
- synthesis: synthesis_started, synthesizing with each piece of audio,
  synthesis_completed; a refused request gets synthesis_canceled instead, and
  stop_speaking cancels the one in progress (reason CancelledByUser).

The "service" recognises by energy (like the scripted recogniser): the n-th
utterance it hears says the n-th line of its script. Its time is audio time (bytes
read / 8), so results carry the same offsets on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
from fake_azure_synthesis import SpeechSynthesizer
from fake_azure_types import (
    AUTH_401,
    AudioConfig,
    AudioStreamFormat,
    AudioStreamWaveFormat,
    CancellationDetails,
    CancellationErrorCode,
    CancellationReason,
    Connection,
    ConnectionEventArgs,
    EventSignal,
    OutputFormat,
    PhraseListGrammar,
    PropertyId,
    PushAudioInputStream,
    RecognitionEventArgs,
    ResultFuture,
    ResultReason,
    SessionEventArgs,
    SpeechConfig,
    SpeechRecognitionCanceledEventArgs,
    SpeechRecognitionEventArgs,
    SpeechRecognitionResult,
    SpeechSynthesisCancellationDetails,
    SpeechSynthesisOutputFormat,
    _ids,
)

from fsm_voice.audio.mulaw import FRAME_BYTES, decode

_TICKS_PER_MS = 10_000


def _rms(mulaw: bytes) -> float:
    samples = decode(mulaw).astype(np.float64)
    return math.sqrt(float(np.mean(samples * samples)))


class FakeSpeechService:
    """The service side: what to recognise, what to refuse, and what happened."""

    def __init__(
        self, script: list[str] | None = None, *, valid_keys: tuple[str, ...] = ("test-key",)
    ) -> None:
        self.script = list(script or [])
        self.valid_keys = valid_keys
        self.threshold_rms = 500.0
        self.utterances = 0
        self.recognizers: list[Any] = []
        self.synthesizers: list[Any] = []
        self.fail_writes = False
        self.connect_failures: list[CancellationErrorCode] = []  # the next starts fail so
        self.tts_failure: CancellationErrorCode | None = None
        self.chunk_allowance: int | None = None  # None: synthesise freely
        self.release_on_stop = False  # the first stop_speaking lifts the allowance
        self.ms_per_char = 65
        self.callback_errors: list[BaseException] = []
        self.sdk_calls: list[tuple[str, str]] = []  # (method, thread name): never the loop's
        self.silent_connects = 0  # the next starts neither connect nor fail (a dead network)
        self.results_released = threading.Event()  # cancelled results resolve only then
        self._busy = 0
        self.lock = threading.RLock()  # guards a recogniser's failure vs its ending
        self._lock = threading.Condition()
        self._idle_callbacks: list[Callable[[], None]] = []

    # --- what the tests steer ---

    def drop_sessions(
        self,
        code: CancellationErrorCode = CancellationErrorCode.ConnectionFailure,
        text: str = "Connection was closed by the remote host.",
    ) -> None:
        """Every live recognition session fails with `code` (canceled, session_stopped)."""
        for recognizer in self.recognizers:
            recognizer.fail(code, text)

    def allow_chunks(self, count: int) -> None:
        with self._lock:
            self.chunk_allowance = (self.chunk_allowance or 0) + count
            self._lock.notify_all()

    def take_chunk_allowance(self, stopped: Callable[[], bool]) -> bool:
        """Wait for leave to send one more piece (False: stopped meanwhile). Waiting
        counts as idle: the service is held back, not working."""
        with self._lock:
            waiting = False
            try:
                while self.chunk_allowance is not None and self.chunk_allowance <= 0:
                    if stopped():
                        return False
                    if not waiting:
                        waiting = True
                        self.busy_add(-1)
                    self._lock.wait(0.05)
            finally:
                if waiting:
                    self.busy_add(1)
            if self.chunk_allowance is not None:
                self.chunk_allowance -= 1
            return not stopped()

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def close(self) -> None:
        """Release everything still waiting (threads end)."""
        self.results_released.set()
        self.chunk_allowance = None
        self.wake()
        for recognizer in self.recognizers:
            recognizer.shut()

    def record_call(self, method: str) -> None:
        self.sdk_calls.append((method, threading.current_thread().name))

    def next_line(self) -> str:
        line = self.script[self.utterances] if self.utterances < len(self.script) else ""
        self.utterances += 1
        return line

    # --- idleness, for a clock that must not jump while the service is working ---

    @property
    def idle(self) -> bool:
        return self._busy == 0

    def busy_add(self, count: int) -> None:
        with self._lock:
            self._busy += count
            if self._busy == 0:
                callbacks, self._idle_callbacks = self._idle_callbacks, []
                for callback in callbacks:
                    callback()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self.busy_add(1)
        try:
            yield
        finally:
            self.busy_add(-1)

    def when_idle(self, callback: Callable[[], None]) -> bool:
        """Call `callback` (from the thread that makes it idle) when idle; False if idle now."""
        with self._lock:
            if self._busy == 0:
                return False
            self._idle_callbacks.append(callback)
            return True


class SpeechRecognizer:
    """Continuous recognition over a push stream, on a worker thread of its own."""

    service: FakeSpeechService  # bound by FakeSpeechSdk

    def __init__(
        self,
        speech_config: SpeechConfig,
        audio_config: AudioConfig | None = None,
        language: str | None = None,
        source_language_config: Any = None,
        auto_detect_source_language_config: Any = None,
    ) -> None:
        self.service.record_call("SpeechRecognizer")
        errors = self.service.callback_errors
        self.session_started, self.session_stopped = EventSignal(errors), EventSignal(errors)
        self.speech_start_detected = EventSignal(errors)
        self.recognizing, self.recognized = EventSignal(errors), EventSignal(errors)
        self.canceled = EventSignal(errors)
        self.config = speech_config
        self.stream = audio_config.stream if audio_config is not None else None
        if self.stream is None:
            raise ValueError("the fake recognises push streams only")
        self.stream.service = self.service
        self.phrases: list[str] = []
        self.phrases_ever: set[str] = set()  # every phrase any grammar added
        self.connection: Connection | None = None  # Connection.from_recognizer's
        self.session_id = f"session{next(_ids)}"
        self.started = self.stopped = False
        self.ended = False  # the worker has finished (failed, stopped or end of stream)
        self._failure: tuple[CancellationErrorCode, str] | None = None
        self._thread: threading.Thread | None = None
        self.service.recognizers.append(self)

    def start_continuous_recognition_async(self) -> ResultFuture:
        self.service.record_call("start_continuous_recognition_async")
        self.started = True
        self.service.busy_add(1)  # the session's opening events
        self._thread = threading.Thread(target=self._run, name="fake-azure-stt", daemon=True)
        self._thread.start()
        return ResultFuture(lambda: None)

    def stop_continuous_recognition_async(self) -> ResultFuture:
        self.service.record_call("stop_continuous_recognition_async")

        def stop() -> None:
            self.stopped = True
            self.stream.wake()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join()
            self.session_stopped.signal(SessionEventArgs(self.session_id))

        return ResultFuture(stop)

    def fail(self, code: CancellationErrorCode, text: str) -> None:
        with self.service.lock:
            if not self.started or self.stopped or self.ended or self._failure is not None:
                return
            self.service.busy_add(1)  # until the cancellation is fired
            self._failure = (code, text)
        self.stream.wake()

    def shut(self) -> None:
        self.stopped = True
        self.stream.wake()

    # --- the worker: the documented event sequence ---

    def _run(self) -> None:
        try:
            self._work()
        finally:
            with self.service.lock:
                self.ended = True

    def _work(self) -> None:
        service = self.service
        try:
            self.session_started.signal(SessionEventArgs(self.session_id))
            if self.config.subscription_key not in service.valid_keys:
                self._failure = (CancellationErrorCode.AuthenticationFailure, AUTH_401)
                service.busy_add(1)
            elif service.connect_failures:
                code = service.connect_failures.pop(0)
                self._failure = (code, "Connection failed (no connection to the remote host).")
                service.busy_add(1)
            elif service.silent_connects > 0:
                service.silent_connects -= 1
            elif self.connection is not None:
                self.connection.connected.signal(ConnectionEventArgs(self.session_id))
        finally:
            service.busy_add(-1)
        ears = _Endpointer(self, self._segmentation_ms())
        while True:
            chunk = self.stream.take(lambda: self.stopped or self._failure is not None)
            if self._failure is not None:
                self._cancel(*self._failure)
                return
            if chunk is None:
                service.busy_add(-self.stream.discard())
                return
            try:
                ears.hear(chunk)
            finally:
                service.busy_add(-1)

    def _cancel(self, code: CancellationErrorCode, text: str) -> None:
        details = CancellationDetails(CancellationReason.Error, code, text)
        self.canceled.signal(SpeechRecognitionCanceledEventArgs(self.session_id, details))
        self.session_stopped.signal(SessionEventArgs(self.session_id))
        self.service.busy_add(-1 - self.stream.discard())

    def _segmentation_ms(self) -> int:
        value = self.config.get_property(PropertyId.Speech_SegmentationSilenceTimeoutMs)
        return int(value) if value else 500  # the service's default


class _Endpointer:
    """Energy endpointing in audio time (bytes read / 8 = ms)."""

    def __init__(self, recognizer: SpeechRecognizer, segmentation_ms: int) -> None:
        self.recognizer = recognizer
        self.segmentation_ms = segmentation_ms
        self.position_ms = 0
        self.start_ms: int | None = None
        self.voice_end_ms = 0
        self.voiced_ms = 0
        self.words: list[str] = []
        self.line = ""
        self._carry = b""

    def hear(self, chunk: bytes) -> None:
        audio = self._carry + chunk
        whole = len(audio) - len(audio) % FRAME_BYTES
        self._carry = audio[whole:]
        for start in range(0, whole, FRAME_BYTES):
            self._frame(audio[start : start + FRAME_BYTES])

    def _frame(self, frame: bytes) -> None:
        r = self.recognizer
        now_ms, self.position_ms = self.position_ms, self.position_ms + 20
        if _rms(frame) > r.service.threshold_rms:
            if self.start_ms is None:
                self.start_ms, self.voiced_ms = now_ms, 0
                self.line = r.service.next_line()
                self.words = self.line.split()
                offset = now_ms * _TICKS_PER_MS
                r.speech_start_detected.signal(RecognitionEventArgs(r.session_id, offset))
            self.voiced_ms += 20
            self.voice_end_ms = self.position_ms
            shown = min(self.voiced_ms // 200, len(self.words))
            if self.voiced_ms % 200 == 0 and shown > 0:  # a growing hypothesis, 5 per second
                self._result(r.recognizing, ResultReason.RecognizingSpeech, self.words[:shown])
        elif (
            self.start_ms is not None
            and self.position_ms - self.voice_end_ms >= self.segmentation_ms
        ):
            reason = ResultReason.RecognizedSpeech if self.line else ResultReason.NoMatch
            self._result(r.recognized, reason, self.words)
            self.start_ms = None

    @property
    def silent_ms(self) -> int:
        return self.position_ms - self.voice_end_ms

    def _result(self, signal: EventSignal, reason: ResultReason, words: list[str]) -> None:
        assert self.start_ms is not None
        text = " ".join(words)
        duration = (self.voice_end_ms - self.start_ms) * _TICKS_PER_MS
        result = SpeechRecognitionResult(reason, text, self.start_ms * _TICKS_PER_MS, duration)
        if reason == ResultReason.RecognizedSpeech:
            result.json = detailed_json(text, 0.87, [f"{text} please"])
        signal.signal(SpeechRecognitionEventArgs(self.recognizer.session_id, result))


class FakeSpeechSdk:
    """Stands in for the module `azure.cognitiveservices.speech`, bound to one service."""

    ResultReason = ResultReason
    CancellationReason = CancellationReason
    CancellationErrorCode = CancellationErrorCode
    PropertyId = PropertyId
    OutputFormat = OutputFormat
    SpeechSynthesisOutputFormat = SpeechSynthesisOutputFormat
    SpeechConfig = SpeechConfig
    PhraseListGrammar = PhraseListGrammar
    ResultFuture = ResultFuture
    EventSignal = EventSignal
    CancellationDetails = CancellationDetails
    Connection = Connection
    SpeechSynthesisCancellationDetails = SpeechSynthesisCancellationDetails

    def __init__(self, service: FakeSpeechService) -> None:
        self.service = service
        self.SpeechRecognizer = type("SpeechRecognizer", (SpeechRecognizer,), {"service": service})
        self.SpeechSynthesizer = type(
            "SpeechSynthesizer", (SpeechSynthesizer,), {"service": service}
        )
        self.audio = SimpleNamespace(
            AudioStreamFormat=AudioStreamFormat,
            AudioStreamWaveFormat=AudioStreamWaveFormat,
            PushAudioInputStream=PushAudioInputStream,
            AudioConfig=AudioConfig,
        )


def detailed_json(text: str, confidence: float, alternatives: list[str]) -> str:
    """The detailed result's JSON (OutputFormat.Detailed): NBest hypotheses."""
    nbest = [{"Display": text, "Confidence": confidence}]
    nbest += [{"Display": alt, "Confidence": confidence / 2} for alt in alternatives]
    return json.dumps({"RecognitionStatus": "Success", "DisplayText": text, "NBest": nbest})


async def drained(service: FakeSpeechService) -> None:
    """Return once the fake service has nothing in progress. Its threads hand their
    events to the loop before they go idle, so those events have been handled too."""
    loop = asyncio.get_running_loop()
    while True:
        done: asyncio.Future[None] = loop.create_future()

        def wake(done: asyncio.Future[None] = done) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        if not service.when_idle(wake):
            return
        # The guard only turns a hang (work that never ends) into a failure.
        await asyncio.wait_for(done, HANG_GUARD_S)


HANG_GUARD_S = 30
