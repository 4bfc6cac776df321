"""The conversation's requests to the world outside the call: hooks and telephony.

`OutsideActions` carries out the machine's `CallHook`, `SendSms`, `TransferCall` and
`HangupCall` effects, each in its own task (the runner starts them), and dispatches
each one's result back to the machine as an event: `HookReturned`/`HookFailed`
(a hook has its timeout on the call's clock) or `ActionCompleted`. An SMS or a
transfer stays *in flight* until its result is dispatched: a hangup or transfer
waits for those before it goes, and the runner gives them a grace period when the
caller hangs up, so ending the call does not lose them from the log.

It lives apart from the runner because these are the only effects that talk to
user code and the telephony API; the runner hands it the call, how hooks run,
the telephony, the machine's current state (a hook's context) and dispatch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from fsm_voice.call.handle import CallHandle
from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.hooks import HookContext, HookResult, call_hook, resolve_hook
from fsm_voice.conversation.payload import snapshot
from fsm_voice.conversation.telephony import Telephony

__all__ = ["HookCaller", "OutsideActions", "run_hook"]

# Runs one hook: (target "module:function", directories to find it in, context).
HookCaller = Callable[[str, tuple[str, ...], HookContext], Awaitable[HookResult]]


async def run_hook(target: str, paths: tuple[str, ...], context: HookContext) -> HookResult:
    """The default `HookCaller`: the user's function, found next to the machine."""
    return await call_hook(resolve_hook(target, paths), context)


class OutsideActions:
    """One call's hooks, SMS, transfer and hangup; each result dispatched as an event."""

    def __init__(
        self,
        call: CallHandle,
        telephony: Telephony,
        *,
        hooks: HookCaller,
        hook_dir: Path,
        current_state: Callable[[], str],
        dispatch: Callable[[ev.ConversationEvent], None],
    ) -> None:
        self._call = call
        self._telephony = telephony
        self._hooks = hooks
        self._hook_dir = hook_dir  # hooks are found next to the machine
        self._current_state = current_state
        self._dispatch = dispatch
        self._in_flight: list[anyio.Event] = []  # SMS and transfers

    async def run_hook(self, effect: fx.CallHook) -> None:
        context = HookContext(self._call.call_id, self._current_state(), dict(effect.context))
        scope = anyio.CancelScope()
        timer = self._call.clock.call_later(effect.timeout_ms, scope.cancel)
        result = None
        error = "timeout"
        try:
            with scope:
                result = await self._hooks(effect.target, (str(self._hook_dir),), context)
        except Exception as failure:  # the user's code failed: an `error` event
            error = f"{type(failure).__name__}: {failure}"
        finally:
            timer.cancel()
        if result is None:
            self._dispatch(ev.HookFailed(effect.call_id, error))
        else:
            self._dispatch(ev.HookReturned(effect.call_id, result.event, dict(result.variables)))

    async def send_sms(self, action_id: int, to: str, body: str) -> None:
        await self._act(action_id, self._telephony.send_sms, to, body)

    async def transfer(self, action_id: int, to: str) -> None:
        await self.settled()
        # Kept like an SMS in flight: the platform ends the stream as it redirects the
        # call, often before its answer arrives, and the result must still be logged.
        await self._act(action_id, self._telephony.transfer, self._call.call_sid, to)
        await self._call.hangup("conversation:transferred")

    async def hang_up(self, reason: str) -> None:
        await self.settled()
        await self._call.hangup(reason)

    async def settled(self) -> None:
        """Wait for the SMS still in flight: ending the call must not lose them."""
        while self._in_flight:
            await self._in_flight[0].wait()

    async def _act(
        self, action_id: int, request: Callable[..., Awaitable[dict[str, Any]]], *args: Any
    ) -> None:
        """A telephony request (an SMS, a transfer), kept in flight until its result is
        dispatched."""
        done = anyio.Event()
        self._in_flight.append(done)
        try:
            result = await request(*args)
            self._dispatch(ev.ActionCompleted(action_id, True, snapshot(result)))
        except Exception as error:
            self._dispatch(ev.ActionCompleted(action_id, False, {"error": str(error)}))
        finally:
            done.set()
            self._in_flight.remove(done)
