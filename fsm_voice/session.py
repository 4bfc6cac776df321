"""`VoiceSession`: voice_runtime's thread-and-queue API, bridged onto the engine.

Consumer threads (tool code, TTS) call the sync methods; the transport
(`register_voice_websocket`) attaches one live `CallHandle` at a time and forwards
what the queues hold to it. Every sync method is safe from any thread: the work is
handed to the session's loop (`call_soon_threadsafe` / `run_coroutine_threadsafe`).

Differences from voice_runtime, on purpose (its known defects):
- agent audio and marks share ONE ordered queue, so a mark never overtakes the audio
  queued before it (the engine then echoes it only once that audio has played);
- a mark wait after hang-up (or before any call) returns False at once;
- `request_disconnect(generation)` ignores a generation that is not the live call's;
- `reset()` stops the STT, drains every queue and releases every mark wait;
- `request_clear_buffer()` drops the audio still queued here, not only the platform's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsm_voice.compat.protocols import SttProvider
from fsm_voice.errors import CallNotAnsweredError

if TYPE_CHECKING:
    from fsm_voice.audio.mixer import AudioMixer
    from fsm_voice.runtime.handle import CallHandle

__all__ = ["VoiceSession"]

MAX_INBOUND_FRAMES = 3_000  # 60 s of caller audio waiting for an STT before the oldest go
STT_STOP_TIMEOUT_S = 5.0  # reset() waits this long for the STT to stop


@dataclass(eq=False)
class _Mark:
    name: str
    done: concurrent.futures.Future[bool] = field(default_factory=concurrent.futures.Future)

    def release(self, played: bool) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.done.set_result(played)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(eq=False)
class VoiceSession:
    """One call at a time: queues, marks and transport intents (subclass it freely)."""

    call_sid: str | None = None
    stream_sid: str | None = None
    stt_factory: Callable[[], SttProvider] | None = None
    stt_secondary_factory: Callable[[], SttProvider] | None = None
    on_stt_ready: Callable[[SttProvider], None] | None = None
    on_disconnected: Callable[[], None] | None = None
    generation: int = 0  # +1 for every call this session serves; see request_disconnect
    inbound: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(MAX_INBOUND_FRAMES), repr=False
    )
    inbound_dropped: int = field(default=0, init=False)  # caller frames nobody read in time
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _handle: CallHandle | None = field(default=None, init=False, repr=False)
    _outbound: asyncio.Queue[bytes | _Mark] = field(
        default_factory=asyncio.Queue, init=False, repr=False
    )
    _marks_ready: asyncio.Queue[_Mark] = field(
        default_factory=asyncio.Queue, init=False, repr=False
    )
    _marks: deque[_Mark] = field(default_factory=deque, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _connected: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _disconnected: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _hangup_watchers: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)
    _stt: SttProvider | None = field(default=None, init=False, repr=False)
    _mixer: AudioMixer | None = field(default=None, init=False, repr=False)
    _on_factory_set: Callable[[], None] | None = field(default=None, init=False, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        # voice_runtime's Quick Example sets stt_factory after the stream started: the
        # transport must start the STT then, not only at stream start.
        if name == "stt_factory" and value is not None:
            hook = getattr(self, "_on_factory_set", None)
            if hook is not None:
                hook()

    # --- the loop ---
    def set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the transport runs on (register_voice_websocket sets it too)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _call_on_loop(self, func: Callable[..., object], *args: Any) -> None:
        """Run `func` on the loop: now when already there, else scheduled thread-safely."""
        loop = self._loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            func(*args)  # no loop yet: nothing can race with us on the queues
        else:
            loop.call_soon_threadsafe(func, *args)

    def _run_on_loop(self, coro: Coroutine[Any, Any, Any], timeout_s: float | None) -> Any:
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()
            return None
        if _running_loop() is loop:
            coro.close()
            raise RuntimeError("a blocking VoiceSession method was called on its event loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)

    # --- audio I/O ---
    def put_inbound(self, data: bytes) -> None:
        """Caller audio in (the transport calls it); the oldest frame goes when full."""
        self._call_on_loop(self._put_inbound_now, data)

    def _put_inbound_now(self, data: bytes | None) -> bool:
        """Queue `data`; True when the oldest frame had to go to make room."""
        dropped = self.inbound.full()
        if dropped:
            self.inbound.get_nowait()
            self.inbound_dropped += 1
        self.inbound.put_nowait(data)
        return dropped

    def clear_inbound(self) -> None:
        """Drop caller audio nobody has read yet (e.g. what was said over a prompt)."""
        self._call_on_loop(_drain, self.inbound)

    def put_outbound_sync(self, data: bytes) -> None:
        """Agent μ-law audio out, from any thread; dropped once the call has ended."""
        if self._disconnected.is_set():
            return
        self._call_on_loop(self._outbound.put_nowait, bytes(data))

    async def put_outbound(self, data: bytes) -> None:
        if not self._disconnected.is_set():
            self._outbound.put_nowait(bytes(data))

    async def get_outbound(self) -> bytes:
        """The next agent audio chunk. A mark behind it becomes `get_pending_mark`'s only
        once the audio before it has been taken, so a mark cannot overtake audio."""
        while True:
            item = await self._outbound.get()
            if isinstance(item, bytes):
                return item
            self._marks_ready.put_nowait(item)

    @property
    def outbound_pending(self) -> int:
        """Audio chunks and marks queued here, not yet handed to the call."""
        return self._outbound.qsize() + self._marks_ready.qsize()

    async def _next_outbound(self) -> bytes | _Mark:
        return await self._outbound.get()

    # --- marks ---
    def send_mark_and_wait(self, name: str, timeout: float | None = 10.0) -> bool:
        """Queue a mark behind the audio queued so far; block until it has played.

        True when the platform played everything before it; False when it was cleared
        (barge-in), timed out, or the call ended — at once if no call is live.
        """
        if not self._connected.is_set() or self._disconnected.is_set():
            return False
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("send_mark_and_wait blocks: call it from a consumer thread")
        mark = _Mark(name)
        self._call_on_loop(self._queue_mark, mark)
        try:
            return mark.done.result(timeout)
        except concurrent.futures.TimeoutError:
            mark.release(False)
            return False

    def _queue_mark(self, mark: _Mark) -> None:
        if self._disconnected.is_set() or not self._connected.is_set():
            mark.release(False)
            return
        with self._lock:
            self._marks.append(mark)
        self._outbound.put_nowait(mark)

    async def get_pending_mark(self) -> str:
        """The next mark to send (for a transport that reads the queues itself)."""
        return (await self._marks_ready.get()).name

    def signal_mark_received(self, name: str) -> None:
        """The platform echoed mark `name`: release the oldest wait for it."""
        self._release_mark(name, True)

    def _release_mark(self, name: str | _Mark, played: bool) -> None:
        with self._lock:
            for mark in self._marks:
                if mark is name or mark.name == name:
                    self._marks.remove(mark)
                    break
            else:
                return
        mark.release(played)

    def _release_all_marks(self) -> None:
        with self._lock:
            marks, self._marks = list(self._marks), deque()
        for mark in marks:
            mark.release(False)

    # --- transport intents ---
    def request_disconnect(self, generation: int | None = None) -> None:
        """Hang up the live call; with `generation`, only if it is still that call."""
        self._call_on_loop(self._disconnect_now, generation)

    def _disconnect_now(self, generation: int | None) -> None:
        handle = self._handle
        if handle is None:
            return
        if generation is not None and generation != self.generation:
            handle.record("runtime", "stale_disconnect_ignored", {"generation": generation})
            return
        handle.record("runtime", "disconnect_requested", {"generation": self.generation})
        _spawn(handle.hangup("session_disconnect"))

    def request_clear_buffer(self) -> None:
        """Barge-in: drop agent audio queued here and at the platform."""
        self._call_on_loop(self._clear_now)

    def _clear_now(self) -> None:
        for item in _drain(self._outbound) + _drain(self._marks_ready):
            if isinstance(item, _Mark):
                self._release_mark(item, False)
        if self._mixer is not None:
            self._mixer.clear_agent()
        if self._handle is not None:
            self._handle.clear_nowait()

    # --- lifecycle ---
    def signal_ws_connected(self, stream_sid: str | None = None) -> None:
        """The stream started (the transport calls it)."""
        if stream_sid is not None:
            self.stream_sid = stream_sid
        self._disconnected.clear()
        self._connected.set()

    def wait_for_ws_connect(self, timeout: float = 30.0) -> None:
        """Block until a call's stream has started; CallNotAnsweredError on timeout."""
        if not self._connected.wait(timeout):
            raise CallNotAnsweredError(round(timeout * 1000))

    def signal_disconnected(self) -> None:
        """The call ended (the transport calls it): every wait returns, STT input ends."""
        self._connected.clear()
        self._disconnected.set()
        self._release_all_marks()
        self._call_on_loop(self._put_inbound_now, None)  # ends an STT's feed loop
        with self._lock:
            watchers, self._hangup_watchers = self._hangup_watchers, []
        for watcher in watchers:
            watcher()
        if self.on_disconnected is not None:
            self.on_disconnected()

    @property
    def is_disconnected(self) -> bool:
        return self._disconnected.is_set()

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def _watch_hangup(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call `watcher` once when the call ends (at once if it already has);
        returns what un-registers it."""
        with self._lock:
            if not self._disconnected.is_set():
                self._hangup_watchers.append(watcher)
                return functools.partial(self._unwatch_hangup, watcher)
        watcher()
        return lambda: None

    def _unwatch_hangup(self, watcher: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._hangup_watchers.remove(watcher)

    def reset(self) -> None:
        """Forget everything for the next call: stop the STT, drain every queue,
        release every mark wait, clear the connection flags and intents."""
        stt, self._stt = self._stt, None
        if stt is not None:
            with contextlib.suppress(Exception):  # a failing stop must not block reuse
                if self._loop is not None and _running_loop() is self._loop:
                    _spawn(stt.stop())
                else:
                    self._run_on_loop(stt.stop(), STT_STOP_TIMEOUT_S)
        if self._loop is not None and self._loop.is_running() and _running_loop() is not self._loop:
            self._run_on_loop(self._drain_all(), None)
        else:
            self._drain_now()
        self._release_all_marks()
        self._connected.clear()
        self._disconnected.clear()
        self.inbound_dropped = 0

    async def _drain_all(self) -> None:
        self._drain_now()

    def _drain_now(self) -> None:
        _drain(self.inbound)
        _drain(self._outbound)
        _drain(self._marks_ready)

    # --- monitoring ---
    def set_mixer(self, mixer: AudioMixer | None) -> None:
        self._mixer = mixer

    def tap_caller(self, frame: bytes) -> None:
        if self._mixer is not None:
            self._mixer.add_caller(frame)

    def tap_agent(self, frame: bytes) -> None:
        if self._mixer is not None:
            self._mixer.add_agent(frame)

    @property
    def stt(self) -> SttProvider | None:
        """The STT the transport started for the live call, if any."""
        return self._stt


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


_TASKS: set[asyncio.Task[Any]] = set()  # keeps fire-and-forget tasks alive until done


def _spawn(coro: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
