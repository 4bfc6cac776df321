"""VoiceSession over a real socket: voice_runtime's API, without its known defects.

Each defect test names the voice_runtime behaviour it would catch.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import anyio
import pytest
from compat_harness import FRAME, ThreadedServer, frames, in_thread, phone

from fsm_voice.errors import CallNotAnsweredError
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial
from fsm_voice.stt import ScriptedStt

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]


def media_and_marks(received: list[dict[str, Any]]) -> list[str]:
    """Media and marks as sent; a mark by its label (its wire name less the suffix)."""
    return [m["event"] if m["event"] == "media" else f"mark:{label(m)}" for m in received]


def label(mark: dict[str, Any]) -> str:
    name: str = mark["mark"]["name"]
    assert re.fullmatch(r".+__[0-9a-f]{8}", name), name  # the seed's wire shape
    return name.rsplit("__", 1)[0]


async def test_a_mark_waits_for_the_audio_queued_before_it() -> None:
    # voice_runtime sent marks from their own queue at once: the echo came back
    # before the audio in front of it had played.
    session = VoiceSession()
    audio = frames(50, salt=1)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def consumer() -> tuple[bool, int]:
                    session.put_outbound_sync(audio)
                    played = session.send_mark_and_wait("after-audio", timeout=30)
                    return played, len(sim.played)

                played, heard_at_release = await in_thread(consumer)
        await server.wait_finished(1)
    assert played is True
    assert heard_at_release == len(audio)
    assert media_and_marks(sim.received) == ["media"] * 50 + ["mark:after-audio"]


async def test_a_mark_wait_after_hangup_returns_at_once() -> None:
    # voice_runtime queued the mark and waited out the whole timeout.
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock):
            await in_thread(session.wait_for_ws_connect, 10)
        await server.wait_finished(1)
        assert session.is_disconnected
        assert await in_thread(session.send_mark_and_wait, "late", None) is False
        assert session.outbound_pending == 0


async def test_a_mark_wait_is_released_when_the_caller_hangs_up() -> None:
    session = VoiceSession()
    waiting = threading.Event()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def consumer() -> bool:
                    session.put_outbound_sync(frames(3000, salt=2))  # a minute of audio
                    waiting.set()
                    return session.send_mark_and_wait("never-played", timeout=None)

                async with anyio.create_task_group() as tg:
                    result: list[bool] = []

                    async def wait_mark() -> None:
                        result.append(await in_thread(consumer))

                    tg.start_soon(wait_mark)
                    await in_thread(waiting.wait)
                    await sim.wait_played_bytes(FRAME)
                    await sim.hangup()
        await server.wait_finished(1)
    assert result == [False]


async def test_wait_for_ws_connect_raises_call_not_answered() -> None:
    session = VoiceSession()
    with pytest.raises(CallNotAnsweredError, match="within 50 ms"):
        session.wait_for_ws_connect(timeout=0.05)


async def test_a_stale_generation_does_not_hang_up_the_next_call() -> None:
    # voice_runtime's request_disconnect had no generation: a late hang-up meant for
    # the previous call ended the next one.
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock):
            await in_thread(session.wait_for_ws_connect, 10)
        first = session.generation
        await server.wait_finished(1)
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                second = session.generation

                def stale_then_mark() -> bool:
                    session.request_disconnect(first)
                    session.put_outbound_sync(frames(5, salt=3))
                    return session.send_mark_and_wait("still-here", timeout=30)

                assert await in_thread(stale_then_mark) is True
                session.request_disconnect(second)
                assert await sim.wait_closed() == 1000
        calls = await server.wait_finished(2)
    assert (first, second) == (1, 2)
    assert [e.data for e in server.events(calls[1], "stale_disconnect_ignored")] == [
        {"generation": 1}
    ]
    assert server.log.call(calls[1]).end_reason == "session_disconnect"  # type: ignore[union-attr]


async def test_a_malformed_message_does_not_end_the_call() -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                await sock.send("{not json")
                await sock.send(json.dumps({"event": "media", "media": "oops"}))

                def round_trip() -> bool:
                    session.put_outbound_sync(frames(5, salt=4))
                    return session.send_mark_and_wait("alive", timeout=30)

                assert await in_thread(round_trip) is True
                assert not session.is_disconnected
        calls = await server.wait_finished(1)
    assert len(server.events(calls[0], "protocol_violation")) == 2
    assert server.log.call(calls[0]).end_reason == "caller_hangup"  # type: ignore[union-attr]


async def test_a_duplicate_start_does_not_start_a_second_stt() -> None:
    created: list[ScriptedStt] = []

    def factory() -> ScriptedStt:
        created.append(ScriptedStt())
        return created[-1]

    session = VoiceSession(stt_factory=factory)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                start = next(m for m in sim.sent if m["event"] == "start")
                await sock.send(json.dumps(start))

                def round_trip() -> bool:
                    session.put_outbound_sync(frames(5, salt=5))
                    return session.send_mark_and_wait("after-dup", timeout=30)

                assert await in_thread(round_trip) is True
        calls = await server.wait_finished(1)
    assert len(created) == 1
    violations = server.events(calls[0], "protocol_violation")
    assert [v.data["reason"] for v in violations] == ["duplicate_start"]
    assert created[0].recognizer.machine.state == "closed"  # type: ignore[attr-defined]


class FailingStt:
    """An STT whose start fails after taking a resource (like a half-open socket)."""

    def __init__(self) -> None:
        self.on_committed: Any = None
        self.on_recognizing: Any = None
        self.on_error: Any = None
        self.resource_open = False
        self.stopped = 0

    def set_speaking(self, speaking: bool) -> None:
        pass

    async def start(self, inbound_queue: Any) -> None:
        self.resource_open = True
        raise ConnectionError("401 unauthorized")

    async def stop(self) -> None:
        self.resource_open = False
        self.stopped += 1


async def test_a_failed_stt_start_is_reported_and_leaks_nothing() -> None:
    # voice_runtime let the exception kill the STT task silently, socket left open.
    stt = FailingStt()
    errors: list[str] = []

    def ready(provider: Any) -> None:
        provider.on_error = errors.append

    session = VoiceSession(stt_factory=lambda: stt, on_stt_ready=ready)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def round_trip() -> bool:
                    session.put_outbound_sync(frames(5, salt=6))
                    return session.send_mark_and_wait("call-goes-on", timeout=30)

                assert await in_thread(round_trip) is True
        calls = await server.wait_finished(1)
    assert errors == ["ConnectionError: 401 unauthorized"]
    assert (stt.resource_open, stt.stopped) == (False, 1)
    assert session.stt is None
    failed = server.events(calls[0], "provider_failed")
    assert [(e.source, e.data["stage"]) for e in failed] == [("stt", "start")]


async def test_reset_stops_the_stt_and_drains_the_caller_audio() -> None:
    session = VoiceSession(stt_factory=ScriptedStt)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                stt = session.stt
                assert isinstance(stt, ScriptedStt)
                await in_thread(session.reset)
                assert session.stt is None
                assert stt.recognizer.machine.state == "closed"  # type: ignore[attr-defined]
                assert session.inbound.empty()
        await server.wait_finished(1)


async def test_reset_drains_queued_audio_and_releases_mark_waits() -> None:
    # voice_runtime's reset left queued marks and clear requests for the next call.
    session = VoiceSession()
    session.put_outbound_sync(b"\x00" * 480)
    session.put_inbound(b"\x01" * 160)
    session.signal_ws_connected("MZ1")  # as a transport would, with nothing forwarding
    released: list[bool] = []
    waiter = threading.Thread(target=lambda: released.append(session.send_mark_and_wait("m")))
    waiter.start()
    while session.outbound_pending < 2:  # the waiter's mark is queued behind the audio
        await anyio.lowlevel.checkpoint()
    session.reset()
    waiter.join()
    assert released == [False]
    assert session.outbound_pending == 0
    assert session.inbound.empty()
    assert not session.is_connected


async def test_barge_in_clears_audio_still_queued_here() -> None:
    # voice_runtime's clear only told Twilio: audio still in its own queue played on.
    session = VoiceSession()
    for _ in range(5):
        session.put_outbound_sync(b"\x00" * 160)
    assert session.outbound_pending == 5
    session.request_clear_buffer()
    assert session.outbound_pending == 0


async def test_barge_in_clears_the_platform_buffer_and_releases_the_mark() -> None:
    session = VoiceSession()
    audio = frames(1500, salt=7)  # 30 s: still playing when the clear arrives
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def speak_then_wait() -> bool:
                    session.put_outbound_sync(audio)
                    return session.send_mark_and_wait("end-of-prompt", timeout=None)

                async with anyio.create_task_group() as tg:
                    result: list[bool] = []

                    async def wait_mark() -> None:
                        result.append(await in_thread(speak_then_wait))

                    tg.start_soon(wait_mark)
                    mark = await sim.wait_for_message(lambda m: m["event"] == "mark")
                    assert label(mark) == "end-of-prompt"
                    await sim.wait_played_bytes(10 * FRAME)
                    session.request_clear_buffer()
                    await sim.wait_for_mark_echoed(mark["mark"]["name"])
        await server.wait_finished(1)
    assert result == [False]
    assert sim.cleared == 1
    assert len(sim.played) < len(audio)


async def test_a_transport_reading_the_queues_gets_marks_only_after_their_audio() -> None:
    # The transport-side API (get_outbound, get_pending_mark, signal_mark_received)
    # for code that runs its own transport, as voice_runtime's did.
    session = VoiceSession()
    session.set_loop(asyncio.get_running_loop())
    session.signal_ws_connected("MZ1")
    session.put_outbound_sync(b"\x01" * 160)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(session.send_mark_and_wait("m")))
    waiter.start()
    while session.outbound_pending < 2:
        await anyio.lowlevel.checkpoint()
    mark = asyncio.ensure_future(session.get_pending_mark())
    await anyio.lowlevel.checkpoint()
    assert not mark.done()  # the audio in front of it has not been taken
    assert await session.get_outbound() == b"\x01" * 160
    next_audio = asyncio.ensure_future(session.get_outbound())
    wire_name = await mark
    assert re.fullmatch(r"m__[0-9a-f]{8}", wire_name)
    assert not next_audio.done()  # the mark is never handed out as audio
    next_audio.cancel()
    session.signal_mark_received("m")  # the label is not the mark: nothing is released
    assert waiter.is_alive()
    session.signal_mark_received(wire_name)
    await anyio.to_thread.run_sync(waiter.join)
    assert result == [True]
