"""Build the Starlette app and run it under uvicorn (uvloop, sans-I/O websockets)."""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from fsm_voice.call.config import CallConfig, Limits, SecuritySettings
from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent
from fsm_voice.clock import Clock, IdSource, RandomIds, SystemClock
from fsm_voice.eventlog.base import EventLog
from fsm_voice.server.endpoint import VoiceEndpoint
from fsm_voice.server.uvicorn_protocol import MediaStreamsProtocol

if TYPE_CHECKING:
    from fsm_voice.twilio.webhooks import TwilioService, TwilioWebhooks

MAX_MESSAGE_BYTES = Limits().max_message_bytes  # Twilio's messages are < 1 KiB
GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)


def create_app(
    log: EventLog,
    *,
    agent: Agent | None = None,
    machine_name: str | None = None,
    machine_version: str | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    config: CallConfig | None = None,
    on_call: Callable[[CallHandle], None] | None = None,
    security: SecuritySettings | None = None,
    limits: Limits | None = None,
    twilio: TwilioService | None = None,
) -> Starlette:
    """The ASGI app: `/voice` (Media Streams WebSocket) and `/health`; with `twilio`,
    also Twilio's webhooks (`/twiml`, `/status`, `/amd`) and REST-first hangups.

    `security` checks every upgrade and per-call token (None: no checks, for tests and
    embedding); `limits` bound message size, concurrent calls, call length and idle
    streams (None: `Limits()`, which bounds only the message size).
    """
    call_config = config or CallConfig()  # the endpoint folds `security` in
    if limits is not None:
        call_config = limits.apply_to(call_config)
    endpoint = VoiceEndpoint(
        log=log,
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
        config=call_config,
        security=security,
        limits=limits or Limits(),
        agent=agent,
        machine_name=machine_name,
        machine_version=machine_version,
        on_call=on_call,
    )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "calls": len(endpoint.calls)})

    routes = [WebSocketRoute("/voice", endpoint), Route("/health", health)]
    hooks = None
    if twilio is not None:
        hooks = _twilio_webhooks(twilio, endpoint, log, machine_name)
        routes += hooks.routes()
    app = _App(routes=routes)
    app.state.twilio = hooks
    app.state.voice = endpoint
    app.voice = endpoint
    return app


def _twilio_webhooks(
    twilio: TwilioService, endpoint: VoiceEndpoint, log: EventLog, machine_name: str | None
) -> TwilioWebhooks:
    """Twilio's webhooks; every new call is also attached to them."""
    from fsm_voice.twilio.webhooks import TwilioWebhooks

    hooks = TwilioWebhooks(twilio, endpoint, log, endpoint.clock, endpoint.ids, machine_name)
    user_on_call = endpoint.on_call

    def on_call(call: CallHandle) -> None:
        hooks.attach(call)
        if user_on_call is not None:
            user_on_call(call)

    endpoint.on_call = on_call
    return hooks


class _App(Starlette):
    """Starlette, except that `/voice` sockets go straight to the endpoint.

    Every media frame we send would otherwise pass Starlette's exception-handling
    wrapper around `send`; the endpoint handles its own errors.
    """

    voice: VoiceEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == scope.get("root_path", "") + "/voice":
            await self.voice(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def uvicorn_config(app: Starlette, **overrides: object) -> uvicorn.Config:
    voice = getattr(app, "voice", None)
    max_size = voice.limits.max_message_bytes if voice is not None else MAX_MESSAGE_BYTES
    options: dict[str, object] = {
        "loop": "uvloop",
        "http": "httptools",
        "ws": MediaStreamsProtocol,  # websockets-sansio, quiet about a peer's bad bytes
        "ws_max_size": max_size,  # a bigger message closes its socket with 1009
        "log_level": "warning",
        "lifespan": "off",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/voice"


@contextlib.asynccontextmanager
async def serve_in_background(
    app: Starlette, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningServer]:
    """Serve `app` on this event loop (port 0: a free one) until the block exits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn_config(app, loop="none"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:
            await anyio.lowlevel.checkpoint()
        try:
            yield RunningServer(host, sock.getsockname()[1], server)
        finally:
            server.should_exit = True
    sock.close()


def tune_gc() -> None:
    """Garbage-collector settings for a process serving many calls at once.

    Every live call holds a few hundred long-lived objects, and the hot path makes
    short-lived ones by the tens of thousands a second. With the default thresholds
    the young generations are collected ~200 times a second, promoting whatever is in
    flight (queued log records, pending marks) until a full collection walks every
    call's objects, stalling every call for tens of ms. Larger young generations
    promote far less; what exists at startup (modules, the app) is frozen out of
    collections for good.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket behind an inherited descriptor, with its real family.

    uvicorn's own `fd=` takes every descriptor for an AF_UNIX socket, and uvloop then
    serves a TCP listener's connections as Unix streams, without TCP_NODELAY: a mark
    written right after a media frame waited for the caller's next packet (~20 ms).
    """
    return socket.socket(fileno=fd)


def run_server(app: Starlette, host: str, port: int, fd: int | None = None) -> None:
    """Serve until interrupted (the `fsm-voice serve` command)."""
    tune_gc()
    if fd is not None:
        uvicorn.Server(uvicorn_config(app)).run(sockets=[inherited_socket(fd)])
    else:
        uvicorn.Server(uvicorn_config(app, host=host, port=port)).run()
