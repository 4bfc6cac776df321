"""ElevenLabs speech-to-text (extra `elevenlabs`): Scribe realtime over its WebSocket.

One session per call, opened with the SDK's realtime client: caller μ-law 8 kHz goes
in as it arrives (`audio_format=ulaw_8000`, no transcoding), the service's VAD commits
utterances (`commit_strategy=vad`). The first non-empty `partial_transcript` of an
utterance is `on_speech_started` (barge-in), every partial is `on_recognizing`, a
committed transcript is `on_committed`. With `timestamps` (the default) the session asks
for `include_timestamps` and commits on `committed_transcript_with_timestamps`: its
word times (seconds into the session's audio) become the transcript's call times
through a `SessionTimeline` (right across reconnects and lost frames), and the words'
mean logprob its confidence; without, the times are those of the audio fed so far.

Echo: a commit or partial that arrives within `echo_discard_ms` (400 ms) after the agent
stops speaking is the tail of the agent's own voice on the line, not the caller: it is
dropped (kept in `discarded`, and passed to the listener's optional `on_discarded`).
After an agent turn longer than `renew_after_speaking_ms`, the session is replaced
(`Renew`): the old one may hold the echo of that whole turn as uncommitted audio.

Errors (the provider machine, `fsm_voice.providers.machine`): reconnectable ones —
`queue_overflow`, `resource_exhausted`, `transcriber_error`, `chunk_size_exceeded`,
a server `error`, a closed socket, a handshake or `session_started` that does not
come within `connect_timeout_ms` — go to `reconnecting` and retry on their own with
backoff (1, 2, 4 s … capped, ±25 % jitter) until `max_retries`, then `error` with
`on_error(reason, True)`; terminal ones — `auth_error`, `quota_exceeded`,
`input_error` (plus any in `terminal_errors`, e.g. `rate_limited`) — go straight to
`error`. `session_time_limit_exceeded` is not an error: a new session starts at once.
A failed send is a dropped socket; with `max_send_failures`, that many failed sends in a
row (reconnects in between do not reset the count, only a send that succeeds does) end
the recognizer with a fatal error: a link that opens but cannot carry audio must not loop
through reconnects for ever. `failure` says, as an `ElevenLabsError`, what ended it:
the service's error type, `reconnect_exhausted` or `send_failures`.

Caller audio that arrives while there is no session is kept (up to `max_buffer_ms`,
oldest dropped first, the loss counted and reported) and sent, in order, as soon as
the next session has started. Timers run on the Clock; jitter comes from `jitter`
(an IdSource's), so tests and replays wait exactly as long as they did before.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from fsm_voice.clock import Clock, SystemClock, TimerHandle
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import (
    Grammar,
    SpeechRecognizer,
    SttListener,
    Transcript,
    report_discarded,
)
from fsm_voice.providers.driving import ProviderDriver
from fsm_voice.providers.elevenlabs_backlog import BYTES_PER_MS, CallerBacklog, SessionTimeline
from fsm_voice.providers.elevenlabs_client import (
    SESSION_LIMIT,
    TERMINAL,
    ElevenLabsError,
    ElevenLabsSettings,
    ScribeSession,
    open_scribe,
)
from fsm_voice.security import Secret

__all__ = ["ElevenLabsRecognizer"]


class ElevenLabsRecognizer:
    """SpeechRecognizer on Scribe realtime; one per call."""

    def __init__(
        self,
        *,
        api_key: Secret | str | None = None,
        model_id: str | None = None,
        language_code: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        echo_discard_ms: int = 400,
        renew_after_speaking_ms: int | None = 10_000,
        max_buffer_ms: int = 10_000,
        max_chunk_ms: int = 200,
        connect_timeout_ms: int = 10_000,
        vad_silence_threshold_secs: float | None = None,
        timestamps: bool = True,
        max_retries: int = 5,
        cap_ms: int = 16_000,
        immediate_first_retry: bool = False,
        terminal_errors: Collection[str] = TERMINAL,
        max_send_failures: int | None = None,
        clock: Clock | None = None,
        jitter: Callable[[], float] = lambda: 0.5,
        name: str = "elevenlabs",
    ) -> None:
        self.name = name
        self.settings = ElevenLabsSettings.from_env(
            environ,
            api_key=api_key,
            stt_model=model_id,
            language_code=language_code,
            base_url=base_url,
        )
        self.echo_discard_ms = echo_discard_ms
        self.renew_after_speaking_ms = renew_after_speaking_ms
        self.backlog = CallerBacklog(max_buffer_ms * BYTES_PER_MS, max_chunk_ms * BYTES_PER_MS)
        self.timestamps = timestamps
        self.connect_timeout_ms = connect_timeout_ms
        self.vad_silence_threshold_secs = vad_silence_threshold_secs
        self.terminal_errors = frozenset(terminal_errors)
        self.max_send_failures = max_send_failures
        self.send_failures = 0  # failed sends in a row, across reconnects
        self.failure: ElevenLabsError | None = None  # what put it in `error`
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._machine_args: dict[str, Any] = {
            "jitter": jitter,
            "max_retries": max_retries,
            "cap_ms": cap_ms,
            "immediate_first_retry": immediate_first_retry,
        }
        self.machine, self._driver = self._new_machine()
        self.grammar: Grammar | None = None
        self.discarded: list[Transcript] = []  # commits dropped as echo
        self.dropped_bytes = 0  # caller audio lost to a full buffer, over the call
        self.sessions_opened = 0
        self.speaking = False
        self._listener: SttListener | None = None
        self._session: ScribeSession | None = None
        self._generation = 0  # which session's callbacks still count
        self._ready: asyncio.Future[str] | None = None  # the session id, once started
        self._timeline = SessionTimeline()  # the current session's audio in call time
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._retry_timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # keeps fire-and-forget work alive
        self._connects: set[asyncio.Task[None]] = set()
        self._call_now_ms = 0  # call time at the end of the latest caller frame
        self._speech_start_ms: int | None = None  # the utterance in progress
        self._speaking_since_ms = 0
        self._speaking_ended_ms: int | None = None

    # --- SpeechRecognizer ---

    async def start(self, listener: SttListener) -> None:
        self._listener = listener
        if self.machine.state in pm.FINAL:  # started again after stop (or error)
            self.machine, self._driver = self._new_machine()
            self.failure = None
            self.send_failures = 0
        if self.machine.state != pm.IDLE:
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_loop())
        self._fire(pm.Start(), f"model {self.settings.stt_model}")
        # Return once the first attempt is decided (streaming, reconnecting or error).
        await asyncio.gather(*list(self._connects), return_exceptions=True)

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        if not mulaw or self._listener is None or self.machine.state in pm.FINAL:
            return
        self._call_now_ms = t_ms + len(mulaw) // BYTES_PER_MS
        first_loss = not self.backlog.dropped
        overflow = self.backlog.add(t_ms, mulaw)
        if overflow:
            if first_loss:  # once per outage; the total goes with the reconnect's state
                limit_ms = self.backlog.max_bytes // BYTES_PER_MS
                reason = f"audio buffer full ({limit_ms} ms): dropping the oldest caller audio"
                self._listener.on_error(reason, False)
            self.dropped_bytes += overflow
        self._wakeup.set()

    def set_grammar(self, grammar: Grammar | None) -> None:
        # Scribe takes keyterms only when a session opens; a grammar per listen state
        # would mean a new session per prompt, so it is kept for inspection only.
        self.grammar = grammar

    def set_speaking(self, speaking: bool) -> None:
        now = self.clock.now_ms()
        if speaking and not self.speaking:
            self._speaking_since_ms = now
        elif not speaking and self.speaking:
            self._speaking_ended_ms = now
            limit = self.renew_after_speaking_ms
            if limit is not None and now - self._speaking_since_ms >= limit:
                self._renew("fresh session after a long agent turn")
        self.speaking = speaking

    async def stop(self) -> None:
        self._fire(pm.Stop(), "stopped")  # Disconnect: closes it
        self._generation += 1
        stopping = [*self._connects, *([self._sender] if self._sender else [])]
        for task in stopping:
            task.cancel()
        self._sender = None
        # What is left are sessions closing: let them finish their close handshake
        # (`wait`: if our caller is cancelled, a gather would cancel the closes too).
        pending = {*stopping, *self._tasks}
        if pending:
            await asyncio.wait(pending)
        self.backlog.clear()

    # --- sending caller audio, in order, whenever a session is streaming ---

    async def _send_loop(self) -> None:
        while True:
            session = self._session
            if session is None or not self.machine.is_streaming or not self.backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            t_ms, chunk = self.backlog.take()
            generation = self._generation
            try:
                await session.send(chunk)
            except ElevenLabsError as error:
                self.backlog.put_back((t_ms, chunk))  # not lost: it goes to the next session
                if generation == self._generation:  # a replaced session's send is no failure
                    self._send_failed(error)
                continue
            self.send_failures = 0
            if generation == self._generation:
                self._timeline.sent(t_ms, len(chunk))

    def _send_failed(self, error: ElevenLabsError) -> None:
        self.send_failures += 1
        limit = self.max_send_failures
        if limit is None or self.send_failures < limit:
            self._dropped(f"socket closed: {error.detail}")
            return
        self._fail(
            ElevenLabsError(
                "send_failures", f"{self.send_failures} sends in a row failed", retryable=False
            )
        )

    # --- sessions ---

    async def _connect(self, attempt: int) -> None:
        self._generation += 1
        generation = self._generation
        self._ready = asyncio.get_running_loop().create_future()
        scope = anyio.CancelScope()
        timer = self.clock.call_later(self.connect_timeout_ms, scope.cancel)
        session: ScribeSession | None = None
        failure: ElevenLabsError | None = None
        session_id = ""
        try:
            with scope:
                try:
                    session = await open_scribe(
                        self.settings,
                        functools.partial(self._on_message, generation),
                        functools.partial(self._on_close, generation),
                        vad_silence_threshold_secs=self.vad_silence_threshold_secs,
                        include_timestamps=self.timestamps,
                    )
                    if generation == self._generation:
                        self._session = session
                    session_id = await self._ready
                except ElevenLabsError as error:
                    failure = error
        finally:  # stopped while connecting: no timeout timer may outlive the attempt
            timer.cancel()
            self._ready = None
        if scope.cancelled_caught:
            failure = ElevenLabsError(
                "connect_timeout", f"no session within {self.connect_timeout_ms} ms", retryable=True
            )
        if generation != self._generation:  # stopped (or replaced) meanwhile
            if session is not None:
                await session.close()
            return
        if failure is not None:
            self._session = None
            self._generation += 1
            if session is not None:
                self._spawn(session.close())
            if failure.retryable:
                self._fire(pm.Dropped(str(failure)), str(failure))
            else:
                self._fail(failure)
            return
        self.sessions_opened += 1
        self._speech_start_ms = None
        self._timeline = SessionTimeline()
        queued_ms = self.backlog.size // BYTES_PER_MS
        detail = f"session {session_id}, attempt {attempt}; {queued_ms} ms of caller audio to send"
        dropped_ms = self.backlog.take_dropped() // BYTES_PER_MS
        if dropped_ms:
            detail += f", {dropped_ms} ms dropped (buffer full)"
        self._fire(pm.Connected(session_id), detail)
        self._wakeup.set()

    def _on_message(self, generation: int, kind: str, data: dict[str, Any]) -> None:
        if generation != self._generation:
            return  # a replaced session's last words
        ready = self._ready
        if kind == "session_started":
            if ready is not None and not ready.done():
                ready.set_result(str(data.get("session_id", "")))
        elif kind == "partial_transcript":
            self._partial(str(data.get("text", "")))
        elif kind == "committed_transcript" and not self.timestamps:
            self._committed(str(data.get("text", "")), None)
        elif kind == "committed_transcript_with_timestamps" and self.timestamps:
            # The same utterance as the committed_transcript before it, with word times.
            self._committed(str(data.get("text", "")), data.get("words"))
        elif kind.startswith("committed_transcript"):
            pass  # the other form of the same utterance
        elif kind == SESSION_LIMIT:
            self._renew("session time limit")
        else:  # an error message type (or the SDK's report of a failed socket)
            retryable = kind not in self.terminal_errors
            error = ElevenLabsError(kind, str(data.get("error", "")), retryable=retryable)
            if ready is not None and not ready.done():
                ready.set_exception(error)
            elif retryable:
                self._dropped(str(error))
            else:
                self._fail(error)

    def _on_close(self, generation: int, code: int | None, reason: str) -> None:
        if generation != self._generation:
            return  # closed by us, or already replaced
        error = ElevenLabsError("socket_closed", f"code {code} {reason}".strip(), retryable=True)
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(error)
        else:
            self._dropped(str(error))

    def _fail(self, error: ElevenLabsError) -> None:
        """Give up for `error` (no retry can help)."""
        self.failure = error
        self._fire(pm.Fatal(str(error)), str(error))

    def _dropped(self, reason: str) -> None:
        self._retire_session()
        self._fire(pm.Dropped(reason), reason)

    def _renew(self, reason: str) -> None:
        if not self.machine.is_streaming:
            return
        self._retire_session()
        self._fire(pm.Renew(reason), reason)

    def _retire_session(self) -> None:
        """Forget the current session (its later callbacks no longer count) and close it."""
        session, self._session = self._session, None
        self._generation += 1
        self._speech_start_ms = None
        if session is not None:
            self._spawn(session.close())

    # --- transcripts ---

    def _in_echo_window(self) -> bool:
        ended = self._speaking_ended_ms
        if self.speaking or ended is None:
            return False
        return self.clock.now_ms() - ended < self.echo_discard_ms

    def _partial(self, text: str) -> None:
        listener = self._listener
        if listener is None or not text.strip() or self._in_echo_window():
            return
        if self._speech_start_ms is None:
            self._speech_start_ms = self._call_now_ms
            listener.on_speech_started(self._speech_start_ms)
        listener.on_recognizing(text)

    def _committed(self, text: str, words: Any) -> None:
        listener = self._listener
        start_ms = self._speech_start_ms if self._speech_start_ms is not None else self._call_now_ms
        end_ms = self._call_now_ms
        confidence = None
        spoken = [w for w in words or () if isinstance(w, dict) and w.get("type", "word") == "word"]
        if spoken and spoken[0].get("start") is not None and spoken[-1].get("end") is not None:
            # Word times are seconds into this session's audio: place them in the call.
            start_ms = self._timeline.to_call_ms(float(spoken[0]["start"]) * 1000)
            end_ms = self._timeline.to_call_ms(float(spoken[-1]["end"]) * 1000)
            logprobs = [float(w["logprob"]) for w in spoken if w.get("logprob") is not None]
            if logprobs:
                confidence = round(math.exp(sum(logprobs) / len(logprobs)), 3)
        self._speech_start_ms = None
        transcript = Transcript(text.strip(), confidence, start_ms, end_ms)
        if listener is None:
            return
        if self._in_echo_window():
            self.discarded.append(transcript)
            report_discarded(listener, transcript, "echo")
            return
        listener.on_committed(transcript)

    # --- the provider machine's effects ---

    def _new_machine(self) -> tuple[pm.ProviderMachine, ProviderDriver]:
        machine = pm.ProviderMachine(f"stt:{self.name}", **self._machine_args)
        return machine, ProviderDriver(machine, on_state=lambda: self._moved, execute=self._execute)

    def _fire(self, event: pm.ProviderEvent, detail: str) -> None:
        self._driver.feed(event, detail)

    def _moved(self, state: str, detail: str) -> None:
        """A move, before its effects run: said with the retry it scheduled, and the
        failure noted when it ends in `error`."""
        retry = self.machine.scheduled_retry
        if state == pm.RECONNECTING and retry is not None:  # every such move schedules one
            detail = f"{detail}; attempt {retry.attempt} in {retry.delay_ms} ms"
        if state == pm.ERROR and self.failure is None:
            # The only way into `error` not through `_fail`: out of retries.
            retries = self.machine.retries
            self.failure = ElevenLabsError(
                "reconnect_exhausted", f"after {retries} retries: {detail}", retryable=False
            )
        if self._listener is not None:
            self._listener.on_state(state, detail)

    def _execute(self, effect: pm.ProviderEffect) -> None:
        listener = self._listener
        if isinstance(effect, pm.Connect):
            self._connects.add(self._spawn(self._connect(effect.attempt)))
        elif isinstance(effect, pm.ScheduleRetry):
            if effect.delay_ms <= 0:  # at once: no timer to wait for
                self._on_retry_timer()
            else:
                self._retry_timer = self.clock.call_later(effect.delay_ms, self._on_retry_timer)
        elif isinstance(effect, pm.CancelRetry) and self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        elif isinstance(effect, pm.Disconnect):
            self._retire_session()
        elif isinstance(effect, pm.ReportError) and listener is not None:
            listener.on_error(effect.reason, effect.fatal)

    def _on_retry_timer(self) -> None:
        self._retry_timer = None
        self._fire(pm.Retry(), "retrying")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._connects.discard)
        return task


if TYPE_CHECKING:  # mypy checks that it satisfies the protocol
    _recognizer: SpeechRecognizer = ElevenLabsRecognizer()
