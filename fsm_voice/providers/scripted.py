"""Scripted STT/TTS for fast, deterministic tests on the virtual clock.

`ScriptedRecognizer` endpoints by energy (a frame is speech when its RMS exceeds a
threshold), announces speech at its first speech frame and commits the next scripted
transcript after `endpoint_ms` of silence. Every time comes from the frames' own
`t_ms`, so a test's log is the same on every run. `ScriptedSynthesizer` turns text
into a steady tone of a speech-like duration, one 20 ms frame per step, so barge-in
and cancellation can be observed frame by frame.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE, decode, encode
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import (
    Grammar,
    SpeechRecognizer,
    SpeechSynthesizer,
    SttListener,
    Transcript,
)
from fsm_voice.providers.driving import ProviderDriver
from fsm_voice.providers.state_log import StateWatchers

__all__ = ["Script", "ScriptedRecognizer", "ScriptedSynthesizer"]

Script = Sequence[str] | Mapping[int, str] | Callable[[int], str]
"""What utterance n (0, 1, …) says: a list, a mapping (missing: ""), or a function."""

_BYTES_PER_MS = SAMPLE_RATE // 1000


class ScriptedRecognizer:
    """Energy endpointing on μ-law frames; transcripts from a script."""

    def __init__(
        self,
        script: Script = (),
        *,
        threshold_rms: float = 500.0,
        endpoint_ms: int = 300,
        confidence: float | None = 1.0,
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.script = script
        self.threshold_rms = threshold_rms
        self.endpoint_ms = endpoint_ms
        self.confidence = confidence
        self.grammars: list[Grammar | None] = []  # every set_grammar, for assertions
        self.speaking = False
        self.utterances = 0
        self.machine = pm.ProviderMachine(f"stt:{name}")
        self._listener: SttListener | None = None
        self._driver = ProviderDriver(
            self.machine, on_state=self._listener_state, execute=_nothing_to_connect
        )
        self._speech_start_ms: int | None = None
        self._speech_end_ms = 0

    async def start(self, listener: SttListener) -> None:
        self._listener = listener
        self._fire(pm.Start(), "scripted")
        self._fire(pm.Connected(), "scripted")

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        listener = self._listener
        if listener is None or not self.machine.is_streaming or not mulaw:
            return
        end_ms = t_ms + len(mulaw) // _BYTES_PER_MS
        if _rms(mulaw) > self.threshold_rms:
            if self._speech_start_ms is None:
                self._speech_start_ms = t_ms
                listener.on_speech_started(t_ms)
            self._speech_end_ms = end_ms
        elif self._speech_start_ms is not None and end_ms - self._speech_end_ms >= self.endpoint_ms:
            self._commit(listener)

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.grammars.append(grammar)

    def set_speaking(self, speaking: bool) -> None:
        self.speaking = speaking

    async def stop(self) -> None:
        # Flush nothing: an utterance still in progress is dropped.
        self._speech_start_ms = None
        self._fire(pm.Stop(), "stopped")

    def text_for(self, index: int) -> str:
        script = self.script
        if callable(script):
            return script(index)
        if isinstance(script, Mapping):
            return script.get(index, "")
        return script[index] if index < len(script) else ""

    def _commit(self, listener: SttListener) -> None:
        assert self._speech_start_ms is not None
        text = self.text_for(self.utterances)
        self.utterances += 1
        start_ms, self._speech_start_ms = self._speech_start_ms, None
        confidence = self.confidence if text else None
        listener.on_committed(Transcript(text, confidence, start_ms, self._speech_end_ms))

    def _fire(self, event: pm.ProviderEvent, detail: str) -> None:
        self._driver.feed(event, detail)

    def _listener_state(self) -> pm.StateCallback | None:
        return self._listener.on_state if self._listener is not None else None


def _nothing_to_connect(effect: pm.ProviderEffect) -> None:
    """A scripted provider has no connection, timer or listener to act on."""


def _rms(mulaw: bytes) -> float:
    samples = decode(mulaw).astype(np.float64)
    return math.sqrt(float(np.mean(samples * samples)))


class ScriptedSynthesizer:
    """Text → a deterministic tone of about `ms_per_char` per character, in 20 ms frames."""

    def __init__(
        self,
        *,
        ms_per_char: int = 65,
        min_ms: int = 400,
        amplitude: int = 8000,
        on_state: pm.StateCallback | None = None,
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.ms_per_char = ms_per_char
        self.min_ms = min_ms
        self.state_watchers = StateWatchers(on_state)
        self.machine = pm.ProviderMachine(f"tts:{name}")
        self._driver = ProviderDriver(
            self.machine, on_state=lambda: self.state_watchers, execute=_nothing_to_connect
        )
        self.requests: list[str] = []  # every text asked for
        self.cancelled: list[str] = []  # texts whose iterator was closed early
        self.frames_sent = 0
        # 400 Hz has exactly 8 periods in a 160-sample frame: one frame, repeated.
        t = np.arange(FRAME_BYTES) / SAMPLE_RATE
        tone = amplitude * np.sin(2 * np.pi * 400.0 * t)
        self._frame = encode(np.rint(tone).astype(np.int16))

    def duration_ms(self, text: str) -> int:
        """How long `text` plays: a whole number of 20 ms frames."""
        ms = max(self.min_ms, self.ms_per_char * len(text.strip()))
        return -(-ms // 20) * 20

    async def start(self) -> None:
        self._driver.feed(pm.Start(), "scripted")
        self._driver.feed(pm.Connected(), "scripted")

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.requests.append(text)
        return self._frames(text)

    async def _frames(self, text: str) -> AsyncIterator[bytes]:
        total = self.duration_ms(text) // 20
        sent = 0
        try:
            for _ in range(total):
                sent += 1
                self.frames_sent += 1
                yield self._frame
        finally:
            if sent < total:
                self.cancelled.append(text)

    async def stop(self) -> None:
        self._driver.feed(pm.Stop(), "stopped")


if TYPE_CHECKING:  # mypy checks that both satisfy the protocols
    _recognizer: SpeechRecognizer = ScriptedRecognizer()
    _synthesizer: SpeechSynthesizer = ScriptedSynthesizer()
