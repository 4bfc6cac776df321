"""The replay phone: delivers the recorded inbound facts at their recorded times.

It owns time (no autojump): before each fact it fires the runtime's timers that are
due, then delivers the fact. Two things happening in the same millisecond keep their
recorded order: a timer due at the fact's millisecond fires first only while the
replayed log is still short of the fact's recorded seq (the recording says something
happened before the fact, and at that millisecond only a timer can have done it).
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Callable
from typing import Any

import anyio

from fsm_voice.clock import VirtualClock
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.facts import Fact
from fsm_voice.replay.providers import RecordedRecognizer
from fsm_voice.transports.socket import MemorySocket

__all__ = ["CountingLog", "ReplayClock", "ReplayPhone"]

_MAX_IDLE = 10_000  # idle loop turns after the close before giving up
_GRACE_MS = 60_000  # after the recording's end: time for a changed machine to finish


_MAX_HELD = 100_000  # loop turns the clock waits for outside work before giving up


class ReplayClock(VirtualClock):
    """The virtual clock, moved only by the replay phone; it waits for held work.

    `hold_while(busy)`: time does not move while `busy()` (an utterance is out to the
    decoder), even when every task is blocked: its result must come out at this ms.
    """

    def __init__(self, start_ms: int = 0, wall_start_ms: int = 0) -> None:
        super().__init__(start_ms, wall_start_ms)
        self._holds: list[Callable[[], bool]] = []

    def hold_while(self, busy: Callable[[], bool]) -> None:
        self._holds.append(busy)

    async def settle(self) -> None:
        await super().settle()
        turns = 0
        while any(busy() for busy in self._holds):
            turns += 1
            if turns > _MAX_HELD:
                raise RuntimeError("replay: held work never finished (a decode hung?)")
            await anyio.lowlevel.checkpoint()
            await super().settle()

    async def run_to(self, t_ms: int, ready: Callable[[], bool]) -> None:
        """Fire the timers due before `t_ms`, and those due at it while not `ready()`."""
        while True:
            await self.settle()
            due = self.next_due_ms()
            if due is None or due > t_ms or (due == t_ms and ready()):
                break
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.due_ms)
            timer.callback()
        self._now = max(self._now, t_ms)


class CountingLog(MemoryEventLog):
    """The replay's log; counts events so the phone knows how far the call has got."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def append(self, event: EventRecord) -> None:
        self.count += 1
        super().append(event)


class ReplayPhone:
    def __init__(
        self,
        socket: MemorySocket,
        clock: ReplayClock,
        log: CountingLog,
        recognizer: RecordedRecognizer | None,
        finished: anyio.Event,
    ) -> None:
        self._socket = socket
        self._clock = clock
        self._log = log
        self._recognizer = recognizer
        self._finished = finished
        self._sequence = 0
        self._stream_sid = ""
        self._start_ms = 0

    async def run(self, facts: list[Fact], end_ms: int) -> None:
        gate = _gates(facts)
        previous: Fact | None = None
        for fact, seq in zip(facts, gate, strict=True):
            if not _same_burst(previous, fact):
                await self._clock.run_to(fact.t_ms, self._reached(seq))
            await self._deliver(fact)
            previous = fact
        await self._drain(end_ms + _GRACE_MS)

    def _reached(self, seq: int | None) -> Callable[[], bool]:
        """Has the replayed log got as far as the fact's place in the recording?"""
        if seq is None:
            return _never  # caller frames: after everything else in their millisecond
        return lambda: self._log.count >= seq

    async def _deliver(self, fact: Fact) -> None:
        if fact.kind == "stt":
            assert fact.event is not None
            if self._recognizer is not None:  # None: a real recogniser hears the frames
                self._recognizer.emit(fact.event)
        elif fact.kind == "close":
            await self._close(fact.code)
        elif fact.kind == "media":
            media = {
                "track": "inbound",
                "chunk": str(fact.frame + 1),
                "timestamp": str(fact.t_ms - self._start_ms),
                "payload": base64.b64encode(fact.payload).decode("ascii"),
            }
            await self._send({"event": "media", "media": media})
        else:
            assert fact.message is not None
            if fact.message["event"] == "start":
                self._stream_sid = fact.message["start"]["streamSid"]
                self._start_ms = fact.t_ms
            await self._send(dict(fact.message))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._socket.close_code is not None:
            return  # the call is over for the platform: later facts have nowhere to go
        if message["event"] != "connected":  # numbered and addressed as Twilio does
            self._sequence += 1
            message = {"event": message["event"], "sequenceNumber": str(self._sequence)} | message
            message["streamSid"] = self._stream_sid
        try:
            await self._socket.send(json.dumps(message, separators=(",", ":")))
        except SocketClosed:
            return

    async def _close(self, code: int) -> None:
        if code == 1006:  # the recorded connection vanished without a close frame
            await self._socket.drop()
        else:
            await self._socket.close(code)

    async def _drain(self, limit_ms: int) -> None:
        """Let the call run to its end; close it if it outlives the recording by far."""
        idle = 0
        while not self._finished.is_set():
            await self._clock.settle()
            due = self._clock.next_due_ms()
            if self._finished.is_set():
                return
            if due is None or due > limit_ms:
                if self._socket.close_code is not None and due is None:
                    idle += 1  # closed, nothing scheduled, yet not finished: a hung call
                    if idle > _MAX_IDLE:
                        raise RuntimeError("replay: the call never finished after its close")
                    await anyio.lowlevel.checkpoint()
                    continue
                await self._socket.close(1000, "replay: the recording ended")
                limit_ms = max(limit_ms, due or 0)
                continue
            await self._clock.run_to(due, _never)


def _gates(facts: list[Fact]) -> list[int | None]:
    """The seq each fact waits for: its own, or (a caller frame) the next one's that ms."""
    gates: list[int | None] = [None] * len(facts)
    following: tuple[int, int | None] = (-1, None)
    for i in range(len(facts) - 1, -1, -1):
        fact = facts[i]
        if fact.seq is not None:
            following = (fact.t_ms, fact.seq)
        gates[i] = (
            fact.seq
            if fact.seq is not None
            else (following[1] if following[0] == fact.t_ms else None)
        )
    return gates


def _same_burst(previous: Fact | None, fact: Fact) -> bool:
    """Twilio messages of one millisecond go out back to back, as the platform sent them.

    (A stop and the close after it, or every mark a clear echoed: the runtime finds
    them queued together, so nothing else runs between them.)
    """
    wire = ("message", "close")
    return (
        previous is not None
        and previous.kind in wire
        and fact.kind in wire
        and previous.t_ms == fact.t_ms
    )


def _never() -> bool:
    return False
