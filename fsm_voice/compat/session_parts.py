"""What `VoiceSession` is made of: the live-call protocol, mark waits, queue helpers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fsm_voice.clock import IdSource
from fsm_voice.eventlog.kind_names import KindName

if TYPE_CHECKING:
    from fsm_voice.eventlog.records import Source

__all__ = ["MARK_SUFFIX_HEX", "CallLink", "LoopBound", "MarkWaits", "QueuedMark"]

MARK_SUFFIX_HEX = 8  # a mark goes on the wire as `label__` + 8 hex digits, as the seed's


class CallLink(Protocol):
    """The live call a transport attaches to a session (`VoiceSession.attach_call`)."""

    def clear(self) -> None:
        """Barge-in: drop the agent audio the platform has not played yet."""

    def hang_up(self) -> None:
        """End the call: the agent hangs up."""

    def record(self, source: Source, kind: KindName, data: dict[str, Any]) -> None:
        """Append an event to the call's log."""

    def stt_factory_set(self) -> None:
        """`stt_factory` was set during the call: start the STT now (any thread)."""


@dataclass(eq=False)
class QueuedMark:
    """A mark in `outbound`, behind the audio queued before it; `name` is its wire name."""

    name: str
    done: concurrent.futures.Future[bool] = field(default_factory=concurrent.futures.Future)

    def release(self, played: bool) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.done.set_result(played)


class MarkWaits:
    """The marks consumer threads wait on, by wire name (unique, so echoes cannot cross)."""

    def __init__(self, ids: IdSource) -> None:
        self._ids = ids
        self._lock = threading.Lock()
        self._marks: dict[str, QueuedMark] = {}

    def new(self, label: str) -> QueuedMark:
        with self._lock:
            while True:  # a clash is next to impossible; checking makes it impossible
                name = f"{label}__{self._ids.new_id('')[-MARK_SUFFIX_HEX:]}"
                if name not in self._marks:
                    break
            mark = self._marks[name] = QueuedMark(name)
        return mark

    def release(self, name: str, played: bool) -> bool:
        """Release the wait for mark `name`; False when nothing waits for it (any more)."""
        with self._lock:
            mark = self._marks.pop(name, None)
        if mark is None:
            return False
        mark.release(played)
        return True

    def release_all(self) -> None:
        with self._lock:
            marks, self._marks = list(self._marks.values()), {}
        for mark in marks:
            mark.release(False)


@dataclass(eq=False)
class LoopBound:
    """Hands work from any thread to the loop the transport runs on."""

    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)

    def set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the transport runs on (register_voice_websocket sets it too)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def _call_on_loop(self, func: Callable[..., object], *args: Any) -> None:
        """Run `func` on the loop: now when already there, else scheduled thread-safely."""
        loop = self._loop
        if loop is None or loop.is_closed() or running_loop() is loop:
            func(*args)  # no loop yet: nothing can race with us on the queues
        else:
            loop.call_soon_threadsafe(func, *args)

    def _run_on_loop(self, coro: Coroutine[Any, Any, Any], timeout_s: float | None) -> Any:
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()
            return None
        if running_loop() is loop:
            coro.close()
            raise RuntimeError("a blocking VoiceSession method was called on its event loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)

    def _off_loop(self) -> bool:
        """A running loop that is not this thread's: blocking on it is safe and needed."""
        loop = self._loop
        return loop is not None and loop.is_running() and running_loop() is not loop


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def drain_async(queue: asyncio.Queue[Any]) -> None:
    drain(queue)


_TASKS: set[asyncio.Task[Any]] = set()  # keeps fire-and-forget tasks alive until done


def spawn(coro: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
