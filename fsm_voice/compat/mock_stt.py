"""`MockStt`: voice_runtime's scripted STT (`provider="mock"`), a real `SttProvider`.

Transcripts do not come from audio: `inject(text)` commits `text`, from any thread,
and `on_committed` fires on the event loop `start()` ran on, in injection order. The
caller audio the transport queues is still read (and dropped), as a real recogniser
reads it, so a mock call's queue never fills up and sheds frames. Text injected
before `start()` (or after `stop()`) waits and is committed once the STT runs.

Like the other compat STTs it logs its results with the call (`event_sink`, which
the transport sets) and a consumer callback that raises is an event, not the STT's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fsm_voice.compat.protocols import EventSink, SttProvider
from fsm_voice.eventlog.kind_names import KindName

__all__ = ["MockStt"]


class MockStt:
    """An STT whose transcripts are scripted with `inject()`; audio is read and dropped."""

    def __init__(self, **options: Any) -> None:
        self.on_committed: Callable[[str], None] | None = None
        self.on_recognizing: Callable[[str], None] | None = None
        self.on_error: Callable[[str], None] | None = None
        self.event_sink: EventSink | None = None
        self.committed: list[str] = []  # every transcript delivered, in order
        self._kwargs = dict(options)  # what the factory was given (a mock has no use for it)
        self._lock = threading.Lock()  # guards _loop and _waiting against inject()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[str] = deque()  # injected while not running
        self._reader: asyncio.Task[None] | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The provider options the factory passed (recorded, not used)."""
        return self._kwargs

    @property
    def running(self) -> bool:
        return self._loop is not None

    def inject(self, text: str) -> None:
        """Commit `text` as the caller's next utterance; safe from any thread."""
        with self._lock:
            loop = self._loop
            if loop is None:
                self._waiting.append(text)
                return
        try:
            loop.call_soon_threadsafe(self._commit, text)
        except RuntimeError:  # the loop closed without stop(): keep it for the next start
            with self._lock:
                self._waiting.append(text)

    def set_speaking(self, speaking: bool) -> None:
        """Nothing to do: scripted text has no echo of the agent to hold back."""

    async def start(self, inbound_queue: asyncio.Queue[bytes | None]) -> None:
        """Start reading `inbound_queue` and deliver injected text; returns at once."""
        if self._reader is not None:
            return  # a second start must not add a second reader of the same queue
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
            waiting, self._waiting = list(self._waiting), deque()
        for text in waiting:
            loop.call_soon(self._commit, text)
        self._reader = asyncio.ensure_future(_read_until_end(inbound_queue))

    async def stop(self) -> None:
        """Stop reading audio; text injected from now on waits for the next start."""
        with self._lock:
            self._loop = None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _commit(self, text: str) -> None:
        with self._lock:
            if self._loop is None:  # stopped after this was scheduled: not delivered
                self._waiting.append(text)
                return
        self.committed.append(text)
        self._event("transcript_committed", {"text": text, "confidence": None})
        callback = self.on_committed
        if callback is None:
            return
        try:
            callback(text)
        except Exception as e:  # consumer code: its failure is an event, not the STT's end
            error = f"{type(e).__name__}: {e}"
            self._event("callback_failed", {"callback": "on_committed", "error": error})

    def _event(self, kind: KindName, data: dict[str, Any]) -> None:
        if self.event_sink is not None:
            self.event_sink(kind, data)


async def _read_until_end(queue: asyncio.Queue[bytes | None]) -> None:
    """Take caller frames off the queue, as a recogniser would, until end-of-input."""
    while await queue.get() is not None:
        pass


if TYPE_CHECKING:
    _provider: SttProvider = MockStt()
