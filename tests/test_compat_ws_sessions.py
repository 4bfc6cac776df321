"""register_voice_websocket drives any object with the session's members, over real calls.

A seed-style session written here (not fsm_voice's VoiceSession, not a mock) and a
VoiceSession subclass: what the transport does with each is what the seed's did.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

import pytest
from compat_harness import FRAME, ThreadedServer, frames, in_thread, phone

from fsm_voice.compat.bridge import is_session_factory
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]


class SeedStyleSession:
    """The members voice_runtime's transport used, implemented the seed's way: separate
    audio and mark queues, a mark echo sets the event of its name. Callable on purpose:
    it must still be taken for a session, not a factory."""

    def __init__(self) -> None:
        self.call_sid: str | None = None
        self.stream_sid: str | None = None
        self.inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.outbound: asyncio.Queue[bytes] = asyncio.Queue()
        self.marks: asyncio.Queue[str] = asyncio.Queue()
        self.stt: Any = None
        self.stt_factory: Any = None
        self.stt_secondary_factory: Any = None
        self.on_stt_ready: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.caller_frames: list[bytes] = []
        self.tapped: list[bytes] = []
        self.echoed: list[str] = []
        self.connected = threading.Event()
        self.disconnects = 0
        self.ended = threading.Event()

    def __call__(self) -> None:
        raise AssertionError("a session is not a factory")

    def set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def put_inbound(self, data: bytes | None) -> None:
        if data is not None:
            self.caller_frames.append(data)

    def tap_caller(self, chunk: bytes) -> None:
        self.tapped.append(chunk)

    def signal_ws_connected(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        self.connected.set()

    def signal_disconnected(self) -> None:
        self.disconnects += 1
        self.ended.set()

    def signal_mark_received(self, name: str) -> None:
        self.echoed.append(name)

    async def get_outbound(self) -> bytes:
        return await self.outbound.get()

    async def get_pending_mark(self) -> str:
        return await self.marks.get()


async def test_a_seed_style_session_is_served_the_seed_way() -> None:
    session = SeedStyleSession()
    assert not is_session_factory(session)
    caller_audio = frames(5, salt=1)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.connected.wait, 10)
                assert session.call_sid == sim.call_sid and session.stream_sid == sim.stream_sid
                await sim.send_audio(caller_audio)

                assert session.loop is not None  # the transport gave it its loop
                await in_thread(
                    session.loop.call_soon_threadsafe, session.outbound.put_nowait, frames(3, 2)
                )
                await sim.wait_played_bytes(3 * FRAME)
                await in_thread(
                    session.loop.call_soon_threadsafe, session.marks.put_nowait, "m__0a"
                )
                await sim.wait_for_mark_echoed("m__0a")
        await server.wait_finished(1)  # every message the phone sent has been handled
    assert b"".join(session.caller_frames) == caller_audio
    assert session.tapped == session.caller_frames
    assert bytes(sim.played) == frames(3, 2)
    assert session.echoed == ["m__0a"]  # the name it gave, as it gave it
    assert session.disconnects == 1


class FakeStt:
    def __init__(self) -> None:
        self.on_committed: Any = None
        self.on_recognizing: Any = None
        self.on_error: Any = None
        self.started_with: asyncio.Queue[bytes | None] | None = None
        self.stopped = 0

    def set_speaking(self, speaking: bool) -> None:
        pass

    async def start(self, inbound_queue: asyncio.Queue[bytes | None]) -> None:
        self.started_with = inbound_queue

    async def stop(self) -> None:
        self.stopped += 1


async def test_a_seed_style_session_gets_its_stt_started_and_stopped() -> None:
    session = SeedStyleSession()
    made: list[FakeStt] = []
    session.stt_factory = lambda: made.append(FakeStt()) or made[-1]
    ready: list[Any] = []
    session.on_stt_ready = ready.append
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock):
            await in_thread(session.connected.wait, 10)
        await server.wait_finished(1)
    assert len(made) == 1 and ready == made
    assert made[0].started_with is session.inbound
    assert made[0].stopped == 1
    assert session.stt is None  # the call's STT goes with the call


async def test_a_stream_that_ends_before_start_tells_the_idle_session() -> None:
    # The seed's transport signalled a disconnect on `stop` whether or not the stream
    # had started; a consumer waiting on the session hears of it.
    session = SeedStyleSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            await sock.send(json.dumps({"event": "connected", "protocol": "Call"}))
            await sock.send(json.dumps({"event": "stop", "streamSid": "MZ0"}))
        await server.wait_finished(1)
    assert session.disconnects == 1
    assert not session.connected.is_set()


async def test_a_stream_that_never_starts_leaves_a_busy_session_alone() -> None:
    session = VoiceSession()
    ended: list[bool] = []
    session.on_disconnected = lambda: ended.append(True)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                async with dial(server.url) as stray:
                    await stray.send(json.dumps({"event": "connected", "protocol": "Call"}))
                await server.wait_finished(1)
                assert not session.is_disconnected and ended == []
        await server.wait_finished(2)
    assert ended == [True]


class RecordingSession(VoiceSession):
    """A subclass that sees every caller frame (voice_runtime users did this)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_seen: list[bytes] = []

    def put_inbound(self, data: bytes | None) -> None:
        if data is not None:
            self.frames_seen.append(data)
        super().put_inbound(data)


async def test_caller_frames_go_through_an_overridden_put_inbound() -> None:
    session = RecordingSession()
    audio = frames(4, salt=3)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                await sim.send_audio(audio)
        await server.wait_finished(1)  # every message the phone sent has been handled
    assert b"".join(session.frames_seen) == audio


async def test_an_empty_media_payload_is_no_frame() -> None:
    session = RecordingSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                empty = {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": ""}
                await sock.send(json.dumps({"event": "media", "media": empty}))
                one = base64.b64encode(frames(1, salt=4)).decode()
                real = {"track": "inbound", "chunk": "2", "timestamp": "20", "payload": one}
                await sock.send(json.dumps({"event": "media", "media": real}))
        await server.wait_finished(1)  # every message the phone sent has been handled
    assert session.frames_seen == [frames(1, salt=4)]
