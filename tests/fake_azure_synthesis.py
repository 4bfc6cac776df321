"""The fake SDK's speech synthesiser (see tests/fake_azure_sdk.py): the documented
event sequence synthesis_started → synthesizing × n → synthesis_completed, or
synthesis_canceled for a refused request or a stop_speaking, fired from a producer
thread per request. It "synthesises" a 400 Hz tone in the configured output format.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from fake_azure_types import (
    AUTH_401,
    QUOTA_429,
    CancellationErrorCode,
    CancellationReason,
    EventSignal,
    ResultFuture,
    ResultReason,
    SpeechConfig,
    SpeechSynthesisCancellationDetails,
    SpeechSynthesisEventArgs,
    SpeechSynthesisOutputFormat,
    SpeechSynthesisResult,
)

from fsm_voice.audio.mulaw import FRAME_BYTES, encode

if TYPE_CHECKING:
    from fake_azure_sdk import FakeSpeechService

__all__ = ["SpeechSynthesizer", "tone"]


def tone(duration_ms: int, amplitude: int = 8000) -> bytes:
    """μ-law 400 Hz: what the fake service "synthesises" (8 periods per 20 ms frame)."""
    t = np.arange(FRAME_BYTES) / 8000
    frame = encode(np.rint(amplitude * np.sin(2 * np.pi * 400.0 * t)).astype(np.int16))
    return frame * (duration_ms // 20)


class SpeechSynthesizer:
    """Synthesis on a producer thread per request: tone audio in 200 ms pieces."""

    service: FakeSpeechService  # bound by FakeSpeechSdk

    def __init__(
        self,
        speech_config: SpeechConfig,
        audio_config: Any = "default speaker",
        auto_detect_source_language_config: Any = None,
    ) -> None:
        self.service.record_call("SpeechSynthesizer")
        errors = self.service.callback_errors
        self.synthesis_started, self.synthesizing = EventSignal(errors), EventSignal(errors)
        self.synthesis_completed, self.synthesis_canceled = EventSignal(errors), EventSignal(errors)
        self.config = speech_config
        self.audio_config = audio_config
        self.spoken: list[str] = []
        self.outcomes: list[str] = []  # completed | cancelled | stopped, per request
        self.stop_calls = 0
        self.chunks_sent = 0
        self.chunks_total = 0
        self.result_resolved = threading.Event()
        self.idle = threading.Event()  # no request in progress (a test may wait on it)
        self.idle.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.service.synthesizers.append(self)

    def speak_text_async(self, text: str) -> ResultFuture:
        """Requests queue up, as in the SDK: each starts when the one before it ended."""
        self.service.record_call("speak_text_async")
        self.spoken.append(text)
        self.result_resolved.clear()
        self.idle.clear()
        final: list[SpeechSynthesisResult] = []
        self.service.busy_add(1)
        thread = threading.Thread(
            target=self._produce, args=(text, final, self._thread), name="fake-azure-tts"
        )
        thread.daemon = True
        self._thread = thread
        thread.start()
        return ResultFuture(lambda: self._resolve(thread, final))

    def start_speaking_text_async(self, text: str) -> ResultFuture:
        return self.speak_text_async(text)

    def stop_speaking_async(self) -> ResultFuture:
        self.service.record_call("stop_speaking_async")
        self.stop_calls += 1
        self._stop.set()
        if self.service.release_on_stop:
            self.service.chunk_allowance = None
        self.service.wake()

        def wait_stopped() -> None:
            if self._thread is not None:
                self._thread.join()

        return ResultFuture(wait_stopped)

    def _resolve(
        self, thread: threading.Thread, final: list[SpeechSynthesisResult]
    ) -> SpeechSynthesisResult:
        thread.join()
        if final[0].reason == ResultReason.Canceled:  # the SDK resolves these late
            self.service.results_released.wait(30)
        self.result_resolved.set()
        return final[0]

    def _produce(
        self, text: str, final: list[SpeechSynthesisResult], previous: threading.Thread | None
    ) -> None:
        try:
            if previous is not None:
                previous.join()
            self._stop.clear()
            final.append(self._synthesize(text))
        finally:
            if self._thread is threading.current_thread():
                self.idle.set()
            self.service.busy_add(-1)

    def _synthesize(self, text: str) -> SpeechSynthesisResult:
        service = self.service
        refusal = None
        if self.config.subscription_key not in service.valid_keys:
            refusal = (CancellationErrorCode.AuthenticationFailure, AUTH_401)
        elif service.tts_failure is not None:
            refusal = (service.tts_failure, QUOTA_429)
        if refusal is not None:
            return self._cancelled(CancellationReason.Error, *refusal)
        self.synthesis_started.signal(
            SpeechSynthesisEventArgs(SpeechSynthesisResult(ResultReason.SynthesizingAudioStarted))
        )
        audio = self._render(text)
        pieces = [audio[i : i + 1600] for i in range(0, len(audio), 1600)]
        self.chunks_total += len(pieces)
        for piece in pieces:
            if not service.take_chunk_allowance(self._stop.is_set):
                return self._cancelled(CancellationReason.CancelledByUser)
            self.chunks_sent += 1
            result = SpeechSynthesisResult(ResultReason.SynthesizingAudio, piece)
            self.synthesizing.signal(SpeechSynthesisEventArgs(result))
        done = SpeechSynthesisResult(ResultReason.SynthesizingAudioCompleted, audio)
        self.outcomes.append("completed")  # before the event: a listener may look at once
        self.synthesis_completed.signal(SpeechSynthesisEventArgs(done))
        return done

    def _cancelled(
        self,
        reason: CancellationReason,
        code: CancellationErrorCode = CancellationErrorCode.NoError,
        text: str = "",
    ) -> SpeechSynthesisResult:
        result = SpeechSynthesisResult(ResultReason.Canceled)
        result.cancellation_details = SpeechSynthesisCancellationDetails(reason, code, text)
        self.outcomes.append(
            "stopped" if reason == CancellationReason.CancelledByUser else "cancelled"
        )
        self.synthesis_canceled.signal(SpeechSynthesisEventArgs(result))
        return result

    def _render(self, text: str) -> bytes:
        duration_ms = max(400, self.service.ms_per_char * len(text.strip()))
        duration_ms -= duration_ms % 20
        if self.config.synthesis_output_format == SpeechSynthesisOutputFormat.Raw8Khz8BitMonoMULaw:
            return tone(duration_ms)
        # the SDK's default: a RIFF header and 24 kHz 16-bit PCM, useless on a phone line
        return b"RIFF" + bytes(44 + duration_ms * 48)
