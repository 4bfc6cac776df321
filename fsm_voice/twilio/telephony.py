"""`TwilioTelephony`: the conversation's `Telephony` (SMS, transfer) over Twilio REST,
plus the REST-first hangup the call runtime uses (`CallHandle.use_remote_hangup`).

The SDK blocks, so every request runs in a worker thread; a call that ends while a
request is in flight abandons the wait (the request still completes in its thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from fsm_voice.call.handle import CallHandle
from fsm_voice.errors import FsmVoiceError
from fsm_voice.twilio.rest import TwilioRest
from fsm_voice.twilio.twiml import dial_twiml

__all__ = ["TRANSFERRED", "TwilioTelephony"]

T = TypeVar("T")
TRANSFERRED = "transferred"  # hangup outcome: the call lives on, with the transfer target


class TwilioTelephony:
    def __init__(self, rest: TwilioRest) -> None:
        self.rest = rest
        # Calls redirected to a <Dial>: hanging up the stream must not end them.
        self._transferred: set[str] = set()

    async def send_sms(self, to: str, body: str) -> dict[str, Any]:
        result = await self._run(self.rest.send_sms, to, body)
        return {"sid": result["message_sid"], **result}

    async def transfer(self, call_sid: str | None, to: str) -> dict[str, Any]:
        if not call_sid:
            raise FsmVoiceError("cannot transfer: the stream did not say which call it is")
        await self._run(self.rest.redirect, call_sid, dial_twiml(to))
        self._transferred.add(call_sid)
        return {"status": "redirected", "to": to, "call_sid": call_sid}

    async def hangup(self, call_sid: str) -> str:
        """End the call at Twilio: "completed", "already_ended" or "transferred"."""
        if call_sid in self._transferred:
            self._transferred.discard(call_sid)
            return TRANSFERRED
        return str(await self._run(self.rest.hangup, call_sid))

    def attach(self, call: CallHandle) -> None:
        """Make `call`'s hangups REST-first (use as, or inside, `create_app(on_call=…)`)."""
        call.use_remote_hangup(self.hangup)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=True)
