"""What a call refuses: a call past its limits (a `start` without its token is
`stream_guard`'s).

The limits live outside `CallRuntime` so the runtime only asks and acts: they are
timers on the call's clock (never per-frame work; the read loop only stamps the time
of each message).
"""

from __future__ import annotations

from collections.abc import Callable

from fsm_voice.call.config import CallConfig
from fsm_voice.clock import Clock, TimerHandle

__all__ = ["LimitWatch"]

# (limit name, its value in ms, the call's end reason)
OnLimit = Callable[[str, int, str], None]


class LimitWatch:
    """The maximum call duration and the idle-stream timeout of one call."""

    def __init__(self, clock: Clock, config: CallConfig, on_limit: OnLimit) -> None:
        self._clock = clock
        self._max_call_ms = config.max_call_ms
        self._idle_ms = config.idle_stream_ms
        self._on_limit = on_limit
        self._timers: dict[str, TimerHandle] = {}
        self.last_inbound_ms = 0  # stamped by the read loop for each message

    def start(self) -> None:
        if self._max_call_ms > 0:
            self._timers["max_call"] = self._clock.call_later(self._max_call_ms, self._too_long)
        if self._idle_ms > 0:
            self.last_inbound_ms = self._clock.now_ms()
            self._timers["idle"] = self._clock.call_later(self._idle_ms, self._check_idle)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _too_long(self) -> None:
        self._timers.pop("max_call", None)
        self._on_limit("max_call_ms", self._max_call_ms, "max_call_duration")

    def _check_idle(self) -> None:
        # One timer, re-armed for the time still left, instead of one reset per frame.
        quiet_ms = self._clock.now_ms() - self.last_inbound_ms
        if quiet_ms >= self._idle_ms:
            self._timers.pop("idle", None)
            self._on_limit("idle_stream_ms", self._idle_ms, "idle_timeout")
        else:
            left = self._idle_ms - quiet_ms
            self._timers["idle"] = self._clock.call_later(left, self._check_idle)
