"""Two recognisers on one call: the primary drives the call, the secondary is compared.

`TeeRecognizer` is a `SpeechRecognizer`: every frame goes to the primary at once and to
the secondary through a bounded queue (a slow or still-connecting secondary loses the
oldest-pending frames beyond the bound, and the losses are counted, never the
primary's). `SecondaryReport` logs the secondary's results and failures as events
(kinds `secondary_*`, source `stt`) and never lets them reach the call; the
voice_runtime-style `fsm_voice.stt_tee.SttTee` uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from fsm_voice.providers.base import Grammar, SpeechRecognizer, SttListener, Transcript

__all__ = ["DEFAULT_MAX_QUEUED_FRAMES", "SecondaryReport", "TeeRecognizer"]

DEFAULT_MAX_QUEUED_FRAMES = 250  # 5 s of 20 ms frames waiting for the secondary

EventSink = Callable[[str, dict[str, Any]], None]


class SecondaryReport:
    """The secondary's output as log events; it never raises into the call."""

    def __init__(self, provider: str, record: EventSink | None = None) -> None:
        self.provider = provider
        self.record = record
        self.failed = False
        self.committed: list[str] = []  # every final transcript, for comparison

    def event(self, kind: str, **data: Any) -> None:
        if self.record is not None:
            with contextlib.suppress(Exception):  # logging must not break the primary
                self.record(f"secondary_{kind}", {"provider": self.provider, **data})

    def on_committed_text(self, text: str) -> None:
        self.committed.append(text)
        self.event("transcript_committed", text=text)

    def on_recognizing_text(self, text: str) -> None:
        self.event("transcript_partial", text=text)

    def on_error_text(self, reason: str) -> None:
        self.event("provider_error", reason=reason)

    def fail(self, stage: str, error: BaseException) -> None:
        self.failed = True
        self.event("failed", stage=stage, error=f"{type(error).__name__}: {error}")

    def listener(self) -> SttListener:
        return _SecondaryListener(self)


class _SecondaryListener:
    def __init__(self, report: SecondaryReport) -> None:
        self._report = report

    def on_speech_started(self, t_ms: int) -> None:
        self._report.event("speech_started", at_ms=t_ms)

    def on_recognizing(self, text: str) -> None:
        self._report.on_recognizing_text(text)

    def on_committed(self, transcript: Transcript) -> None:
        self._report.on_committed_text(transcript.text)

    def on_error(self, reason: str, fatal: bool) -> None:
        self._report.event("provider_error", reason=reason, fatal=fatal)

    def on_state(self, state: str, detail: str) -> None:
        self._report.event("provider_state_entered", state=state, detail=detail)


class TeeRecognizer:
    """A `SpeechRecognizer` that runs `secondary` beside `primary` for comparison."""

    def __init__(
        self,
        primary: SpeechRecognizer,
        secondary: SpeechRecognizer,
        *,
        record: EventSink | None = None,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    ) -> None:
        self.name = primary.name
        self.primary = primary
        self.secondary = secondary
        self.report = SecondaryReport(secondary.name, record)
        self.max_queued_frames = max_queued_frames
        self.dropped = 0  # frames the secondary never saw
        self.fed_secondary = 0
        self._queue: deque[tuple[bytes, int]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def attach_record(self, record: EventSink) -> None:
        """Where the secondary's events go, when not given at construction (the
        conversation runner attaches its call's log here)."""
        if self.report.record is None:
            self.report.record = record

    async def start(self, listener: SttListener) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.ensure_future(self._run_secondary())
        try:
            await self.primary.start(listener)
        except BaseException:
            await self._stop_secondary()
            raise

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        self.primary.feed(mulaw, t_ms)
        if self.report.failed or self._wakeup is None:
            return
        if len(self._queue) >= self.max_queued_frames:
            self.dropped += 1
            return
        self._queue.append((mulaw, t_ms))
        self._wakeup.set()

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.primary.set_grammar(grammar)
        self._guarded("set_grammar", self.secondary.set_grammar, grammar)

    def set_speaking(self, speaking: bool) -> None:
        self.primary.set_speaking(speaking)
        self._guarded("set_speaking", self.secondary.set_speaking, speaking)

    async def stop(self) -> None:
        await self._stop_secondary()
        await self.primary.stop()

    def _guarded(self, stage: str, method: Callable[[Any], None], arg: Any) -> None:
        if self.report.failed:
            return
        try:
            method(arg)
        except Exception as e:
            self.report.fail(stage, e)

    async def _run_secondary(self) -> None:
        assert self._wakeup is not None
        try:
            await self.secondary.start(self.report.listener())
        except Exception as e:
            self.report.fail("start", e)
            self._queue.clear()
            return
        try:
            while True:
                while self._queue:
                    frame, t_ms = self._queue.popleft()
                    self.secondary.feed(frame, t_ms)
                    self.fed_secondary += 1
                self._wakeup.clear()
                await self._wakeup.wait()
        except Exception as e:
            self.report.fail("feed", e)
            self._queue.clear()

    async def _stop_secondary(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await self.secondary.stop()
        except Exception as e:
            self.report.fail("stop", e)
        self.report.event("frames_summary", fed=self.fed_secondary, dropped=self.dropped)
