"""`CallHandle`: what code that drives a call holds.

Async methods run on the call's event loop; each has a thread-safe `_sync` twin for
consumer threads (it refuses to run on the loop's own thread, where it would deadlock).
Caller audio and DTMF arrive through callbacks or async iterators.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fsm_voice.clock import Clock
from fsm_voice.errors import CallHangupError, CallNotAnsweredError
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.eventlog.records import Source
from fsm_voice.security import mask_phone_values

if TYPE_CHECKING:
    from fsm_voice.call.remote_hangup import RemoteHangup
    from fsm_voice.call.runtime import CallRuntime

# A platform notice for the code driving a call: (kind, data), e.g. ("amd", {...}).
NoticeCallback = Callable[[str, dict[str, Any]], None]

T = TypeVar("T")


class MarkOutcome(StrEnum):
    PLAYED = "played"  # the platform played everything queued before the mark
    CLEARED = "cleared"  # a clear dropped the audio before it
    TIMEOUT = "timeout"  # not echoed within the mark timeout
    CALL_ENDED = "call_ended"  # the call ended first (or had already ended)
    NOT_CONNECTED = "not_connected"  # the stream had not started


class _Subscription(Generic[T]):
    """An async iterator fed by the runtime; bounded, counting what it drops."""

    def __init__(self, limit: int) -> None:
        self._items: deque[T] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def push(self, item: T) -> None:
        if len(self._items) >= self._limit:
            self.dropped += 1
            return
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> _Subscription[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()


class CallHandle:
    """One live call, as the agent sees it."""

    def __init__(self, runtime: CallRuntime, loop: asyncio.AbstractEventLoop) -> None:
        self._runtime = runtime
        self._loop = loop
        self._audio_callbacks: list[Callable[[bytes], None]] = []
        self._dtmf_callbacks: list[Callable[[str], None]] = []
        self._end_callbacks: list[Callable[[str], None]] = []
        self._notice_callbacks: list[NoticeCallback] = []
        self._notices: list[tuple[str, dict[str, Any]]] = []
        self._audio_subs: list[_Subscription[bytes]] = []
        self._dtmf_subs: list[_Subscription[str]] = []
        self._connected: asyncio.Future[None] = loop.create_future()
        self._ended: asyncio.Future[str] = loop.create_future()

    # --- identity ---
    @property
    def call_id(self) -> str:
        return self._runtime.call_id

    @property
    def stream_sid(self) -> str | None:
        return self._runtime.machine.stream_sid

    @property
    def call_sid(self) -> str | None:
        return self._runtime.call_sid

    @property
    def custom_parameters(self) -> dict[str, str]:
        return dict(self._runtime.custom_parameters)

    @property
    def state(self) -> str:
        """The call machine's state (connecting, listening, speaking, ...)."""
        return self._runtime.machine.state

    @property
    def ended(self) -> bool:
        return self._ended.done()

    @property
    def clock(self) -> Clock:
        """The call's clock: timers of code driving the call go through it."""
        return self._runtime.clock

    def t_ms(self) -> int:
        """Milliseconds since the call started, on the call's clock."""
        return self._runtime.t_ms()

    def record(self, source: Source, kind: KindName, data: dict[str, Any]) -> None:
        """Append an event to this call's log (providers and conversations use it).

        With `mask_phone_numbers` configured, phone numbers anywhere in `data` reach the
        log masked: conversations carry them in variables, SMS and transfers."""
        if self._runtime.config.mask_phone_numbers:
            data = mask_phone_values(data)
        self._runtime.record(source, kind, data)

    @property
    def end_reason(self) -> str | None:
        return self._ended.result() if self._ended.done() else None

    # --- driving the call (async, on the loop) ---
    async def send_audio(self, mulaw: bytes) -> bool:
        """Queue agent μ-law audio (split into 20 ms frames). False if the call is over."""
        return self._runtime.queue_audio(mulaw)

    def send_audio_nowait(self, mulaw: bytes) -> bool:
        """`send_audio` for callbacks running on the loop."""
        return self._runtime.queue_audio(mulaw)

    def mark(self, name: str, timeout_ms: int | None = None) -> asyncio.Future[MarkOutcome]:
        """Queue a mark behind the audio queued so far; the future says how it ended."""
        return self._runtime.request_mark(name, timeout_ms)

    async def send_mark(self, name: str, timeout_ms: int | None = None) -> MarkOutcome:
        """Queue a mark and wait until the audio before it has played (or not)."""
        return await self.mark(name, timeout_ms)

    async def clear(self) -> None:
        """Barge-in: drop queued audio here and at the platform; release mark waits."""
        self._runtime.request_clear()

    def clear_nowait(self) -> None:
        """`clear` for callbacks running on the loop."""
        self._runtime.request_clear()

    async def hangup(self, reason: str = "agent_hangup") -> None:
        self._runtime.request_hangup(reason)

    async def wait_connected(self, timeout_ms: int | None = None) -> None:
        """Return once the stream has started; raise CallNotAnsweredError on timeout."""
        if self._connected.done():
            return self._connected.result()
        timeout = timeout_ms if timeout_ms is not None else self._runtime.config.connect_timeout_ms
        waiter: asyncio.Future[None] = self._loop.create_future()

        def settle(done: asyncio.Future[None]) -> None:
            if waiter.done():
                return
            if done.exception() is not None:
                waiter.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                waiter.set_result(None)

        def time_out() -> None:
            if not waiter.done():
                waiter.set_exception(CallNotAnsweredError(timeout))

        self._connected.add_done_callback(settle)
        timer = self._runtime.clock.call_later(timeout, time_out)
        try:
            await waiter
        finally:
            timer.cancel()
            self._connected.remove_done_callback(settle)

    async def wait_ended(self) -> str:
        """Wait for the end of the call; returns the end reason."""
        return await asyncio.shield(self._ended)

    def caller_audio(self) -> AsyncIterator[bytes]:
        """Every caller audio frame from now on, until the call ends."""
        sub: _Subscription[bytes] = _Subscription(self._runtime.config.max_buffered_frames)
        self._audio_subs.append(sub)
        if self.ended:
            sub.close()
        return sub

    def dtmf(self) -> AsyncIterator[str]:
        """Every DTMF digit from now on, until the call ends."""
        sub: _Subscription[str] = _Subscription(1_000)
        self._dtmf_subs.append(sub)
        if self.ended:
            sub.close()
        return sub

    def on_caller_audio(self, callback: Callable[[bytes], None]) -> None:
        """`callback(frame)` for every caller frame; `caller_frame_ms()` says where it is."""
        self._audio_callbacks.append(callback)

    def caller_frame_ms(self) -> int:
        """The call time of the caller frame being delivered: the first frame's arrival
        plus 20 ms per frame number after it. Arrival jitter moves no frame, lost
        frames leave their gap. A recogniser fed at this time hears the line as it was,
        the same live and in replay."""
        return self._runtime.line.frame_ms

    def on_dtmf(self, callback: Callable[[str], None]) -> None:
        self._dtmf_callbacks.append(callback)

    def on_end(self, callback: Callable[[str], None]) -> None:
        if self.ended:
            callback(self._ended.result())
        else:
            self._end_callbacks.append(callback)

    # --- the platform around the stream ---
    def use_remote_hangup(self, hangup: RemoteHangup) -> None:
        """End this call at the platform (REST) when hanging up, before closing the
        stream; see `fsm_voice.call.remote_hangup`."""
        self._runtime.remote_hangup = hangup

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        """A fact from the platform outside the stream (webhooks call it, on the loop).

        Logged as `platform_notice` (an input, like a transcript): replay delivers it
        again at its time."""
        self.record("runtime", "platform_notice", {"notice": kind, **data})
        self._notices.append((kind, data))
        for callback in self._notice_callbacks:
            callback(kind, data)

    def on_notice(self, callback: NoticeCallback) -> None:
        """Platform notices: those already received at once, then each as it comes."""
        self._notice_callbacks.append(callback)
        for kind, data in self._notices:
            callback(kind, data)

    # --- the same, from other threads ---
    def _run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("a *_sync method was called on the event loop; await the async one")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def send_audio_sync(self, mulaw: bytes) -> bool:
        return self._run_sync(self.send_audio(mulaw))

    def send_mark_sync(self, name: str, timeout_ms: int | None = None) -> MarkOutcome:
        """Queue a mark and block this thread until it has played, cleared or timed out."""
        return self._run_sync(self.send_mark(name, timeout_ms))

    def clear_sync(self) -> None:
        self._run_sync(self.clear())

    def hangup_sync(self, reason: str = "agent_hangup") -> None:
        self._run_sync(self.hangup(reason))

    def wait_connected_sync(self, timeout_ms: int | None = None) -> None:
        self._run_sync(self.wait_connected(timeout_ms))

    def wait_ended_sync(self, timeout_s: float | None = None) -> str:
        return self._run_sync(self.wait_ended(), timeout_s)

    # --- fed by the runtime ---
    def _deliver_audio(self, frame: bytes) -> None:
        for callback in self._audio_callbacks:
            callback(frame)
        for sub in self._audio_subs:
            sub.push(frame)

    def _deliver_dtmf(self, digit: str) -> None:
        for callback in self._dtmf_callbacks:
            callback(digit)
        for sub in self._dtmf_subs:
            sub.push(digit)

    def _set_connected(self) -> None:
        if not self._connected.done():
            self._connected.set_result(None)

    def _set_ended(self, reason: str) -> None:
        if self._ended.done():
            return
        self._ended.set_result(reason)
        if not self._connected.done():
            self._connected.set_exception(CallHangupError(f"call ended ({reason}) before start"))
            self._connected.exception()  # retrieved: nobody may be waiting
        for audio_sub in self._audio_subs:
            audio_sub.close()
        for dtmf_sub in self._dtmf_subs:
            dtmf_sub.close()
        for callback in self._end_callbacks:
            callback(reason)
        self._end_callbacks.clear()

    @property
    def dropped_frames(self) -> int:
        return sum(sub.dropped for sub in self._audio_subs)
