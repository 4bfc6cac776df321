"""VoiceSession behaves as voice_runtime's did where the seed was right (issue 11, part 2).

Behaviours of a live call run over a real socket (the phone simulator dials a uvicorn
server on 127.0.0.1); the rest use the session's public API alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Iterator

import pytest
from compat_harness import FRAME, ThreadedServer, frames, in_thread, phone
from fastapi import FastAPI

from fsm_voice.audio.frames import silence
from fsm_voice.call.config import CallConfig
from fsm_voice.clock import CountingIds
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.session import (
    CallHangupError,
    CallNotAnsweredError,
    MissingStreamUrlError,
    VoiceSession,
)
from fsm_voice.simulator.client import dial
from fsm_voice.stt import ScriptedStt
from fsm_voice.transports.twilio_ws import REST_CLOSE_WAIT_S, register_voice_websocket


# --- the seed's fields and names ---
def test_the_seed_fields_are_there() -> None:
    session = VoiceSession()
    assert (session.call_sid, session.stream_sid, session.caller_number) == (None, None, None)
    assert isinstance(session.inbound, asyncio.Queue)
    assert isinstance(session.outbound, asyncio.Queue)
    stt = ScriptedStt()
    session.stt = stt  # settable, as the seed's field was
    assert session.stt is stt
    fields = {f.name: str(f.type) for f in dataclasses.fields(VoiceSession)}
    assert "SttProvider" in fields["stt"] and "Any" not in fields["stt"]


def test_the_seed_exceptions_come_from_the_session_module() -> None:
    assert "hung up" in str(CallHangupError())
    assert "VOICE_STREAM_URL" in str(MissingStreamUrlError())
    assert "30000 ms" in str(CallNotAnsweredError(30_000))


# --- lifecycle ---
def test_signal_disconnected_fires_on_disconnected_once() -> None:
    session = VoiceSession()
    fired: list[bool] = []
    session.on_disconnected = lambda: fired.append(True)
    session.signal_disconnected()
    session.signal_disconnected()
    assert fired == [True] and session.is_disconnected
    session.signal_ws_connected("MZ2")  # the next call
    session.signal_disconnected()
    assert fired == [True, True]


def test_reset_forgets_the_stream_and_call_sids() -> None:
    session = VoiceSession(call_sid="CA1")
    session.signal_ws_connected("MZ1")
    session.reset()
    assert (session.stream_sid, session.call_sid) == (None, None)


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop running in a thread of its own, as a transport's is."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def test_clear_inbound_from_a_thread_returns_with_the_queue_empty(
    running_loop: asyncio.AbstractEventLoop,
) -> None:
    session = VoiceSession()
    session.set_loop(running_loop)
    for _ in range(50):
        session.put_inbound(b"\x00" * FRAME)

    async def queued() -> int:  # runs after the puts: the loop takes work in order
        return session.inbound.qsize()

    assert asyncio.run_coroutine_threadsafe(queued(), running_loop).result(10) == 50
    session.clear_inbound()
    assert session.inbound.empty()  # already, not once the loop gets round to it


# --- marks ---
@pytest.mark.anyio
@pytest.mark.real_server
async def test_marks_go_out_with_a_unique_suffix_and_never_cross() -> None:
    # Two waits on one label: each is released by its own echo only (seed NC-236).
    session = VoiceSession(mark_ids=CountingIds())
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def speak(salt: int) -> tuple[bool, int]:
                    session.put_outbound_sync(frames(25, salt=salt))
                    played = session.send_mark_and_wait("tts_complete", timeout=30)
                    return played, len(sim.played)

                first = await in_thread(speak, 1)
                second = await in_thread(speak, 2)
        await server.wait_finished(1)
    assert (first, second) == ((True, 25 * FRAME), (True, 50 * FRAME))
    names = [m["mark"]["name"] for m in sim.received if m["event"] == "mark"]
    assert names == ["tts_complete__00000001", "tts_complete__00000002"]
    assert all(re.fullmatch(r"tts_complete__[0-9a-f]{8}", n) for n in names)


@pytest.mark.anyio
@pytest.mark.real_server
async def test_a_mark_wait_that_times_out_on_a_live_call_raises_timeout_error() -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def wait_too_short() -> None:
                    session.put_outbound_sync(frames(500, salt=3))  # 10 s of audio
                    session.send_mark_and_wait("late", timeout=0.2)

                with pytest.raises(TimeoutError, match="'late'"):
                    await in_thread(wait_too_short)
                assert not session.is_disconnected
        await server.wait_finished(1)


@pytest.mark.anyio
@pytest.mark.real_server
async def test_a_mark_waiter_released_by_the_hangup_sees_the_call_ended() -> None:
    session = VoiceSession()
    seen: list[tuple[bool, bool]] = []
    waiting = threading.Event()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def consumer() -> None:
                    session.put_outbound_sync(frames(1500, salt=4))  # 30 s: never played out
                    waiting.set()
                    played = session.send_mark_and_wait("never", timeout=None)
                    seen.append((played, session.is_disconnected))  # at once, no waiting

                thread = threading.Thread(target=consumer)
                thread.start()
                await in_thread(waiting.wait)
                await sim.wait_for_message(lambda m: m["event"] == "mark")
                await sim.hangup()
                await in_thread(thread.join)
        await server.wait_finished(1)
    assert seen == [(False, True)]


# --- outbound audio ---
@pytest.mark.anyio
@pytest.mark.real_server
async def test_audio_in_odd_pieces_plays_byte_exact_and_pads_only_the_end() -> None:
    session = VoiceSession()
    utterance = frames(7, salt=5)[:1100]  # 6.875 frames
    pieces = [utterance[i : i + 100] for i in range(0, len(utterance), 100)]
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def speak() -> bool:
                    for piece in pieces:  # a TTS's chunks: not multiples of 160 bytes
                        session.put_outbound_sync(piece)
                    return session.send_mark_and_wait("end", timeout=30)

                assert await in_thread(speak) is True
                assert await in_thread(speak) is True  # a second utterance
        await server.wait_finished(1)
    padded = utterance + silence(20)[: 7 * FRAME - len(utterance)]
    assert bytes(sim.played) == padded + padded


# --- the REST-hangup grace ---
def test_the_compat_hangup_grace_is_the_seeds_five_seconds() -> None:
    endpoint = register_voice_websocket(FastAPI(), VoiceSession(), log=MemoryEventLog())
    assert REST_CLOSE_WAIT_S == 5.0
    assert endpoint.config.hangup_grace_ms == 5_000
    assert CallConfig().hangup_grace_ms == 2_000  # the native default stays shorter
    mine = CallConfig(hangup_grace_ms=750)
    endpoint = register_voice_websocket(
        FastAPI(), VoiceSession(), log=MemoryEventLog(), config=mine
    )
    assert endpoint.config.hangup_grace_ms == 750
