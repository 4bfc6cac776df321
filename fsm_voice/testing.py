"""Fakes and harnesses for testing code built on fsm_voice (shipped for users too).

`in_process_call` wires one `CallRuntime` to a `PhoneSimulator` through an in-memory
socket on a `VirtualClock` that jumps whenever everything is idle: a 60-second call
runs in milliseconds, and the same inputs give the same event log every time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from fsm_voice.call.config import CallConfig
from fsm_voice.call.runtime import Agent, CallRuntime
from fsm_voice.call.socket import MemorySocket, memory_socket_pair
from fsm_voice.clock import CountingIds, IdSource, VirtualClock
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.twilio.media_streams import MEDIA_STREAMS

__all__ = ["InProcessCall", "in_process_call"]


@dataclass
class InProcessCall:
    sim: PhoneSimulator
    runtime: CallRuntime
    clock: VirtualClock
    log: EventLog
    phone_socket: MemorySocket  # send raw (even malformed) messages as "Twilio"

    async def wait_ended(self) -> str:
        return await self.runtime.handle.wait_ended()


@contextlib.asynccontextmanager
async def in_process_call(
    agent: Agent | None = None,
    *,
    config: CallConfig | None = None,
    clock: VirtualClock | None = None,
    log: EventLog | None = None,
    ids: IdSource | None = None,
    custom_parameters: dict[str, str] | None = None,
    start: bool = True,
) -> AsyncIterator[InProcessCall]:
    """One call, in process. Leaving the block hangs up (if needed) and ends the call.

    With `start=False` the simulator is not entered: the test speaks raw protocol
    through `phone_socket`.
    """
    clock = clock or VirtualClock()
    log = log or MemoryEventLog()
    ids = ids or CountingIds()
    server_end, phone_end = memory_socket_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.autojump)
        runtime = CallRuntime(
            server_end,
            wire=MEDIA_STREAMS,
            call_id=ids.new_id("FV"),
            clock=clock,
            log=log,
            config=config,
            agent=agent,
        )
        tg.start_soon(runtime.run)
        sim = PhoneSimulator(phone_end, clock, ids, custom_parameters=custom_parameters)
        call = InProcessCall(sim, runtime, clock, log, phone_end)
        if start:
            async with sim:
                yield call
        else:
            yield call
            await phone_end.close()
        await runtime.finished.wait()
        tg.cancel_scope.cancel()
