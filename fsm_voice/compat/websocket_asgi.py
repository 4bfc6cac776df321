"""`/voice` registered through FastAPI's `app.websocket(path)`, as voice_runtime did.

voice_runtime's handler was `@app.websocket("/voice") async def endpoint(websocket)`.
Registered that way, our handler turns the WebSocket object it is given back into
the ASGI triple the engine's `VoiceEndpoint` serves, so every call runs the one engine
(`VoiceEndpoint` → `CallRuntime` over `AsgiSocket`): the same upgrade checks, limits,
refusal counts, event log and REST-first hangup as the endpoint mounted on a router.

- A Starlette `WebSocket` (what FastAPI passes) is still an upgrade request when the
  handler runs: its own scope and its public `receive`/`send` are the ASGI triple, so
  a refused upgrade is answered with its HTTP status (403, 503) before any accept.
- Any other object with Starlette's text API (`accept`, `receive_text` raising
  `WebSocketDisconnect`, `send_text`, `close(code)`, `headers`) is treated as a socket
  the server has already opened: its scope is made from its `headers` and the route's
  path (with no Host, the signed URL comes from VOICE_STREAM_URL), and a refusal can
  only be an accept then close 1008, as voice_runtime closed a bad signature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from fsm_voice.call.socket import CLOSE_NORMAL
from fsm_voice.server.endpoint import VoiceEndpoint

__all__ = ["OpenSocketAsgi", "WebSocketDecorating", "asgi_of", "voice_websocket_handler"]

VoiceWebSocketHandler = Callable[[WebSocket], Awaitable[None]]


class WebSocketDecorating(Protocol):
    """An app with FastAPI's `websocket(path)` decorator."""

    # Takes the handler (typed loosely: FastAPI's and a test's decorators differ).
    def websocket(self, path: str) -> Callable[[Any], Any]: ...


def voice_websocket_handler(endpoint: VoiceEndpoint, path: str) -> VoiceWebSocketHandler:
    """The function to register with `app.websocket(path)`: it runs `endpoint`."""

    # FastAPI injects the socket by this parameter's annotation, so it names the class.
    async def voice_websocket(websocket: WebSocket) -> None:
        await endpoint(*asgi_of(websocket, path))

    return voice_websocket


class OpenSocketAsgi:
    """ASGI `receive`/`send` over an already-open WebSocket object's text API."""

    def __init__(self, websocket: Any, path: str) -> None:
        self._websocket = websocket
        self._connected = False  # the engine has had its `websocket.connect`
        self._accepted = False
        # No "extensions": a refusal becomes a `websocket.close` (see `send`).
        self.scope: Scope = {
            "type": "websocket",
            "path": path,
            "root_path": "",
            "query_string": b"",
            "headers": _raw_headers(getattr(websocket, "headers", None)),
        }

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        try:
            text = await self._websocket.receive_text()
        except WebSocketDisconnect as closed:
            return {"type": "websocket.disconnect", "code": closed.code, "reason": closed.reason}
        return {"type": "websocket.receive", "text": text}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            self._accepted = True
            await self._websocket.accept(headers=message.get("headers"))
        elif kind == "websocket.send":
            await self._websocket.send_text(message["text"])
        elif kind == "websocket.close":
            if not self._accepted:
                # A refused upgrade (`refuse_upgrade` closes with 1008): the socket is
                # open already, so the refusal is an accept and that close.
                self._accepted = True
                await self._websocket.accept()
            # The code only: voice_runtime's sockets took `close(code)`.
            await self._websocket.close(int(message.get("code", CLOSE_NORMAL)))
        else:
            raise RuntimeError(f"unexpected ASGI message for an open socket: {kind!r}")


def _raw_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """ASGI's header list from a mapping of them (none when it is no mapping)."""
    if not isinstance(headers, Mapping):
        return []
    return [
        (str(name).lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in headers.items()
    ]


def asgi_of(websocket: Any, path: str) -> tuple[Scope, Receive, Send]:
    """The ASGI triple the handler serves `websocket` with (see the module's notes)."""
    if isinstance(websocket, WebSocket):
        return websocket.scope, websocket.receive, websocket.send
    socket = OpenSocketAsgi(websocket, path)
    return socket.scope, socket.receive, socket.send
