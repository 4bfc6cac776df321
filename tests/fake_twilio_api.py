"""A local fake of Twilio's REST API (2010-04-01) for tests: a real HTTP server.

It serves what the `twilio` SDK sends: create a call, update one (`Status=completed`,
`Twiml=` redirect), send a message. Responses and errors have Twilio's documented
shapes: `{"code", "message", "more_info", "status"}` with 401/20003 for bad
credentials, 404/20404 for an unknown call, 400/21220 for a call not in progress.

It lists calls too (`GET Calls.json` with `To`, `StartTime>`, `PageSize`), in pages
linked by a relative `next_page_uri` as Twilio links them; `list_fault` replaces a page
with a hostile or malformed one. Regions: each call lives on one API host (`host`,
default api.twilio.com, as the SDK names it in `X-Fsm-Voice-Target`); any other host
answers 404/20404 for it and leaves it out of lists. `api_keys` (SK… → secret) are
accepted like the auth token, as Twilio accepts API keys.

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
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

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
from fsm_voice.twilio.signature import SIGNATURE_HEADER, twilio_signature

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
    query: dict[str, str] = field(default_factory=dict)
    authorization: str | None = None

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
    host: str = "api.twilio.com"  # the API host (region) the call lives on
    direction: str = "outbound-api"
    start_time: datetime | None = None


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
        self.api_keys: dict[str, str] = {}  # API key SID -> secret, valid like the token
        # Call lists: page n (1-based) answers this JSON instead of the real page, or
        # the real page with this `next_page_uri`.
        self.list_fault: dict[int, Any] = {}
        self.next_page_override: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._tg: TaskGroup | None = None
        base = API.format(account=account_sid)
        self.app = Starlette(
            routes=[
                Route(base + "/Calls.json", self._create_call, methods=["POST"]),
                Route(base + "/Calls.json", self._list_calls, methods=["GET"]),
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

    def add_call(
        self,
        to: str,
        start_time: datetime | None,
        *,
        host: str = "api.twilio.com",
        from_: str = "+15550111",
        status: str = "in-progress",
        direction: str = "inbound",
    ) -> str:
        """A call that exists at Twilio already (an inbound call, say); its SID."""
        sid = self._sid("CA")
        call = FakeCall(sid, to, from_, "", {}, status=status, host=host, direction=direction)
        call.start_time = start_time
        self.calls[sid] = call
        return sid

    # --- the API ---

    async def _create_call(self, request: Request) -> JSONResponse:
        form, refused = await self._receive(request)
        if refused is not None:
            return refused
        sid = self._sid("CA")
        call = FakeCall(sid, _one(form, "To"), _one(form, "From"), _one(form, "Twiml"), form)
        call.host = self._host(request)  # it lives in the region it was created in
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
        if call is None or call.host != self._host(request):
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

    async def _list_calls(self, request: Request) -> JSONResponse:
        _, refused = await self._receive(request)
        if refused is not None:
            return refused
        query = request.query_params
        size = int(query.get("PageSize", "50"))
        offset = int(query.get("PageToken", "PA0").removeprefix("PA"))
        page_number = offset // size + 1
        if page_number in self.list_fault:
            return JSONResponse(self.list_fault[page_number])
        after = query.get("StartTime>")
        cut = datetime.strptime(after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if after else None
        matching = [
            call
            for call in self.calls.values()
            if call.host == self._host(request)
            and call.to == query.get("To", call.to)
            and (cut is None or call.start_time is None or call.start_time.date() >= cut.date())
        ]
        chunk = matching[offset : offset + size]
        next_uri: Any = None
        if offset + size < len(matching):
            rest = {"To": query.get("To", ""), "PageSize": size, "Page": page_number}
            rest["PageToken"] = f"PA{offset + size}"
            next_uri = f"{API.format(account=self.account_sid)}/Calls.json?{urlencode(rest)}"
        next_uri = self.next_page_override.get(page_number, next_uri)
        page = {
            "calls": [self._call_json(call) for call in chunk],
            "next_page_uri": next_uri,
            "page": page_number - 1,
            "page_size": size,
        }
        return JSONResponse(page)

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
        identities = {self.account_sid: self.auth_token, **self.api_keys}
        authorized = request.headers.get("authorization") in {
            _basic(user, secret) for user, secret in identities.items()
        }
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                form,
                request.headers.get("x-fsm-voice-target"),
                authorized,
                dict(request.query_params),
                request.headers.get("authorization"),
            )
        )
        if self.stall is not None:
            await self.stall.wait()
        if not authorized:
            return form, _error(401, 20003, "Authenticate")
        return form, None

    @staticmethod
    def _host(request: Request) -> str:
        """The API host the SDK meant (region/edge), as fsm_voice's HTTP client names it."""
        return request.headers.get("x-fsm-voice-target") or "api.twilio.com"

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):032x}"

    def _call_json(self, call: FakeCall) -> dict[str, Any]:
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": call.direction,
            "api_version": "2010-04-01",
            "answered_by": None,
            "date_created": None,
            "start_time": format_datetime(call.start_time) if call.start_time else None,
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
                    caller = ScriptedCaller(
                        sim, answer.script, answer.voice, self.clock, agent_marks=True
                    )
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
