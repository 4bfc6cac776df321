"""Shared by the tests/test_compat_*.py files: voice_runtime's way of serving.

voice_runtime's API is thread-based: uvicorn runs on its own loop in a thread (as its
README does), consumer code blocks in threads of its own, and the phone simulator
dials over a real socket on 127.0.0.1 from the test's loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import anyio
import numpy as np
import uvicorn
from fastapi import FastAPI

from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE, encode
from fsm_voice.call.socket import MessageSocket
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.transports.twilio_ws import VoiceEndpoint, register_voice_websocket

T = TypeVar("T")


def frames(n: int, salt: int) -> bytes:
    """n distinct, quiet 160-byte frames (quiet: the scripted STT hears no speech)."""
    return b"".join(
        bytes([0xF0 + salt % 8, i % 250, (i >> 8) % 250]) + b"\xff" * 157 for i in range(n)
    )


def tone(ms: int) -> bytes:
    """A loud 400 Hz tone: speech to the scripted STT's energy endpointer."""
    t = np.arange(ms * SAMPLE_RATE // 1000) / SAMPLE_RATE
    return encode(np.rint(8000 * np.sin(2 * np.pi * 400.0 * t)).astype(np.int16))


class ThreadedServer:
    """uvicorn on a loop in a daemon thread, the way voice_runtime's README serves."""

    def __init__(self, session_or_factory: VoiceSession | Callable[[], VoiceSession]) -> None:
        self.log = MemoryEventLog()
        self.app = FastAPI()
        self.endpoint: VoiceEndpoint = register_voice_websocket(
            self.app, session_or_factory, log=self.log
        )
        self.loop = asyncio.new_event_loop()
        if isinstance(session_or_factory, VoiceSession):
            session_or_factory.set_loop(self.loop)
        # Bound and listening before the thread starts: a dial that comes first waits
        # in the backlog, so nothing has to wait for the server to be "up".
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", loop="none", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/voice"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve([self._sock]))

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join()
        self.loop.close()
        self._sock.close()

    async def on_server(self, coro: Any) -> Any:
        """Await a coroutine that must run on the server's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def wait_finished(self, count: int) -> list[str]:
        """Wait until `count` calls have ended and been logged; their call ids."""
        await self.on_server(self.endpoint.wait_finished(count))
        return list(self.endpoint.finished)

    def events(self, call_id: str, kind: str | None = None) -> list[EventRecord]:
        return [e for e in self.log.events(call_id) if kind is None or e.kind == kind]

    def all_events(self, kind: str) -> list[EventRecord]:
        return [e for call in self.log.calls() for e in self.events(call.call_id, kind)]


def phone(sock: MessageSocket, **params: str) -> PhoneSimulator:
    return PhoneSimulator(sock, SystemClock(), RandomIds(), custom_parameters=params)


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run blocking consumer code in a worker thread; give up (fail) after 30 s."""
    with anyio.fail_after(30):
        return await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=True)


FRAME = FRAME_BYTES
