"""`AgentTask`: the agent's life inside one call.

The agent is user code, run as one task of the call once the stream has connected.
Whatever it does becomes an event for the call machine: raising is a fatal error of
the call, returning while the call is live hangs up. When the call ends first, the
agent gets a grace period (`agent_grace_ms`, on the call clock) to return before it is
cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from fsm_voice.call import events as ev
from fsm_voice.call.handle import CallHandle
from fsm_voice.call.machine import LIVE

if TYPE_CHECKING:
    from fsm_voice.call.runtime import CallRuntime

Agent = Callable[[CallHandle], Awaitable[None]]


class AgentTask:
    def __init__(self, call: CallRuntime, agent: Agent | None) -> None:
        self.agent = agent
        self._call = call
        self.done = anyio.Event()  # the agent returned, failed or was cancelled
        self.spawned = False  # set by the call when the stream starts
        if agent is None:
            self.done.set()

    async def run(self) -> None:
        assert self.agent is not None
        call = self._call
        try:
            await self.agent(call.handle)
        except Exception as e:  # the agent is user code: its failure is an event
            call.record("runtime", "agent_failed", {"error": f"{type(e).__name__}: {e}"})
            call.dispatch(ev.FatalError("agent_failed", f"{type(e).__name__}: {e}"))
        else:
            if call.machine.state in LIVE:
                call.dispatch(ev.HangupRequested("agent_finished"))
        finally:
            self.done.set()

    async def finish(self) -> None:
        """Give the agent a grace period to return after the end, then cancel it."""
        if self.done.is_set() or not self.spawned:  # a call that never started has none
            return
        call = self._call
        grace = anyio.Event()
        timer = call.clock.call_later(call.config.agent_grace_ms, grace.set)
        async with anyio.create_task_group() as tg:

            async def wait_done() -> None:
                await self.done.wait()
                grace.set()

            tg.start_soon(wait_done)
            await grace.wait()
            tg.cancel_scope.cancel()
        timer.cancel()
        if not self.done.is_set():
            call.record("runtime", "agent_cancelled", {"grace_ms": call.config.agent_grace_ms})
