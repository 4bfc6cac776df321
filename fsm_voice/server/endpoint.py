"""The Twilio Media Streams WebSocket endpoint (`/voice`) on Starlette.

Each accepted socket gets its own `CallRuntime`; calls share only the read-only
config, the clock, the event-log writer and the stream guard (which tokens and
CallSids already opened a stream). Before a socket is accepted the endpoint checks
the upgrade (`X-Twilio-Signature`, the concurrent-call limit) and refuses a bad one
with a plain HTTP response: nothing of it reaches a call. Every way of serving
`/voice` (`serve`, `call`, voice_runtime's `register_voice_websocket`) is this
endpoint, so they all check the same things. (`fsm_voice.transports.twilio_ws` is
voice_runtime's import path for `register_voice_websocket`, in the compat wing.)
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from fsm_voice.call.config import CallConfig, Limits, SecuritySettings
from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent, CallRuntime
from fsm_voice.call.socket import CALL_ID_HEADER, CLOSE_ABNORMAL, CLOSE_NORMAL
from fsm_voice.call.stream_guard import StreamGuard
from fsm_voice.clock import Clock, IdSource
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.base import EventLog
from fsm_voice.server.upgrade import UpgradeRefusal, check_upgrade, refuse_upgrade
from fsm_voice.twilio.media_streams import MEDIA_STREAMS


class AsgiSocket:
    """`MessageSocket` over raw ASGI WebSocket messages.

    The endpoint is a plain ASGI app rather than a Starlette `WebSocket`: every media
    frame passes here, and the wrapper's per-message state checks cost more than the
    frame's own handling.
    """

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed: int | None = None

    async def receive(self) -> str | bytes:
        if self._closed is not None:
            raise SocketClosed(self._closed)
        try:
            message = await self._receive()
        except Exception as e:  # the server lost the connection under us
            self._closed = CLOSE_ABNORMAL
            raise SocketClosed(CLOSE_ABNORMAL, str(e)) from e
        if message["type"] == "websocket.receive":
            text = message.get("text")
            return text if text is not None else (message.get("bytes") or b"")
        self._closed = int(message.get("code", CLOSE_ABNORMAL))
        raise SocketClosed(self._closed, str(message.get("reason") or ""))

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise SocketClosed(self._closed)
        try:
            await self._send({"type": "websocket.send", "text": text})
        except Exception as e:  # uvicorn raises ClientDisconnected (an OSError)
            self._closed = CLOSE_ABNORMAL
            raise SocketClosed(CLOSE_ABNORMAL, str(e)) from e

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed is not None:
            return
        self._closed = code
        with contextlib.suppress(Exception):  # already gone: closing is done either way
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


@dataclass
class VoiceEndpoint:
    """The `/voice` handler: one `CallRuntime` per accepted socket.

    `security` is folded into `config` here (its stream key and token TTL), so an
    endpoint built with it never runs a call without its checks; `create_app` folds
    `limits` in. `security=None` (the library default) checks nothing and logs nothing
    about it.
    """

    log: EventLog
    clock: Clock
    ids: IdSource
    config: CallConfig = field(default_factory=CallConfig)
    agent: Agent | None = None
    machine_name: str | None = None
    machine_version: str | None = None
    on_call: Callable[[CallHandle], None] | None = None
    security: SecuritySettings | None = None
    limits: Limits = field(default_factory=Limits)
    calls: dict[str, CallRuntime] = field(default_factory=dict)  # the calls now live
    finished: list[str] = field(default_factory=list)  # call ids, in the order they ended
    refused: Counter[str] = field(default_factory=Counter)  # refused upgrades by reason
    # Sockets accepted and not yet finished, counted before any await.
    admitted: int = field(default=0, init=False)
    streams: StreamGuard | None = field(default=None, init=False)  # None: tokens unchecked
    _changed: anyio.Event | None = None  # made on the loop, when first needed

    def __post_init__(self) -> None:
        if self.security is not None:
            self.config = self.security.apply_to(self.config)
        key = self.config.stream_key
        if key is not None:
            ttl_ms = self.config.stream_token_ttl_ms
            self.streams = StreamGuard(key, self.clock, ttl_ms=ttl_ms, ids=self.ids)

    async def wait_finished(self, count: int) -> None:
        """Wait until `count` calls have finished (run to the end, log flushed)."""
        while len(self.finished) < count:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for the `/voice` WebSocket route."""
        if scope["type"] != "websocket":
            return
        if (await receive())["type"] != "websocket.connect":
            return
        refusal, admission = check_upgrade(
            scope, self.security, self.admitted, self.limits.max_concurrent_calls
        )
        if refusal is not None:
            await self._refuse(scope, send, refusal)
            return
        self.admitted += 1  # before the first await: a burst of upgrades cannot overshoot
        call_id = self.ids.new_id("FV")
        try:
            header = (CALL_ID_HEADER.lower().encode(), call_id.encode())
            await send({"type": "websocket.accept", "headers": [header]})
            await self._run_call(call_id, receive, send, admission)
        finally:
            self.admitted -= 1

    async def _run_call(
        self, call_id: str, receive: Receive, send: Send, admission: dict[str, Any] | None
    ) -> None:
        runtime = CallRuntime(
            AsgiSocket(receive, send),
            wire=MEDIA_STREAMS,
            call_id=call_id,
            clock=self.clock,
            log=self.log,
            config=self.config,
            agent=self.agent,
            machine_name=self.machine_name,
            machine_version=self.machine_version,
            admission=admission,
            streams=self.streams,
        )
        self.calls[call_id] = runtime
        try:
            if self.on_call is not None:
                self.on_call(runtime.handle)
            await runtime.run()
        finally:
            del self.calls[call_id]
            self.finished.append(call_id)
            self._notify()

    async def _refuse(self, scope: Scope, send: Send, refusal: UpgradeRefusal) -> None:
        """Answer the upgrade with an HTTP error and count it (never a call of its own)."""
        self.refused[refusal.reason] += 1
        await refuse_upgrade(scope, send, refusal, self.log, self.clock)
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
