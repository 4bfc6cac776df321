"""What a call holds open until it ends: the machine's timers and the agent's mark waits.

Both are keyed (timers by name, waits by mark id), both are settled by effects of the
call machine, and both are settled all at once when the call ends: the timers
cancelled, every wait released with `MarkOutcome.CALL_ENDED`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fsm_voice.call import effects as fx
from fsm_voice.call import events as ev
from fsm_voice.call.handle import MarkOutcome
from fsm_voice.clock import Clock, TimerHandle


class CallTimers:
    """The call machine's named timers, on the call clock.

    Starting a name again replaces its timer; a timer feeds its event to `dispatch`
    only if it is still the live one for its name when it fires."""

    def __init__(self, clock: Clock, dispatch: Callable[[ev.CallEvent], None]) -> None:
        self._clock = clock
        self._dispatch = dispatch
        self._timers: dict[str, TimerHandle] = {}

    def start(self, effect: fx.StartTimer) -> None:
        old = self._timers.pop(effect.name, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            if self._timers.get(effect.name) is handle:
                del self._timers[effect.name]
                self._dispatch(effect.fire)

        handle = self._clock.call_later(effect.ms, fire)
        self._timers[effect.name] = handle

    def cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class MarkWaiters:
    """The agent's waits on its marks, by mark id; each resolves once, with the outcome."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: dict[int, asyncio.Future[MarkOutcome]] = {}

    def add(self, mark_id: int) -> asyncio.Future[MarkOutcome]:
        waiter: asyncio.Future[MarkOutcome] = self._loop.create_future()
        self._waiters[mark_id] = waiter
        return waiter

    def release(self, mark_id: int, outcome: str) -> None:
        waiter = self._waiters.pop(mark_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(MarkOutcome(outcome))

    def release_all(self, outcome: MarkOutcome) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(outcome)
        self._waiters.clear()
