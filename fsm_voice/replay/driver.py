"""The replay phone: delivers the recorded inbound facts at their recorded times.

It owns time (no autojump): before each fact it fires the runtime's timers that are
due, then delivers the fact. Two things happening in the same millisecond keep their
recorded order: a timer due at the fact's millisecond fires first only while the
replayed log is still short of the fact's recorded seq (the recording says something
happened before the fact, and at that millisecond only a timer can have done it).

The phone *is* the runtime's socket, and it is pulled, not pushed: the runtime's
read loop asks `receive()` for the next message, and the phone moves time to the
next fact right there, in the reader's task. When nothing else can run and no timer
is due first (most caller frames) that is a plain assignment: no task switch per
20 ms frame. Once the socket is closed, `run()` plays the facts that are left (the
recogniser's, and time for timers) and lets the call finish.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import json
from collections.abc import Callable

import anyio

from fsm_voice.clock import VirtualClock
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.facts import Fact
from fsm_voice.replay.providers import RecordedRecognizer

__all__ = ["CountingLog", "ReplayClock", "ReplayPhone"]

_MAX_IDLE = 10_000  # idle loop turns after the close before giving up
_GRACE_MS = 60_000  # after the recording's end: time for a changed machine to finish
_MAX_HELD = 100_000  # loop turns the clock waits for held work before giving up


class ReplayClock(VirtualClock):
    """The virtual clock, moved only by the replay phone; it waits for held work.

    `hold_while(busy)`: time does not move while `busy()` (an utterance is out to the
    decoder), even when every task is blocked: its result must come out at this ms.
    """

    def __init__(self, start_ms: int, wall_start_ms: int) -> None:
        super().__init__(start_ms, wall_start_ms)
        self._holds: list[Callable[[], bool]] = []

    def hold_while(self, busy: Callable[[], bool]) -> None:
        self._holds.append(busy)

    def quiet(self) -> bool:
        """Nothing else can run now, nothing is held: settled, without a loop turn.

        asyncio runs a task only from its ready queue, so an empty one means every
        other task is waiting. (`_ready` is asyncio's own; a loop without it — uvloop
        — is never taken as quiet, and `settle()` does the full check.)
        """
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        return ready is not None and not ready and not any(busy() for busy in self._holds)

    async def settle(self) -> None:
        await super().settle()
        turns = 0
        while any(busy() for busy in self._holds):
            turns += 1
            if turns > _MAX_HELD:
                raise RuntimeError("replay: held work never finished (a decode hung?)")
            await anyio.lowlevel.checkpoint()
            await super().settle()

    async def run_to(
        self, t_ms: int, ready: Callable[[], bool], stop: Callable[[], bool] | None = None
    ) -> bool:
        """Fire the timers due before `t_ms`, and those due at it while not `ready()`.

        With `stop`: return False as soon as it holds once all has settled, before
        the next timer (time stays where it got to).
        """
        while True:
            await self.settle()
            if stop is not None and stop():
                return False
            due = self.next_due_ms()
            if due is None or due > t_ms or (due == t_ms and ready()):
                break
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.due_ms)
            timer.callback()
        self._now = max(self._now, t_ms)
        return True

    def jump_to(self, t_ms: int) -> None:
        """Move to `t_ms` at once (the caller knows no timer is due before it)."""
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
    """Twilio's side of a replayed call: a `MessageSocket` the runtime reads from."""

    def __init__(
        self,
        facts: list[Fact],
        end_ms: int,
        clock: ReplayClock,
        log: CountingLog,
        recognizer: RecordedRecognizer | None,
    ) -> None:
        self._facts = facts
        self._gates = _gates(facts)
        self._next = 0  # the next fact to deliver
        self._end_ms = end_ms
        self._clock = clock
        self._log = log
        self._recognizer = recognizer
        self._sequence = 0
        self._stream_sid = ""
        self._sid_json = '""'
        self._start_ms = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._reading = False
        self._handover = anyio.Event()  # the reader is gone: run() delivers the rest

    # --- MessageSocket, for the runtime ---

    async def receive(self) -> str | bytes:
        self._reading = True
        try:
            while True:
                if self.close_code is not None:
                    raise SocketClosed(self.close_code, self.close_reason)
                if self._next == len(self._facts):
                    await self._end_of_recording()
                    continue
                if not await self._reach(self._next, stop=self._is_closed):
                    continue  # closed while time moved: the fact is run()'s now
                fact = self._facts[self._next]
                self._next += 1
                message = self._deliver(fact)
                if message is not None:
                    return message
        except BaseException:
            self._handover.set()  # closed, or the runtime cancelled its reader
            raise
        finally:
            self._reading = False

    async def send(self, text: str | bytes) -> None:
        """What the runtime sends (agent audio, marks, clear) goes nowhere: the log has it."""
        await anyio.lowlevel.checkpoint()  # as a socket's send does
        if self.close_code is not None:
            raise SocketClosed(self.close_code, self.close_reason)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._closed(code, reason)

    def _closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if not self._reading:
            self._handover.set()

    # --- the phone's own task ---

    async def run(self, finished: anyio.Event) -> None:
        """Once the reader is gone: the facts left, then the call's end."""
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await finished.wait()
                if not self._reading:
                    self._handover.set()

            tg.start_soon(watch)
            await self._handover.wait()
            tg.cancel_scope.cancel()
        while self._next < len(self._facts):
            await self._reach(self._next)
            fact = self._facts[self._next]
            self._next += 1
            self._deliver(fact)  # a message has nowhere to go now: dropped
        await self._drain(finished, self._end_ms + _GRACE_MS)

    # --- time ---

    async def _reach(self, index: int, stop: Callable[[], bool] | None = None) -> bool:
        """Move time to fact `index`, firing the timers due first (False: `stop` held)."""
        fact = self._facts[index]
        clock = self._clock
        if index > 0 and _same_burst(self._facts[index - 1], fact):
            await anyio.lowlevel.checkpoint()  # back to back, as the socket had them queued
            return stop is None or not stop()
        due = clock.next_due_ms()
        if (due is None or due > fact.t_ms) and clock.quiet():
            clock.jump_to(fact.t_ms)  # nothing to run first: no loop turn
            return True
        return await clock.run_to(fact.t_ms, self._reached(self._gates[index]), stop)

    def _is_closed(self) -> bool:
        return self.close_code is not None

    def _reached(self, seq: int | None) -> Callable[[], bool]:
        """Has the replayed log got as far as the fact's place in the recording?"""
        if seq is None:
            return _never  # caller frames: after everything else in their millisecond
        return lambda: self._log.count >= seq

    async def _end_of_recording(self) -> None:
        """No fact left, socket open: run the timers a while, then hang up as Twilio."""
        await self._clock.settle()
        if self.close_code is not None:
            return
        due = self._clock.next_due_ms()
        if due is None or due > self._end_ms + _GRACE_MS:
            self._closed(1000, "replay: the recording ended")
            return
        await self._clock.run_to(due, _never, self._is_closed)

    async def _drain(self, finished: anyio.Event, limit_ms: int) -> None:
        """Let the call run to its end; give up if it hangs after the close."""
        idle = 0
        while not finished.is_set():
            await self._clock.settle()
            due = self._clock.next_due_ms()
            if finished.is_set():
                return
            if due is None or due > limit_ms:
                if due is None:
                    idle += 1  # closed, nothing scheduled, yet not finished: a hung call
                    if idle > _MAX_IDLE:
                        raise RuntimeError("replay: the call never finished after its close")
                    await anyio.lowlevel.checkpoint()
                    continue
                limit_ms = due
            await self._clock.run_to(due, _never)

    # --- facts ---

    def _deliver(self, fact: Fact) -> str | None:
        """Deliver `fact`: the message the runtime receives for it, if any."""
        if fact.kind == "stt":
            assert fact.output is not None
            if self._recognizer is not None:  # None: a real recogniser hears the frames
                self._recognizer.emit(fact.output)
            return None
        if fact.kind == "close":
            # 1006: the recorded connection vanished without a close frame.
            self._closed(fact.code, "")
            return None
        if self.close_code is not None:
            return None  # the call is over for the platform: later facts have nowhere to go
        if fact.kind == "media":  # the hot path: formatted as json.dumps would
            self._sequence += 1
            payload = base64.b64encode(fact.payload).decode("ascii")
            return (
                f'{{"event":"media","sequenceNumber":"{self._sequence}","media":'
                f'{{"track":"inbound","chunk":"{fact.frame + 1}",'
                f'"timestamp":"{fact.t_ms - self._start_ms}","payload":"{payload}"}},'
                f'"streamSid":{self._sid_json}}}'
            )
        assert fact.message is not None
        message = dict(fact.message)
        if message["event"] != "connected":  # numbered and addressed as Twilio does
            self._sequence += 1
            if message["event"] == "start":
                self._stream_sid = message["start"]["streamSid"]
                self._sid_json = json.dumps(self._stream_sid)
                self._start_ms = fact.t_ms
            message = {"event": message["event"], "sequenceNumber": str(self._sequence)} | message
            message["streamSid"] = self._stream_sid
        return json.dumps(message, separators=(",", ":"))


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
