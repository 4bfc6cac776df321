"""A recogniser behind a connection that a fault can drop (`stt_drop`, `replay.faults`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from functools import partial

from fsm_voice.clock import Clock, TimerHandle
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import Grammar, SpeechRecognizer, SttListener, Transcript
from fsm_voice.providers.driving import ProviderDriver

__all__ = ["DroppableRecognizer"]


class DroppableRecognizer:
    """A recogniser behind a connection that can be dropped (`drop`) on purpose.

    The in-process recognisers have no socket to lose, so this is their socket: its
    own provider machine goes through the path a cloud provider's socket loss takes
    (reconnecting, a backoff timer on the call's clock, connecting, streaming), and
    reports each state and the non-fatal error to the listener, so the runtime logs
    them. Meanwhile caller frames wait in a bounded buffer and the recogniser's
    results are held; after the reconnect both go on in their order.
    """

    def __init__(
        self,
        inner: SpeechRecognizer,
        clock: Clock,
        *,
        max_buffered_frames: int = 500,  # 10 s of caller audio
        jitter: Callable[[], float] = lambda: 0.5,
        backoffs_ms: Sequence[int] = (),
    ) -> None:
        self.inner = inner
        # Backoffs to wait instead of the machine's, in order (a replay re-enacting a
        # recorded drop waits as long as the recording did).
        self.backoffs_ms = deque(backoffs_ms)
        self.name = inner.name
        self.clock = clock
        self.max_buffered_frames = max_buffered_frames
        self.machine = pm.ProviderMachine(f"link:{inner.name}", jitter=jitter)
        self.frames_lost = 0
        self._listener: SttListener | None = None
        self._frames: deque[tuple[bytes, int]] = deque()
        self._held: deque[Callable[[], None]] = deque()
        self._retry: TimerHandle | None = None
        self._quiet = False  # moves the recogniser reports itself (its start, its stop)
        self._driver = ProviderDriver(
            self.machine, on_state=lambda: self._moved, execute=self._execute
        )

    async def start(self, listener: SttListener) -> None:
        self._listener = listener
        # The link is up as soon as the recogniser is: the recogniser reports its own
        # start, so these two moves are not reported again.
        self._feed_quietly(pm.Start())  # its Connect: Connected at once
        await self.inner.start(_HoldingListener(self, listener))

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        if self.machine.is_streaming:
            self.inner.feed(mulaw, t_ms)
        elif self.machine.state in pm.OPEN:
            if len(self._frames) >= self.max_buffered_frames:
                self.frames_lost += 1  # the oldest is kept: the gap's start is speech too
                return
            self._frames.append((mulaw, t_ms))

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.inner.set_grammar(grammar)

    def set_speaking(self, speaking: bool) -> None:
        self.inner.set_speaking(speaking)

    async def stop(self) -> None:
        self._feed_quietly(pm.Stop())
        self._frames.clear()
        self._held.clear()
        await self.inner.stop()

    def drop(self, reason: str = "connection lost") -> None:
        """The connection dies now (a no-op unless it is streaming)."""
        self._driver.feed(pm.Dropped(reason), reason)

    @property
    def holding(self) -> bool:
        return not self.machine.is_streaming and self.machine.state in pm.OPEN

    def hold(self, report: Callable[[], None]) -> None:
        self._held.append(report)

    def _feed_quietly(self, event: pm.ProviderEvent) -> None:
        self._quiet = True
        try:
            self._driver.feed(event, "")
        finally:
            self._quiet = False

    def _moved(self, state: str, detail: str) -> None:
        if self._quiet or self._listener is None:
            return
        self._listener.on_state(state, detail)
        if state == pm.STREAMING:  # reconnected: what waited goes on
            self._resume()

    def _execute(self, effect: pm.ProviderEffect) -> None:
        listener = self._listener
        if isinstance(effect, pm.ScheduleRetry):
            delay = self.backoffs_ms.popleft() if self.backoffs_ms else effect.delay_ms
            self._retry = self.clock.call_later(delay, self._on_retry)
        elif isinstance(effect, pm.CancelRetry) and self._retry is not None:
            self._retry.cancel()
            self._retry = None
        elif isinstance(effect, pm.ReportError) and listener is not None:
            listener.on_error(effect.reason, effect.fatal)
        elif isinstance(effect, pm.Connect):
            # Nothing to open: connected at once (the driver runs it after this step).
            self._driver.feed(pm.Connected(), "reconnected")

    def _on_retry(self) -> None:
        self._retry = None
        self._driver.feed(pm.Retry(), "retrying")

    def _resume(self) -> None:
        """Back up: the held results first (older audio), then the buffered frames."""
        while self._held:
            self._held.popleft()()
        if self.frames_lost and self._listener is not None:
            lost, self.frames_lost = self.frames_lost, 0
            self._listener.on_error(f"{lost} caller frames lost while reconnecting", False)
        while self._frames and self.machine.is_streaming:
            self.inner.feed(*self._frames.popleft())


class _HoldingListener:
    """The inner recogniser's listener: passes results on, or holds them while down."""

    def __init__(self, link: DroppableRecognizer, listener: SttListener) -> None:
        self._link = link
        self._listener = listener

    def _pass(self, report: Callable[[], None]) -> None:
        if self._link.holding:
            self._link.hold(report)
        else:
            report()

    def on_speech_started(self, t_ms: int) -> None:
        self._pass(partial(self._listener.on_speech_started, t_ms))

    def on_recognizing(self, text: str) -> None:
        self._pass(partial(self._listener.on_recognizing, text))

    def on_committed(self, transcript: Transcript) -> None:
        self._pass(partial(self._listener.on_committed, transcript))

    def on_error(self, reason: str, fatal: bool) -> None:
        self._pass(partial(self._listener.on_error, reason, fatal))

    def on_state(self, state: str, detail: str) -> None:
        self._listener.on_state(state, detail)  # the recogniser's own life: as it happens
