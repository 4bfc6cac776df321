"""register_voice_websocket registers through FastAPI's `app.websocket(path)`, as the seed did.

On a FastAPI app (or anything with its decorator) the handler takes a WebSocket object
and runs the one engine over it: served by uvicorn, a FastAPI app still refuses a bad
upgrade with 403 before accept. An object that is already an open socket (Starlette's
text API only, here over an in-process socket) runs calls the same way, and a refusal
on it is an accept and a close with 1008, counted in the log like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest
from compat_harness import ThreadedServer, in_thread, phone
from fastapi.routing import APIWebSocketRoute
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketDisconnect
from twilio.request_validator import RequestValidator

from fsm_voice.call.socket import CALL_ID_HEADER, MemorySocket, memory_socket_pair
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.server.endpoint import VoiceEndpoint
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import DialRejected, dial
from fsm_voice.transports.twilio_call import build_stream_twiml
from fsm_voice.transports.twilio_ws import register_voice_websocket
from tests.fake_twilio_api import stream_of

pytestmark = [pytest.mark.anyio]

AUTH_TOKEN = "compat-auth-token-SECRET"
BASE_URL = "https://voice.example.com"  # voice_runtime's VOICE_STREAM_URL
SIGNED_URL = "wss://voice.example.com/voice"  # what Twilio signs for it
CALL_SID = "CA" + "7" * 32
_SEED_ENV = (
    "TWILIO_AUTH_TOKEN",
    "TWILIO_ACCOUNT_SID",
    "VOICE_STREAM_URL",
    "TWILIO_SKIP_SIGNATURE_VALIDATION",
    "FSM_VOICE_INSECURE",
    "FSM_VOICE_STREAM_KEY",
)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SEED_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def signed_env(no_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("VOICE_STREAM_URL", BASE_URL)


Handler = Callable[[Any], Coroutine[Any, Any, None]]


class DecoratorApp:
    """Not FastAPI, and no router: only a FastAPI-style `websocket(path)` decorator."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def websocket(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.handlers[path] = handler
            return handler

        return register


class OpenTextSocket:
    """A WebSocket object the server has already opened, with Starlette's text API,
    over one end of an in-process socket (the other end is the phone's)."""

    def __init__(self, inner: MemorySocket, headers: dict[str, str]) -> None:
        self.inner = inner
        self.headers = headers
        self.accepted: list[Any] = []  # the headers of each accept
        self.closes: list[int] = []

    async def accept(self, subprotocol: str | None = None, headers: object = None) -> None:
        self.accepted.append(headers)

    async def receive_text(self) -> str:
        try:
            message = await self.inner.receive()
        except SocketClosed as closed:
            raise WebSocketDisconnect(closed.code) from None
        assert isinstance(message, str)
        return message

    async def send_text(self, text: str) -> None:
        await self.inner.send(text)

    async def close(self, code: int = 1000) -> None:
        self.closes.append(code)
        await self.inner.close(code)


def _register_open(session: VoiceSession) -> tuple[DecoratorApp, MemoryEventLog, VoiceEndpoint]:
    app, log = DecoratorApp(), MemoryEventLog()
    endpoint = register_voice_websocket(app, session, log=log)
    return app, log, endpoint


def _signature(url: str) -> str:
    return str(RequestValidator(AUTH_TOKEN).compute_signature(url, {}))


def test_plain_starlette_keeps_the_route_on_its_router(no_env: None) -> None:
    app = Starlette()
    register_voice_websocket(app, VoiceSession(), log=MemoryEventLog())
    [route] = app.routes
    assert isinstance(route, WebSocketRoute) and route.path == "/voice"


@pytest.mark.real_server
async def test_fastapi_serves_a_call_through_its_websocket_decorator(no_env: None) -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        [route] = [r for r in server.app.routes if getattr(r, "path", None) == "/voice"]
        assert isinstance(route, APIWebSocketRoute)  # FastAPI's, not a router mount
        async with dial(server.url) as sock, phone(sock) as sim:
            await in_thread(session.wait_for_ws_connect, 10)
            assert session.call_sid == sim.call_sid
        [call_id] = await server.wait_finished(1)
    [accepted] = server.events(call_id, "upgrade_accepted")
    assert accepted.data["verified"] is False
    assert session.generation == 1


@pytest.mark.real_server
async def test_fastapi_still_refuses_a_forged_upgrade_with_403(signed_env: None) -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        with pytest.raises(DialRejected) as refused:
            async with dial(server.url, auth_token="another-token", signed_url=SIGNED_URL):
                pass
        assert refused.value.status == 403
        await server.on_server(server.log.flush())
    [counted] = server.log.refusals()
    assert (counted.reason, counted.status) == ("signature_invalid", 403)
    assert server.log.calls() == [] and session.generation == 0


async def test_an_open_socket_object_runs_a_call_on_the_engine(no_env: None) -> None:
    session = VoiceSession()
    session.set_loop(asyncio.get_running_loop())
    app, log, endpoint = _register_open(session)
    server_end, phone_end = memory_socket_pair()
    socket = OpenTextSocket(server_end, headers={})
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app.handlers["/voice"], socket)
            async with phone(phone_end) as sim:
                await in_thread(session.wait_for_ws_connect, 10)
                session.request_disconnect()  # no REST credentials: we close the stream
                assert await sim.wait_closed() == 1000
    assert socket.closes == [1000]
    [[(header, call_id)]] = socket.accepted
    assert header == CALL_ID_HEADER.lower().encode()
    assert [c.call_id for c in log.calls()] == [call_id.decode()]
    assert endpoint.finished == [call_id.decode()]
    assert session.call_sid == sim.call_sid


async def test_an_open_socket_signed_over_voice_stream_url_is_admitted(signed_env: None) -> None:
    session = VoiceSession()
    session.set_loop(asyncio.get_running_loop())
    app, log, _ = _register_open(session)
    server_end, phone_end = memory_socket_pair()
    # No Host header, no URL: the URL checked is VOICE_STREAM_URL's, as the seed's was.
    socket = OpenTextSocket(server_end, headers={"X-Twilio-Signature": _signature(SIGNED_URL)})
    _, params = stream_of(build_stream_twiml(BASE_URL, call_sid=CALL_SID))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app.handlers["/voice"], socket)
            sim = phone(phone_end, **params)
            sim.call_sid = CALL_SID
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
    [call] = log.calls()
    [accepted] = [e for e in log.events(call.call_id) if e.kind == "upgrade_accepted"]
    assert accepted.data["verified"] is True
    assert session.call_sid == CALL_SID and log.refusals() == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "signature_missing"), ({"x-twilio-signature": "forged"}, "signature_invalid")],
)
async def test_an_open_socket_refused_is_accepted_then_closed_with_1008(
    signed_env: None, headers: dict[str, str], reason: str
) -> None:
    session = VoiceSession()
    app, log, endpoint = _register_open(session)
    server_end, phone_end = memory_socket_pair()
    socket = OpenTextSocket(server_end, headers=headers)
    with anyio.fail_after(10):
        await app.handlers["/voice"](socket)
        with pytest.raises(SocketClosed) as closed:
            await phone_end.receive()
    assert closed.value.code == 1008
    assert socket.accepted == [None] and socket.closes == [1008]
    assert endpoint.refused == {reason: 1}
    await log.flush()
    [counted] = log.refusals()
    assert (counted.reason, counted.count) == (reason, 1)
    assert log.calls() == [] and session.generation == 0
