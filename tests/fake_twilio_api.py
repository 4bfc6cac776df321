"""A local fake of Twilio's REST API (2010-04-01) for tests: a real HTTP server.

It serves what the `twilio` SDK sends: create a call, update one (`Status=completed`,
`Twiml=` redirect), send a message. Responses and errors have Twilio's documented
shapes: `{"code", "message", "more_info", "status"}` with 401/20003 for bad
credentials, 404/20404 for an unknown call, 400/21220 for a call not in progress.

It can also *answer* the calls it creates, like a phone: it reads the TwiML's
`<Connect><Stream url>` and `<Parameter>`s, posts signed status callbacks, dials the
stream URL with the phone simulator (upgrade signed with the auth token, parameters
in `start`), runs a caller script, posts the async AMD verdict when asked, and on a
REST hangup or redirect ends the stream the way Twilio does (`stop`, then close).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fsm_voice.clock import Clock, CountingIds
from fsm_voice.errors import SocketClosed
from fsm_voice.providers.base import SpeechSynthesizer
from fsm_voice.server import serve_in_background
from fsm_voice.simulator.caller import CallerResult, ScriptedCaller
from fsm_voice.simulator.caller_script import CallerScript
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.simulator.signature import SIGNATURE_HEADER, twilio_signature

API = "/2010-04-01/Accounts/{account}"


@dataclass(frozen=True)
class Answer:
    """How the fake's callee answers the calls it is asked to create."""

    script: CallerScript
    voice: SpeechSynthesizer
    answered_by: str = "human"  # the AMD verdict, when the call asked for detection
    unanswered: str | None = None  # e.g. "no-answer" or "busy": it rings, nobody picks up


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    target: str | None  # the API host the SDK chose (region/edge), see fsm_voice.twilio.rest
    authorized: bool

    def one(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    twiml: str
    form: dict[str, list[str]]
    status: str = "queued"
    redirects: list[str] = field(default_factory=list)
    sim: PhoneSimulator | None = None
    result: CallerResult | None = None
    ended_by: str | None = None  # rest_hangup | redirect | stream_closed
    stream_parameters: dict[str, str] = field(default_factory=dict)
    done: anyio.Event = field(default_factory=anyio.Event)


@dataclass(frozen=True)
class Callback:
    url: str
    params: dict[str, str]
    status_code: int


class FakeTwilioApi:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        clock: Clock,
        *,
        answer: Answer | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.clock = clock
        self.answer = answer
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, FakeCall] = {}
        self.messages: list[dict[str, Any]] = []
        self.callbacks: list[Callback] = []
        self.stall: anyio.Event | None = None  # set: requests wait for it (timeouts)
        # Faults: every call update answers this (status, code, message) instead ...
        self.update_error: tuple[int, int, str] | None = None
        # ... or a REST hangup completes the call but leaves its stream open.
        self.closes_stream_on_hangup = True
        self._ids = itertools.count(1)
        self._tg: TaskGroup | None = None
        base = API.format(account=account_sid)
        self.app = Starlette(
            routes=[
                Route(base + "/Calls.json", self._create_call, methods=["POST"]),
                Route(base + "/Calls/{sid}.json", self._update_call, methods=["POST"]),
                Route(base + "/Messages.json", self._create_message, methods=["POST"]),
            ]
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1; yields the base URL to give `TwilioRest(api_base=…)`."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            async with serve_in_background(self.app) as server:
                yield f"http://{server.host}:{server.port}"
            tg.cancel_scope.cancel()

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    # --- the API ---

    async def _create_call(self, request: Request) -> JSONResponse:
        form, refused = await self._receive(request)
        if refused is not None:
            return refused
        sid = self._sid("CA")
        call = FakeCall(sid, _one(form, "To"), _one(form, "From"), _one(form, "Twiml"), form)
        self.calls[sid] = call
        if self.answer is not None:
            assert self._tg is not None
            self._tg.start_soon(self._answer, call, self.answer)
        return JSONResponse(self._call_json(call), status_code=201)

    async def _update_call(self, request: Request) -> JSONResponse:
        form, refused = await self._receive(request)
        if refused is not None:
            return refused
        call = self.calls.get(request.path_params["sid"])
        if self.update_error is not None:
            return _error(*self.update_error)
        if call is None:
            return _error(404, 20404, "The requested resource was not found")
        if call.status not in ("queued", "ringing", "in-progress"):
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if _one(form, "Status") == "completed":
            call.status = "completed"
            if self.closes_stream_on_hangup:
                self._end_stream(call, "rest_hangup")
        elif _one(form, "Twiml"):
            call.redirects.append(_one(form, "Twiml"))
            self._end_stream(call, "redirect")  # <Connect> ends when the call moves on
        return JSONResponse(self._call_json(call))

    async def _create_message(self, request: Request) -> JSONResponse:
        form, refused = await self._receive(request)
        if refused is not None:
            return refused
        message = {
            "sid": self._sid("SM"),
            "account_sid": self.account_sid,
            "to": _one(form, "To"),
            "from": _one(form, "From"),
            "body": _one(form, "Body"),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "api_version": "2010-04-01",
            "date_created": None,
            "uri": f"{API.format(account=self.account_sid)}/Messages/x.json",
        }
        self.messages.append(message)
        return JSONResponse(message, status_code=201)

    async def _receive(self, request: Request) -> tuple[dict[str, list[str]], JSONResponse | None]:
        form: dict[str, list[str]] = {}
        for key, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
            form.setdefault(key, []).append(value)
        authorized = request.headers.get("authorization") == _basic(
            self.account_sid, self.auth_token
        )
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                form,
                request.headers.get("x-fsm-voice-target"),
                authorized,
            )
        )
        if self.stall is not None:
            await self.stall.wait()
        if not authorized:
            return form, _error(401, 20003, "Authenticate")
        return form, None

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):032x}"

    def _call_json(self, call: FakeCall) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "answered_by": None,
            "date_created": None,
            "uri": f"{API.format(account=self.account_sid)}/Calls/{call.sid}.json",
        }

    # --- the callee ---

    def _end_stream(self, call: FakeCall, how: str) -> None:
        if call.ended_by is None:
            call.ended_by = how
        if call.sim is not None and self._tg is not None:
            self._tg.start_soon(call.sim.hangup)

    async def _answer(self, call: FakeCall, answer: Answer) -> None:
        try:
            await self._status(call, "initiated")
            await self._status(call, "ringing")
            if answer.unanswered is not None:
                call.status = answer.unanswered
                await self._status(call, "completed")  # the final callback, with that status
                return
            call.status = "in-progress"
            await self._status(call, "answered")
            url, call.stream_parameters = stream_of(call.twiml)
            signed = dict(auth_token=self.auth_token)
            async with dial(url, **signed) as sock:
                sim = PhoneSimulator(
                    sock,
                    self.clock,
                    CountingIds(),
                    custom_parameters=call.stream_parameters,
                    account_sid=self.account_sid,
                    call_sid=call.sid,
                )
                async with sim:
                    call.sim = sim
                    if _one(call.form, "AsyncAmd") == "true":
                        await self._post(
                            _one(call.form, "AsyncAmdStatusCallback"),
                            {
                                "AccountSid": self.account_sid,
                                "CallSid": call.sid,
                                "AnsweredBy": answer.answered_by,
                                "MachineDetectionDuration": "1200",
                            },
                        )
                    caller = ScriptedCaller(sim, answer.script, answer.voice, self.clock)
                    call.result = await caller.run()
                    with contextlib.suppress(SocketClosed):
                        await sim.wait_closed()  # the agent (or a REST hangup) ends it
            if call.ended_by is None:
                call.ended_by = "stream_closed"  # no more TwiML: Twilio ends the call
            call.status = "completed"
            await self._status(call, "completed")
        finally:
            call.done.set()

    async def _status(self, call: FakeCall, event: str) -> None:
        url = _one(call.form, "StatusCallback")
        if not url or event not in call.form.get("StatusCallbackEvent", [event]):
            return
        status = {"initiated": "queued", "answered": "in-progress"}.get(event, event)
        if event == "completed":
            status = call.status
        params = {"AccountSid": self.account_sid, "CallSid": call.sid, "CallStatus": status}
        if status == "completed":
            params["CallDuration"] = "1"
        await self._post(url, params)

    async def _post(self, url: str, params: dict[str, str]) -> None:
        headers = {SIGNATURE_HEADER: twilio_signature(self.auth_token, url, params)}
        async with httpx.AsyncClient() as client:
            response = await client.post(url, data=params, headers=headers)
        self.callbacks.append(Callback(url, params, response.status_code))


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    """The `<Connect><Stream>` URL and `<Parameter>`s of a TwiML document."""
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        raise ValueError(f"no <Connect><Stream> in {twiml!r}")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), parameters


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A free port on 127.0.0.1, held (bound, not listening) until the block ends, so a
    server can be configured with its own public URL before it binds the port."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    try:
        yield int(holder.getsockname()[1])
    finally:
        holder.close()


def _one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)
