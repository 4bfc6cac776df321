"""Azure Speech speech-to-text: continuous recognition from a push stream, per call.

Path of the caller's audio:

    μ-law 8 kHz frames ─▶ PushAudioInputStream (AudioStreamFormat 8000 Hz, 8 bit, mono,
    MULAW: no transcoding) ─▶ SpeechRecognizer, continuous recognition
      └─ SDK threads fire speech_start_detected / recognizing / recognized / canceled
         ─▶ the payload is copied out on that thread and handed to the event loop
         (`loop.call_soon_threadsafe`), where the listener hears it

Blocking SDK calls (building the recogniser, start/stop of continuous recognition,
phrase lists, closing the stream) run on one worker thread per call, in order, never
on the loop. `PushAudioInputStream.write` is the exception: the SDK documents it as
"making an internal copy of the data", so it returns at once and `feed` calls it on
the loop; a write that raises drops the connection through the provider machine.

The connection's life is the provider machine's (`fsm_voice.providers.machine`):
`streaming` once the SDK's `Connection.connected` fires (not when start returns: the
SDK starts happily with a bad key and reports it later); no connection within
`connect_timeout_ms` counts as a failed attempt. `canceled` with a transient error
code (ConnectionFailure, ServiceTimeout, TooManyRequests, …) or a failed write →
reconnecting, retried after 1, 2, 4 s … (±25 % jitter, on the injected Clock) with a
fresh recogniser and stream; after `max_retries` → error and a fatal `on_error`.
A bad key (AuthenticationFailure, Forbidden, BadRequest) goes straight to error: no
retry can fix it.

Times: the SDK reports offsets in 100 ns ticks from the start of the stream it
read; each connection remembers the call time of its first frame, and gaps in the
caller's audio are filled with μ-law silence, so stream time stays call time.

Echo: results whose speech begins within `echo_discard_ms` (400 ms by default)
after the agent stopped speaking are dropped as the tail of the agent's own voice
(the seed's rule). Speech that begins while the agent speaks is kept: it is barge-in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from fsm_voice.audio.frames import silence
from fsm_voice.clock import Clock, RandomIds, SystemClock, TimerHandle
from fsm_voice.errors import ConfigError
from fsm_voice.providers import azure_recognition as rec
from fsm_voice.providers import machine as pm
from fsm_voice.providers.azure_common import (
    AzureSettings,
    AzureSpeechError,
    load_sdk,
    post_to_loop,
)
from fsm_voice.providers.base import (
    Grammar,
    SpeechRecognizer,
    SttListener,
    Transcript,
    report_discarded,
)
from fsm_voice.providers.driving import ProviderDriver
from fsm_voice.security import Secret

__all__ = ["AzureRecognizer"]

log = logging.getLogger(__name__)

_BYTES_PER_MS = 8  # 8 kHz, one byte per μ-law sample


class AzureRecognizer:
    """SpeechRecognizer on Azure Speech continuous recognition; one per call."""

    def __init__(
        self,
        *,
        key: Secret | str | None = None,
        region: str | None = None,
        language: str | None = None,
        language_code: str | None = None,  # the seed's name for `language`
        silence_timeout_ms: int | None = None,
        echo_discard_ms: int = 400,
        sdk: Any = None,
        clock: Clock | None = None,
        jitter: Callable[[], float] | None = None,
        max_retries: int = 5,
        cap_ms: int = 16_000,
        connect_timeout_ms: int = 10_000,
        environ: Mapping[str, str] | None = None,
        name: str = "azure",
    ) -> None:
        self.name = name
        self.settings = AzureSettings.from_env(
            environ,
            key=key,
            region=region,
            language=language or language_code,
            silence_timeout_ms=silence_timeout_ms,
        )
        self.echo_discard_ms = echo_discard_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.machine = pm.ProviderMachine(
            f"stt:{name}",
            jitter=jitter if jitter is not None else RandomIds().jitter,
            max_retries=max_retries,
            cap_ms=cap_ms,
        )
        self.speaking = False
        self.echo_discarded = 0  # results dropped as echo of the agent's voice
        self._sdk = sdk
        self._listener: SttListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._grammar: Grammar | None = None
        self._session: rec.Session | None = None
        self._generation = 0  # bumped whenever a session is let go: its late events are stale
        self._audio_end_ms = 0  # call time where the caller's audio fed so far ends
        self._speaking_stopped_ms: int | None = None
        self._retry_timer: TimerHandle | None = None
        self._connect_timer: TimerHandle | None = None
        self._attempt = 0
        self._connected_early = 0  # generation whose service connected before start returned
        self._first_attempt_decided = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # Effects whose work is async, noted by `_execute` and done once the driver's
        # step is over (`_follow_up`): an attempt to open, a session being closed.
        self._connect_due: int | None = None
        self._closing: concurrent.futures.Future[None] | None = None
        self._driver = ProviderDriver(
            self.machine, on_state=lambda: self._moved, execute=self._execute
        )
        # One thread, so SDK calls happen in the order they were asked for.
        self._sdk_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="azure-stt")

    # --- SpeechRecognizer ---

    async def start(self, listener: SttListener) -> None:
        """Returns once the first attempt is decided: streaming, reconnecting or error."""
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        detail = f"{self.settings.region}, {self.settings.language}"
        self._driver.feed(pm.Start(), detail)
        if self.machine.state != pm.CONNECTING:  # already started, or stopped: nothing to wait for
            self._first_attempt_decided.set()
        await self._follow_up()
        await self._first_attempt_decided.wait()

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        if not mulaw:
            return
        self._audio_end_ms = max(self._audio_end_ms, t_ms + len(mulaw) // _BYTES_PER_MS)
        session = self._session
        if session is None or self.machine.state not in (pm.CONNECTING, pm.STREAMING):
            return  # between connections: this audio is lost, as on a dropped line
        # Lost frames: silence keeps the stream's clock in step with the call's.
        padding = silence(session.position.advance(t_ms, len(mulaw)))
        try:
            session.stream.write(padding + mulaw)
        except Exception as exc:  # the SDK raises RuntimeError with its own error code
            self._lose_session(f"audio write failed: {type(exc).__name__}: {exc}", fatal=False)

    def set_grammar(self, grammar: Grammar | None) -> None:
        self._grammar = grammar
        session = self._session
        if session is not None:
            self._sdk_thread.submit(self._apply_phrases, session.recognizer, self._phrases())

    def set_speaking(self, speaking: bool) -> None:
        if self.speaking and not speaking:
            self._speaking_stopped_ms = self._audio_end_ms
        self.speaking = speaking

    async def stop(self) -> None:
        if self.machine.state not in pm.FINAL:
            self._driver.feed(pm.Stop(), "stopped")
            await self._follow_up()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sdk_thread.shutdown(wait=False)

    # --- the provider machine's effects ---

    def _moved(self, state: str, detail: str) -> None:
        listener = self._listener
        if listener is not None:
            listener.on_state(state, detail)
        if state != pm.CONNECTING:
            self._first_attempt_decided.set()

    def _execute(self, effect: pm.ProviderEffect) -> None:
        listener = self._listener
        if isinstance(effect, pm.Connect):
            self._connect_due = effect.attempt
        elif isinstance(effect, pm.ScheduleRetry):
            self._retry_timer = self.clock.call_later(effect.delay_ms, self._on_retry_timer)
        elif isinstance(effect, pm.CancelRetry) and self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        elif isinstance(effect, pm.Disconnect):
            session = self._detach()
            if session is not None:
                self._closing = self._sdk_thread.submit(rec.close_session, session)
        elif isinstance(effect, pm.ReportError) and listener is not None:
            listener.on_error(effect.reason, effect.fatal)

    def _feed(self, event: pm.ProviderEvent, detail: str) -> None:
        """Feed `event` from a callback: its async follow-up runs in a task."""
        self._driver.feed(event, detail)
        if self._connect_due is not None or self._closing is not None:
            self._spawn(self._follow_up())

    async def _follow_up(self) -> None:
        """The async work the last step's effects asked for: close, then open."""
        closing, self._closing = self._closing, None
        if closing is not None:
            await asyncio.wrap_future(closing)
        attempt, self._connect_due = self._connect_due, None
        if attempt is not None:
            await self._connect(attempt)

    async def _connect(self, attempt: int) -> None:
        self._generation += 1
        generation = self._generation
        opening = self._sdk_thread.submit(self._open, generation, self._phrases())
        try:
            session = await asyncio.wrap_future(opening)
        except asyncio.CancelledError:
            self._sdk_thread.submit(self._close_when_opened, opening)
            raise
        except AzureSpeechError as exc:
            self._driver.feed(_loss(str(exc), exc.fatal), str(exc))
            await self._follow_up()
            return
        except ConfigError as exc:  # the `azure` extra is not installed: no retry helps
            self._driver.feed(_loss(str(exc), fatal=True), str(exc))
            await self._follow_up()
            return
        except Exception as exc:  # the SDK refused to build or start a recogniser
            reason = f"connect failed: {type(exc).__name__}: {exc}"
            self._driver.feed(_loss(reason, fatal=False), reason)
            await self._follow_up()
            return
        if generation != self._generation or self.machine.state != pm.CONNECTING:
            # Failed, cancelled or stopped while opening: this session is already stale.
            await asyncio.wrap_future(self._sdk_thread.submit(rec.close_session, session))
            return
        # Recognition started; the provider is `streaming` once the SDK's Connection
        # says the service is reached (a bad key shows only as `canceled` after this).
        self._session = session
        self._attempt = attempt
        if self._connected_early == generation:
            self._on_connected()
            return
        self._connect_timer = self.clock.call_later(
            self.connect_timeout_ms, lambda: self._on_connect_timeout(generation)
        )

    def _on_connected(self) -> None:
        self._cancel_connect_timer()
        detail = f"{self.settings.region}, {self.settings.language}, attempt {self._attempt}"
        self._feed(pm.Connected(detail), detail)

    def _on_connect_timeout(self, generation: int) -> None:
        self._connect_timer = None
        if generation == self._generation and self.machine.state == pm.CONNECTING:
            reason = f"no connection to the service within {self.connect_timeout_ms} ms"
            self._lose_session(reason, fatal=False)

    def _cancel_connect_timer(self) -> None:
        timer, self._connect_timer = self._connect_timer, None
        if timer is not None:
            timer.cancel()

    def _lose_session(self, reason: str, fatal: bool) -> None:
        """The connection failed (on the loop): let it go and tell the machine."""
        session = self._detach()
        if session is not None:
            self._sdk_thread.submit(rec.close_session, session)
        self._feed(_loss(reason, fatal), reason)

    def _detach(self) -> rec.Session | None:
        self._cancel_connect_timer()
        session, self._session = self._session, None
        self._generation += 1
        return session

    def _on_retry_timer(self) -> None:
        self._retry_timer = None
        self._feed(pm.Retry(), "retrying")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _phrases(self) -> tuple[str, ...]:
        return self._grammar.phrases if self._grammar is not None else ()

    # --- results, on the loop ---

    def _on_sdk_event(self, generation: int, event: rec.SdkEvent) -> None:
        listener = self._listener
        if generation != self._generation or listener is None or self.machine.state in pm.FINAL:
            return  # a session we already let go of
        if isinstance(event, rec.Cancelled):
            if event.reason == "Error":
                self._lose_session(str(event.error), event.error.fatal)
            else:  # EndOfStream / CancelledByUser we did not ask for
                self._lose_session(f"recognition ended: {event.reason}", fatal=False)
            return
        if isinstance(event, rec.SessionStopped):
            self._lose_session("session stopped by the service", fatal=False)
            return
        if isinstance(event, rec.ServiceConnected):
            if self._session is None:  # reached before start returned: note it for _connect
                self._connected_early = generation
            elif self.machine.state == pm.CONNECTING:
                self._on_connected()
            return
        start_ms = self._call_ms(event.offset_ms)
        if self._is_echo(start_ms):
            if isinstance(event, rec.FinalResult):
                self.echo_discarded += 1
                log.debug("discarded %r as echo (began at %d ms)", event.text, start_ms)
                end_ms = start_ms + event.duration_ms
                dropped = Transcript(
                    event.text, event.confidence, start_ms, end_ms, event.alternatives
                )
                report_discarded(listener, dropped, "echo")
            return
        if isinstance(event, rec.SpeechStarted):
            listener.on_speech_started(start_ms)
        elif isinstance(event, rec.Hypothesis):
            listener.on_recognizing(event.text)
        else:
            end_ms = start_ms + event.duration_ms
            listener.on_committed(
                Transcript(event.text, event.confidence, start_ms, end_ms, event.alternatives)
            )

    def _call_ms(self, offset_ms: int) -> int:
        session = self._session
        origin = session.position.origin_ms if session is not None else None
        return (origin if origin is not None else self._audio_end_ms) + offset_ms

    def _is_echo(self, start_ms: int) -> bool:
        stopped = self._speaking_stopped_ms
        if self.speaking or stopped is None:
            return False
        return stopped <= start_ms < stopped + self.echo_discard_ms

    # --- on the SDK thread ---

    def _open(self, generation: int, phrases: tuple[str, ...]) -> rec.Session:
        self._sdk = self._sdk if self._sdk is not None else load_sdk()
        return rec.open_session(self._sdk, self.settings, generation, phrases, self._deliver)

    def _deliver(self, generation: int, event: rec.SdkEvent) -> None:
        loop = self._loop
        assert loop is not None  # sessions open only after start
        post_to_loop(loop, self._on_sdk_event, generation, event)

    def _apply_phrases(self, recognizer: Any, phrases: tuple[str, ...]) -> None:
        rec.apply_phrases(self._sdk, recognizer, phrases)

    @staticmethod
    def _close_when_opened(opening: concurrent.futures.Future[rec.Session]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            rec.close_session(opening.result())


def _loss(reason: str, fatal: bool) -> pm.ProviderEvent:
    return pm.Fatal(reason) if fatal else pm.Dropped(reason)


if TYPE_CHECKING:  # mypy checks that it satisfies the protocol
    _recognizer: SpeechRecognizer = AzureRecognizer()
