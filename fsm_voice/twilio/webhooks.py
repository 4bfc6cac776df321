"""Twilio's webhooks: `POST /twiml` (an inbound call), `/status`, `/amd`.

Every request must carry a valid `X-Twilio-Signature` for our public URL + path (+
query): a missing or wrong one gets 403 and a `webhook_rejected` event, unless the
settings turn verification off (a development switch, logged loudly at start).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import CallRuntime
from fsm_voice.clock import Clock, IdSource
from fsm_voice.errors import FsmVoiceError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.twilio.legs import FINAL_STATUSES, CallLegLog
from fsm_voice.twilio.outbound import AMD_PATH, STATUS_PATH, TWIML_PATH, stream_for_call
from fsm_voice.twilio.settings import TwilioSettings
from fsm_voice.twilio.signature import twilio_signature_valid
from fsm_voice.twilio.telephony import TwilioTelephony

__all__ = ["SIGNATURE_HEADER", "TwilioService", "TwilioWebhooks"]

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_PENDING_AMD = 1_000  # verdicts for streams not started yet, oldest dropped first


class LiveCalls(Protocol):
    """What the webhooks need of the server's `/voice` endpoint: the calls now live."""

    @property
    def calls(self) -> Mapping[str, CallRuntime]: ...


@dataclass(frozen=True)
class TwilioService:
    """What a server needs for Twilio: settings and the one telephony shared by the
    conversations (SMS, transfer) and the runtime (REST-first hangup)."""

    settings: TwilioSettings
    telephony: TwilioTelephony

    @classmethod
    def from_settings(cls, settings: TwilioSettings) -> TwilioService:
        return cls(settings, TwilioTelephony(settings.rest()))


class TwilioWebhooks:
    def __init__(
        self,
        service: TwilioService,
        endpoint: LiveCalls,
        log: EventLog,
        clock: Clock,
        ids: IdSource,
        machine_name: str | None,
    ) -> None:
        self.settings = service.settings
        self.telephony = service.telephony
        self.legs = CallLegLog(log, clock, ids)
        self._clock = clock
        self._endpoint = endpoint
        self._ids = ids
        self._machine = machine_name
        self._pending_amd: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.final_status: dict[str, str] = {}  # CallSid → Twilio's final status
        self._final_waiters: dict[str, anyio.Event] = {}

    def routes(self) -> list[Route]:
        return [
            Route(TWIML_PATH, self.twiml, methods=["POST"]),
            Route(STATUS_PATH, self.status, methods=["POST"]),
            Route(AMD_PATH, self.amd, methods=["POST"]),
        ]

    def attach(self, call: CallHandle) -> None:
        """For each new `/voice` socket: REST-first hangup, and an AMD verdict that
        came before its stream started is delivered once it starts."""
        self.telephony.attach(call)
        task = asyncio.get_running_loop().create_task(self._deliver_pending(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_final(self, call_sid: str) -> str:
        """Wait for Twilio's final status of `call_sid` (completed, busy, no-answer…)."""
        if call_sid not in self.final_status:
            await self._final_waiters.setdefault(call_sid, anyio.Event()).wait()
        return self.final_status[call_sid]

    # --- routes ---

    async def twiml(self, request: Request) -> Response:
        form = await self._verified_form(request)
        if form is None:
            return _forbidden()
        call_sid = form.get("CallSid", "")
        call_id = self._ids.new_id("FV")
        document, parameters = stream_for_call(
            self.settings,
            call_id,
            self._machine,
            issued_ms=self._clock.wall_ms(),
            # the token opens this call's stream only (a CallSid is letters and digits)
            call_sid=call_sid if call_sid.isascii() and call_sid.isalnum() else None,
            caller=form.get("From", ""),
            called=form.get("To", ""),
        )
        if call_sid:
            data = {"call_id": call_id, "machine": self._machine}
            self.legs.record(
                call_sid, "twilio_call_answered", data, direction="inbound", parameters=parameters
            )
        return Response(document, media_type="application/xml")

    async def status(self, request: Request) -> Response:
        form = await self._verified_form(request)
        if form is None:
            return _forbidden()
        call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
        if call_sid:
            data = {
                "status": status,
                "sequence": form.get("SequenceNumber"),
                "duration_s": form.get("CallDuration"),
                "answered_by": form.get("AnsweredBy"),
            }
            self.legs.record(call_sid, "call_status_received", _present(data))
            if status in FINAL_STATUSES:
                self.legs.finish(call_sid, status, form.get("CallDuration"))
                self.final_status[call_sid] = status
                waiter = self._final_waiters.pop(call_sid, None)
                if waiter is not None:
                    waiter.set()
        return Response(status_code=204)

    async def amd(self, request: Request) -> Response:
        form = await self._verified_form(request)
        if form is None:
            return _forbidden()
        call_sid = form.get("CallSid", "")
        verdict = _present(
            {
                "answered_by": form.get("AnsweredBy", "unknown"),
                "detection_ms": form.get("MachineDetectionDuration"),
            }
        )
        if call_sid:
            self.legs.record(call_sid, "answering_machine_detected", verdict)
            call = self._live_call(call_sid)
            if call is not None:
                call.notify("amd", verdict)
            else:
                self._pending_amd[call_sid] = verdict
                while len(self._pending_amd) > MAX_PENDING_AMD:
                    self._pending_amd.popitem(last=False)
        return Response(status_code=204)

    # --- helpers ---

    async def _verified_form(self, request: Request) -> dict[str, str] | None:
        # Twilio posts application/x-www-form-urlencoded (parsed here: Starlette's
        # form parser needs python-multipart for any form).
        body = (await request.body()).decode("utf-8", "replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        if not self.settings.verify_signatures:
            return form
        path = request.url.path
        url = self.settings.webhook_url(path)
        if request.url.query:
            url += "?" + request.url.query
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            self.legs.rejected(path, "missing_signature")
            return None
        if not twilio_signature_valid(self.settings.auth_token, url, form, signature):
            self.legs.rejected(path, "bad_signature")
            return None
        return form

    def _live_call(self, call_sid: str) -> CallHandle | None:
        for runtime in self._endpoint.calls.values():
            if runtime.call_sid == call_sid:
                return runtime.handle
        return None

    async def _deliver_pending(self, call: CallHandle) -> None:
        try:
            await call.wait_connected()
        except FsmVoiceError:  # never started: nothing to deliver
            return
        verdict = self._pending_amd.pop(call.call_sid or "", None)
        if verdict is not None:
            call.notify("amd", verdict)


def _forbidden() -> Response:
    return PlainTextResponse("invalid Twilio signature", status_code=403)


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}
