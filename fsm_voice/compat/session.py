"""`VoiceSession`: voice_runtime's thread-and-queue API, bridged onto the engine.

Consumer threads (tool code, TTS) call the sync methods; every one is safe from any
thread: the work is handed to the session's loop (`call_soon_threadsafe` /
`run_coroutine_threadsafe`).

The transport side is a documented protocol (`fsm_voice.compat.bridge` uses nothing
else): `attach_call(link)` when a call starts and `detach_call()` when it is over,
`put_inbound`/`tap_caller` for each caller frame, `next_outbound()` for the agent's
audio and marks in the order they were queued, `signal_ws_connected`,
`signal_mark_received`/`signal_mark_dropped` and `signal_disconnected`. A transport
may also read the seed's way, `get_outbound()` and `get_pending_mark()`.

Differences from voice_runtime, on purpose (its known defects):
- agent audio and marks share ONE ordered queue (`outbound`), so a mark never
  overtakes the audio queued before it (the engine then echoes it only once that
  audio has played);
- a mark wait after hang-up (or before any call) returns False at once;
- `request_disconnect(generation)` ignores a generation that is not the live call's;
- `reset()` stops the STT, drains every queue and releases every mark wait;
- `request_clear_buffer()` drops the audio still queued here, not only the platform's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsm_voice.clock import IdSource, RandomIds
from fsm_voice.compat.protocols import SttProvider
from fsm_voice.compat.session_parts import (
    CallLink,
    LoopBound,
    MarkWaits,
    QueuedMark,
    drain,
    drain_async,
    running_loop,
    spawn,
)
from fsm_voice.errors import CallHangupError, CallNotAnsweredError, MissingStreamUrlError
from fsm_voice.eventlog.kind_names import KindName

if TYPE_CHECKING:
    from fsm_voice.compat.mixer import AudioMixer
    from fsm_voice.eventlog.records import Source

__all__ = [
    "CallHangupError",
    "CallLink",
    "CallNotAnsweredError",
    "MissingStreamUrlError",
    "QueuedMark",
    "VoiceSession",
]

log = logging.getLogger(__name__)

MAX_INBOUND_FRAMES = 3_000  # 60 s of caller audio waiting for an STT before the oldest go
STT_STOP_TIMEOUT_S = 5.0  # reset() waits this long for the STT to stop
CLEAR_TIMEOUT_S = 5.0  # clear_inbound() waits this long for the loop to drain the queue


@dataclass(eq=False)
class VoiceSession(LoopBound):
    """One call at a time: queues, marks and transport intents (subclass it freely)."""

    call_sid: str | None = None
    stream_sid: str | None = None
    caller_number: str | None = None
    inbound: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(MAX_INBOUND_FRAMES), repr=False
    )
    # Agent audio and marks, in the order they were queued (see QueuedMark).
    outbound: asyncio.Queue[bytes | QueuedMark] = field(default_factory=asyncio.Queue, repr=False)
    stt: SttProvider | None = field(default=None, repr=False)  # the live call's STT
    stt_factory: Callable[[], SttProvider] | None = field(default=None, repr=False)
    stt_secondary_factory: Callable[[], SttProvider] | None = field(default=None, repr=False)
    on_stt_ready: Callable[[SttProvider], None] | None = field(default=None, repr=False)
    on_disconnected: Callable[[], None] | None = field(default=None, repr=False)
    generation: int = 0  # +1 for every call this session serves; see request_disconnect
    mark_ids: IdSource = field(default_factory=RandomIds, repr=False)  # wire mark suffixes
    inbound_dropped: int = field(default=0, init=False)  # caller frames nobody read in time
    _link: CallLink | None = field(default=None, init=False, repr=False)
    _marks_ready: asyncio.Queue[QueuedMark] = field(
        default_factory=asyncio.Queue, init=False, repr=False
    )
    _waits: MarkWaits = field(init=False, repr=False)  # the marks threads wait on
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _connected: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _disconnected: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _hangup_watchers: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)
    _mixer: AudioMixer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._waits = MarkWaits(self.mark_ids)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        # voice_runtime's Quick Example sets stt_factory after the stream started: the
        # transport must start the STT then, not only at stream start.
        if name == "stt_factory" and value is not None:
            link = getattr(self, "_link", None)
            if link is not None:
                link.stt_factory_set()

    # --- audio I/O ---
    def put_inbound(self, data: bytes | None) -> None:
        """Caller audio in (the transport calls it); the oldest frame goes when full."""
        self._call_on_loop(self._put_inbound_now, data)

    def _put_inbound_now(self, data: bytes | None) -> None:
        if self.inbound.full():
            self.inbound.get_nowait()
            self.inbound_dropped += 1
        self.inbound.put_nowait(data)

    def clear_inbound(self) -> None:
        """Drop caller audio nobody has read yet (e.g. what was said over a prompt).

        From a consumer thread it returns once the queue is empty, caller frames put
        before the call included."""
        if not self._off_loop():
            drain(self.inbound)
            return
        try:
            self._run_on_loop(drain_async(self.inbound), CLEAR_TIMEOUT_S)
        except TimeoutError:  # the loop is stuck: nothing reads the queue either
            log.warning("clear_inbound: the loop did not drain the queue in %s s", CLEAR_TIMEOUT_S)

    def put_outbound_sync(self, data: bytes) -> None:
        """Agent μ-law audio out, from any thread; dropped once the call has ended."""
        if self._disconnected.is_set():
            return
        self._call_on_loop(self.outbound.put_nowait, bytes(data))

    async def put_outbound(self, data: bytes) -> None:
        if not self._disconnected.is_set():
            self.outbound.put_nowait(bytes(data))

    async def next_outbound(self) -> bytes | str:
        """The next agent audio chunk (bytes) or wire mark name (str), in queued order."""
        item = await self.outbound.get()
        return item.name if isinstance(item, QueuedMark) else bytes(item)

    async def get_outbound(self) -> bytes:
        """The next agent audio chunk. A mark behind it becomes `get_pending_mark`'s only
        once the audio before it has been taken, so a mark cannot overtake audio."""
        while True:
            item = await self.outbound.get()
            if not isinstance(item, QueuedMark):
                return bytes(item)
            self._marks_ready.put_nowait(item)

    async def get_pending_mark(self) -> str:
        """The next mark's wire name (for a transport that reads the queues itself)."""
        return (await self._marks_ready.get()).name

    @property
    def outbound_pending(self) -> int:
        """Audio chunks and marks queued here, not yet handed to the call."""
        return self.outbound.qsize() + self._marks_ready.qsize()

    # --- marks ---
    def send_mark_and_wait(self, mark_name: str, timeout: float | None = 10.0) -> bool:
        """Queue a mark behind the audio queued so far; block until it has played.

        On the wire the mark is `mark_name__` + 8 hex digits, unique among the waits.
        True when the platform played everything before it; False when it was cleared
        (barge-in) or the call ended — at once if no call is live. TimeoutError when
        the call is still live after `timeout` seconds, as the seed raised.
        """
        if not self._connected.is_set() or self._disconnected.is_set():
            return False
        if self._loop is not None and running_loop() is self._loop:
            raise RuntimeError("send_mark_and_wait blocks: call it from a consumer thread")
        mark = self._waits.new(mark_name)
        self._call_on_loop(self._queue_mark, mark)
        try:
            return mark.done.result(timeout)
        except TimeoutError:
            if not self._release_mark(mark.name, False) or self.is_disconnected:
                return mark.done.result()  # released as the wait ended, or the call did
            raise TimeoutError(
                f"mark {mark_name!r} ({mark.name!r}) was not played within {timeout} s"
            ) from None

    def _queue_mark(self, mark: QueuedMark) -> None:
        if self._disconnected.is_set() or not self._connected.is_set():
            self._release_mark(mark.name, False)
            return
        self.outbound.put_nowait(mark)

    def signal_mark_received(self, mark_name: str) -> None:
        """The platform echoed mark `mark_name` (its wire name): its wait returns True."""
        self._release_mark(mark_name, True)

    def signal_mark_dropped(self, mark_name: str) -> None:
        """Mark `mark_name` will never be echoed (cleared, timed out): its wait returns False."""
        self._release_mark(mark_name, False)

    def _release_mark(self, name: str, played: bool) -> bool:
        return self._waits.release(name, played)

    def _release_all_marks(self) -> None:
        self._waits.release_all()

    def _drop_queued(self) -> None:
        """Drop the audio and marks still queued here; their mark waits return False."""
        for item in drain(self.outbound) + drain(self._marks_ready):
            if isinstance(item, QueuedMark):
                self._release_mark(item.name, False)

    # --- transport intents ---
    def request_disconnect(self, generation: int | None = None) -> None:
        """Hang up the live call; with `generation`, only if it is still that call."""
        self._call_on_loop(self._disconnect_now, generation)

    def _disconnect_now(self, generation: int | None) -> None:
        link = self._link
        if link is None:
            return
        if generation is not None and generation != self.generation:
            link.record("runtime", "stale_disconnect_ignored", {"generation": generation})
            return
        link.record("runtime", "disconnect_requested", {"generation": self.generation})
        link.hang_up()

    def request_clear_buffer(self) -> None:
        """Barge-in: drop agent audio queued here and at the platform."""
        self._call_on_loop(self._clear_now)

    def _clear_now(self) -> None:
        self._drop_queued()
        mixer = self._mixer
        if mixer is not None:
            mixer.clear_agent()
        if self._link is not None:
            self._link.clear()

    # --- the live call (the transport's side) ---
    def attach_call(self, link: CallLink) -> bool:
        """A call starts on this session (on the loop); False if it serves another one.

        The last call's leftover caller audio (and its end-of-input mark) is dropped."""
        if self._link is not None:
            return False
        self._link = link
        self.generation += 1
        drain(self.inbound)
        self.inbound_dropped = 0
        return True

    def detach_call(self) -> None:
        """The attached call is over: what is still queued for it is dropped."""
        self._drop_queued()
        self._link = None

    def record(self, source: Source, kind: KindName, data: dict[str, Any]) -> None:
        """Append an event to the live call's log (providers use it); no call, no event."""
        link = self._link
        if link is not None:
            link.record(source, kind, data)

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
        """The call ended (the transport calls it): every wait returns, STT input ends.

        Idempotent: a second signal for the same call does nothing (`on_disconnected`
        fires once). `is_disconnected` is true before any mark wait is released."""
        with self._lock:
            if self._disconnected.is_set():
                return
            self._disconnected.set()
            self._connected.clear()
            watchers, self._hangup_watchers = self._hangup_watchers, []
        self._release_all_marks()
        self._call_on_loop(self._put_inbound_now, None)  # ends an STT's feed loop
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

    def watch_hangup(self, watcher: Callable[[], None]) -> Callable[[], None]:
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
        release every mark wait, clear the connection flags, stream and call sids."""
        stt, self.stt = self.stt, None
        if stt is not None:
            with contextlib.suppress(Exception):  # a failing stop must not block reuse
                if self._loop is not None and running_loop() is self._loop:
                    spawn(stt.stop())
                else:
                    self._run_on_loop(stt.stop(), STT_STOP_TIMEOUT_S)
        if self._off_loop():
            self._run_on_loop(self._drain_all(), None)
        else:
            self._drain_now()
        self._release_all_marks()  # while is_disconnected still says what it said
        self._connected.clear()
        self._disconnected.clear()
        self.stream_sid = None
        self.call_sid = None
        self.inbound_dropped = 0

    async def _drain_all(self) -> None:
        self._drain_now()

    def _drain_now(self) -> None:
        drain(self.inbound)
        self._drop_queued()

    # --- monitoring ---
    def set_mixer(self, mixer: AudioMixer | None) -> None:
        self._mixer = mixer

    def tap_caller(self, frame: bytes) -> None:
        if self._mixer is not None:
            self._mixer.write_caller(frame)

    def tap_agent(self, chunk: bytes) -> None:
        if self._mixer is not None:
            self._mixer.write_agent(chunk)
