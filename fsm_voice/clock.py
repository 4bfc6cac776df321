"""Time and ids come from here, and only from here (DESIGN.md: "The Clock").

`SystemClock` is real time; `VirtualClock` is time that moves only when told to (tests,
replay). Both give integer milliseconds, sleep, and timers whose callbacks run on the
event loop. `IdSource` makes ids (random in production, counted in tests and replay).
This is the one module allowed to touch `time`, `asyncio.sleep`, `uuid4` and `random`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Clock",
    "CountingIds",
    "IdSource",
    "RandomIds",
    "SystemClock",
    "TimerHandle",
    "VirtualClock",
    "cpu_seconds",
    "perf_ms",
]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Where "now", sleeping and timers come from."""

    def now_ms(self) -> int:
        """Milliseconds on a monotonic scale (only differences mean anything)."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch (for humans reading the log)."""
        ...

    async def sleep(self, ms: float) -> None: ...

    def call_later(self, ms: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` on the event loop after `ms` milliseconds."""
        ...


class SystemClock:
    """Real time: the event loop's monotonic clock and the system's wall clock."""

    def now_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, ms: float) -> None:
        await asyncio.sleep(max(ms, 0) / 1000)

    def call_later(self, ms: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(ms, 0) / 1000, callback)


def perf_ms() -> float:
    """A high-resolution monotonic reading for benchmarks (never for decisions)."""
    return time.perf_counter_ns() / 1_000_000


def cpu_seconds() -> float:
    """CPU time of this process, for benchmarks."""
    return time.process_time()


@dataclass(order=True)
class _VirtualTimer:
    due_ms: int
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Time that moves only through `advance`/`run_until`/`autojump`.

    Timers due at the same millisecond fire in the order they were set, so a run is
    the same every time. `autojump()` behaves like trio's MockClock with an autojump
    threshold of zero: whenever every other task is blocked, time jumps to the next
    timer. Only asyncio is supported (the same loop uvicorn runs on).
    """

    def __init__(self, start_ms: int = 0, wall_start_ms: int = 1_767_225_600_000) -> None:
        self._now = start_ms
        self._wall_offset = wall_start_ms - start_ms
        self._timers: list[_VirtualTimer] = []
        self._order = itertools.count()

    def now_ms(self) -> int:
        return self._now

    def wall_ms(self) -> int:
        return self._now + self._wall_offset

    def call_later(self, ms: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _VirtualTimer(self._now + max(int(ms), 0), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, ms: float) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        handle = self.call_later(ms, wake)
        try:
            await done
        finally:
            handle.cancel()

    def next_due_ms(self) -> int | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].due_ms if self._timers else None

    async def settle(self) -> None:
        """Return once every other task on the loop is blocked on something."""
        await _wait_all_tasks_blocked()

    async def run_until(self, t_ms: int) -> None:
        """Fire every timer due up to `t_ms`, in order, letting the loop settle after each."""
        await self.settle()
        while (due := self.next_due_ms()) is not None and due <= t_ms:
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.due_ms)
            timer.callback()
            await self.settle()
        self._now = max(self._now, t_ms)

    async def advance(self, ms: int) -> None:
        await self.run_until(self._now + ms)

    async def autojump(self, limit_ms: int | None = None) -> None:
        """Run forever (cancel it to stop): jump to the next timer whenever all is idle.

        With `limit_ms`, stop when the next timer lies beyond it.
        """
        while True:
            await self.settle()
            due = self.next_due_ms()
            if due is None:
                # Nothing scheduled: wait for something to schedule a timer.
                await asyncio.sleep(0)
                continue
            if limit_ms is not None and due > limit_ms:
                return
            await self.run_until(due)


async def _wait_all_tasks_blocked() -> None:
    # anyio's version polls every 100 ms of real time; this one only yields, so a
    # virtual-clock test runs as fast as the work it does.
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0)
        # Fast path: a task runs only from the loop's ready queue, so an empty one
        # means every other task is waiting (the scan below would say the same).
        # `_ready` is asyncio's own; a loop without it goes straight to the scan.
        if not getattr(loop, "_ready", True):
            return
        for task in asyncio.all_tasks():
            if task is me:
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                break
        else:
            return


class IdSource(Protocol):
    def new_id(self, prefix: str) -> str:
        """A new unique id: `prefix` and 32 hex digits (Twilio's sid shape)."""
        ...

    def jitter(self) -> float:
        """A number in [0, 1) for retry jitter."""
        ...


class RandomIds:
    """Production ids: uuid4 and the system's random numbers."""

    def new_id(self, prefix: str) -> str:
        return prefix + uuid.uuid4().hex

    def jitter(self) -> float:
        return random.random()


class CountingIds:
    """Deterministic ids for tests and replay: prefix + a zero-padded counter."""

    def __init__(self, seed: int = 0) -> None:
        self._counter = itertools.count(1)
        self._random = random.Random(seed)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._counter):032x}"

    def jitter(self) -> float:
        return self._random.random()
