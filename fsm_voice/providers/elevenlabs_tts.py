"""ElevenLabs text-to-speech (extra `elevenlabs`): streamed 8 kHz μ-law, no transcoding.

Each sentence is one streaming request for `output_format=ulaw_8000` (the telephone's
own format, so the bytes go to the caller as they arrive); a sentence longer than
`max_chars` is cut at its commas, then between words, so the first audio leaves
early whatever the text.

Every request is timed on the Clock: when no audio arrives for `timeout_ms` (before
the first chunk or between chunks) the request is abandoned. Closing the iterator
(barge-in) cancels the request task at once, which closes the HTTP response: the
service stops synthesising, not just our forwarding.

HTTP is stateless, so the provider machine's "connection" is the service's health:
a retryable failure (a timeout, 429, 5xx, a refused connection) is `Dropped` (→
reconnecting, `on_error(reason, False)`, then after the backoff → connecting, and
back to streaming with the next request that gets audio; failures in a row past
`max_retries` → error); a terminal one (401/403 key, 402 quota, 4xx request) is `Fatal` (→ error,
`on_error(reason, True)`). Requests still go out while reconnecting — the next call's
sentence is the best probe there is. The failure is also raised to the caller of
`synthesize` as an `ElevenLabsError`. After `error`, `start()` begins afresh (the
runner calls it with every call), so one bad minute does not end the process's TTS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from fsm_voice.clock import Clock, SystemClock, TimerHandle
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import SpeechSynthesizer, split_at_clause_breaks, split_sentences
from fsm_voice.providers.driving import ProviderDriver
from fsm_voice.providers.elevenlabs_client import ElevenLabsError, ElevenLabsSettings, TtsClient
from fsm_voice.providers.state_log import StateWatchers
from fsm_voice.security import Secret

__all__ = ["ElevenLabsSynthesizer", "split_long"]

ErrorCallback = Callable[[str, bool], None]

_TIMED_OUT = object()  # queue marker: the request's timer fired


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Cut a sentence longer than `max_chars` at `,` `;` `:`, then between words."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for clause in split_at_clause_breaks(sentence):
        if pieces and len(pieces[-1]) + 1 + len(clause) <= max_chars:
            pieces[-1] = f"{pieces[-1]} {clause}"
            continue
        words: list[str] = []
        for word in clause.split():
            if words and len(" ".join([*words, word])) > max_chars:
                pieces.append(" ".join(words))
                words = []
            words.append(word)
        if words:
            pieces.append(" ".join(words))
    return pieces


class ElevenLabsSynthesizer:
    """SpeechSynthesizer on ElevenLabs streaming TTS; one instance serves every call."""

    def __init__(
        self,
        *,
        api_key: Secret | str | None = None,
        voice_id: str | None = None,
        model_id: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        timeout_ms: int = 10_000,
        max_chars: int = 250,
        max_retries: int = 5,
        clock: Clock | None = None,
        jitter: Callable[[], float] = lambda: 0.5,
        on_state: pm.StateCallback | None = None,
        on_error: ErrorCallback | None = None,
        name: str = "elevenlabs",
    ) -> None:
        self.name = name
        self.settings = ElevenLabsSettings.from_env(
            environ, api_key=api_key, voice_id=voice_id, tts_model=model_id, base_url=base_url
        )
        self.timeout_ms = timeout_ms
        self.max_chars = max_chars
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.state_watchers = StateWatchers(on_state)
        self.on_error = on_error
        self._jitter = jitter
        self._max_retries = max_retries
        self.machine, self._driver = self._new_machine()
        self._client = TtsClient(self.settings)
        self._retry_timer: TimerHandle | None = None

    def _new_machine(self) -> tuple[pm.ProviderMachine, ProviderDriver]:
        machine = pm.ProviderMachine(
            f"tts:{self.name}", jitter=self._jitter, max_retries=self._max_retries
        )
        driver = ProviderDriver(
            machine, on_state=lambda: self.state_watchers, execute=self._execute
        )
        return machine, driver

    # --- SpeechSynthesizer ---

    async def start(self) -> None:
        if self.machine.state in pm.FINAL:
            self.machine, self._driver = self._new_machine()  # a new start after stop or error
        if self.machine.state != pm.IDLE:
            return  # idempotent: shared by every call of the process
        if self.settings.api_key is None:
            # Report the start, but there is nothing to connect with: straight to error.
            self._fire(pm.Start(), "starting")
            raise _no_key()
        self._fire(pm.Start(), f"voice {self.settings.voice_id}, model {self.settings.tts_model}")

    def pieces(self, text: str) -> list[str]:
        """The requests `text` becomes: its sentences, long ones cut to `max_chars`."""
        return [p for s in split_sentences(text) for p in split_long(s, self.max_chars)]

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._stream(text)

    async def stop(self) -> None:
        if self.machine.state not in pm.FINAL:
            self._fire(pm.Stop(), "stopped")
        await self._client.aclose()

    # --- streaming ---

    async def _stream(self, text: str) -> AsyncIterator[bytes]:
        if self.machine.state == pm.IDLE:
            await self.start()
        if self.machine.state in pm.FINAL:
            reason = self.machine.last_reason or self.machine.state
            raise ElevenLabsError("unavailable", reason, retryable=False)
        for piece in self.pieces(text):
            # aclosing: a barge-in that closes us must close the request too, now.
            async with contextlib.aclosing(self._request(piece)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _request(self, piece: str) -> AsyncGenerator[bytes, None]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        producer = asyncio.ensure_future(self._fetch(piece, queue))
        timer: TimerHandle | None = None

        def arm() -> None:
            nonlocal timer
            if timer is not None:
                timer.cancel()
            timer = self.clock.call_later(self.timeout_ms, lambda: queue.put_nowait(_TIMED_OUT))

        try:
            arm()
            while (item := await queue.get()) is not None:
                if item is _TIMED_OUT:
                    detail = f"no audio for {self.timeout_ms} ms"
                    raise self._failed(ElevenLabsError("timeout", detail, retryable=True))
                if isinstance(item, ElevenLabsError):
                    raise self._failed(item)
                assert isinstance(item, bytes)
                if self.machine.state == pm.CONNECTING:
                    self._fire(pm.Connected(), "audio again")
                arm()
                yield item
        finally:
            if timer is not None:
                timer.cancel()
            producer.cancel()  # closes the HTTP response if it is still streaming
            # `wait`, not `gather`: when our caller is cancelled (barge-in cancels the
            # prompt's scope) a cancelled gather cancels the producer again, in the
            # middle of its close, and the connection is left open, still streaming.
            await asyncio.wait([producer])

    async def _fetch(self, piece: str, queue: asyncio.Queue[object]) -> None:
        try:
            async for chunk in self._client.stream(piece):
                if chunk:
                    queue.put_nowait(chunk)
        except ElevenLabsError as error:
            queue.put_nowait(error)
            return
        except Exception as exc:  # an SDK surprise must fail the sentence, not hang it
            queue.put_nowait(ElevenLabsError("unexpected", repr(exc), retryable=True))
            return
        queue.put_nowait(None)

    # --- the provider machine ---

    def _failed(self, error: ElevenLabsError) -> ElevenLabsError:
        reason = str(error)
        event: pm.ProviderEvent = pm.Dropped(reason) if error.retryable else pm.Fatal(reason)
        self._fire(event, reason)
        return error

    def _fire(self, event: pm.ProviderEvent, detail: str) -> None:
        self._driver.feed(event, detail)

    def _execute(self, effect: pm.ProviderEffect) -> None:
        if isinstance(effect, pm.Connect) and effect.attempt == 1:
            # Nothing to open: HTTP requests stand alone. A retry (attempt > 1)
            # stays `connecting` until a request gets audio again, so failures
            # in a row add up to the machine's retry limit.
            if self.settings.api_key is None:
                reason = str(_no_key())
                self._fire(pm.Fatal(reason), reason)
            else:
                self._fire(pm.Connected(), "ready")
        elif isinstance(effect, pm.ScheduleRetry):
            self._retry_timer = self.clock.call_later(effect.delay_ms, self._on_retry_timer)
        elif isinstance(effect, pm.CancelRetry) and self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        elif isinstance(effect, pm.ReportError) and self.on_error is not None:
            self.on_error(effect.reason, effect.fatal)

    def _on_retry_timer(self) -> None:
        self._retry_timer = None
        self._fire(pm.Retry(), "retrying")


def _no_key() -> ElevenLabsError:
    return ElevenLabsError("auth_error", "ELEVENLABS_API_KEY is not set", retryable=False)


if TYPE_CHECKING:  # mypy checks that it satisfies the protocol
    _synthesizer: SpeechSynthesizer = ElevenLabsSynthesizer()
