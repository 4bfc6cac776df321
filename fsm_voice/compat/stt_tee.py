"""`SttTee`: voice_runtime's dual-STT adapter (two `SttProvider`s, one audio stream).

The primary gets every frame and drives the call: `on_committed`, `on_recognizing`
and `on_error` set on the tee are the primary's, and its failures propagate. The
secondary sees the identical frames through a bounded queue (drops counted); its
results and failures are logged as `secondary_*` events (see
`fsm_voice.providers.tee.SecondaryReport`) and never reach the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fsm_voice.compat.protocols import EventSink, SttProvider
from fsm_voice.providers.tee import DEFAULT_MAX_QUEUED_FRAMES, SecondaryReport

__all__ = ["SttTee"]


class SttTee:
    def __init__(
        self,
        primary: SttProvider,
        secondary: SttProvider,
        *,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        event_sink: EventSink | None = None,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.max_queued_frames = max_queued_frames
        self.event_sink = event_sink  # the transport points it at the call's log
        self.report = SecondaryReport(type(secondary).__name__)
        self.dropped = 0  # frames the secondary never saw
        self._fan_out: asyncio.Task[None] | None = None
        self._secondary_start: asyncio.Task[None] | None = None

    # The primary's callbacks, so consumer code can treat the tee as the primary.
    @property
    def on_committed(self) -> Callable[[str], None] | None:
        return self.primary.on_committed

    @on_committed.setter
    def on_committed(self, callback: Callable[[str], None] | None) -> None:
        self.primary.on_committed = callback

    @property
    def on_recognizing(self) -> Callable[[str], None] | None:
        return self.primary.on_recognizing

    @on_recognizing.setter
    def on_recognizing(self, callback: Callable[[str], None] | None) -> None:
        self.primary.on_recognizing = callback

    @property
    def on_error(self) -> Callable[[str], None] | None:
        return self.primary.on_error

    @on_error.setter
    def on_error(self, callback: Callable[[str], None] | None) -> None:
        self.primary.on_error = callback

    def set_speaking(self, speaking: bool) -> None:
        self.primary.set_speaking(speaking)
        if not self.report.failed:
            try:
                self.secondary.set_speaking(speaking)
            except Exception as e:
                self.report.fail("set_speaking", e)

    async def start(self, inbound_queue: asyncio.Queue[bytes | None]) -> None:
        report = self.report
        report.record = self.event_sink
        self.secondary.on_committed = report.on_committed_text
        self.secondary.on_recognizing = report.on_recognizing_text
        self.secondary.on_error = report.on_error_text
        primary_queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        secondary_queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.max_queued_frames)
        self._secondary_start = asyncio.ensure_future(self._start_secondary(secondary_queue))
        # Fan out before awaiting the primary: a provider's start may run until stopped.
        self._fan_out = asyncio.ensure_future(
            self._copy_frames(inbound_queue, primary_queue, secondary_queue)
        )
        try:
            await self.primary.start(primary_queue)
        except BaseException:
            await self._stop_secondary()
            raise

    async def _start_secondary(self, queue: asyncio.Queue[bytes | None]) -> None:
        try:
            await self.secondary.start(queue)
        except Exception as e:
            self.report.fail("start", e)

    async def _copy_frames(
        self,
        inbound: asyncio.Queue[bytes | None],
        primary: asyncio.Queue[bytes | None],
        secondary: asyncio.Queue[bytes | None],
    ) -> None:
        while True:
            frame = await inbound.get()
            primary.put_nowait(frame)
            if self.report.failed:
                continue
            try:
                secondary.put_nowait(frame)
            except asyncio.QueueFull:
                self.dropped += 1
            if frame is None:
                return

    async def stop(self) -> None:
        await self._stop_secondary()
        await self.primary.stop()

    async def _stop_secondary(self) -> None:
        for task in (self._fan_out, self._secondary_start):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._secondary_start is None:
            return
        self._fan_out = self._secondary_start = None
        try:
            await self.secondary.stop()
        except Exception as e:
            self.report.fail("stop", e)
        self.report.event("frames_summary", dropped=self.dropped)
