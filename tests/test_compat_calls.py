"""voice_runtime consumer code on real calls: factories, STT/TTS adapters, many calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from compat_harness import ThreadedServer, frames, in_thread, phone, tone

from fsm_voice.compat.protocols import SttProvider
from fsm_voice.errors import CallHangupError
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial
from fsm_voice.stt import ScriptedStt, SttAdapter, create_stt
from fsm_voice.stt_tee import SttTee
from fsm_voice.tts import TtsAdapter, create_tts

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]


async def test_a_factory_gives_each_concurrent_call_its_own_session() -> None:
    sessions: list[VoiceSession] = []

    def new_session() -> VoiceSession:
        sessions.append(VoiceSession())
        return sessions[-1]

    with ThreadedServer(new_session) as server:
        async with dial(server.url) as sock_a, dial(server.url) as sock_b:
            sim_a, sim_b = phone(sock_a, who="a"), phone(sock_b, who="b")
            async with sim_a, sim_b:
                while len(sessions) < 2:
                    await anyio.lowlevel.checkpoint()
                for session in sessions:
                    await in_thread(session.wait_for_ws_connect, 10)

                def speak(session: VoiceSession) -> bool:
                    who = {sim_a.call_sid: 1, sim_b.call_sid: 2}[session.call_sid]
                    session.put_outbound_sync(frames(20, salt=who))
                    return session.send_mark_and_wait(f"done-{who}", timeout=30)

                async with anyio.create_task_group() as tg:
                    for session in sessions:
                        tg.start_soon(in_thread, speak, session)
        await server.wait_finished(2)
    assert bytes(sim_a.played) == frames(20, salt=1)
    assert bytes(sim_b.played) == frames(20, salt=2)
    # on the wire a mark is its label + "__" + 8 hex digits, as the seed sent it
    labels = [[name.rsplit("__", 1)[0] for name in sim.marks_echoed] for sim in (sim_a, sim_b)]
    assert labels == [["done-1"], ["done-2"]]
    assert [s.generation for s in sessions] == [1, 1]
    assert all(s.is_disconnected for s in sessions)


async def test_a_plain_session_refuses_a_second_concurrent_call() -> None:
    # voice_runtime fed both calls' audio into the one session.
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock_a:
            sim_a = phone(sock_a)
            async with sim_a:
                await in_thread(session.wait_for_ws_connect, 10)
                async with dial(server.url) as sock_b:
                    sim_b = phone(sock_b)
                    async with sim_b:
                        assert await sim_b.wait_closed() == 1000
                assert not session.is_disconnected
        calls = await server.wait_finished(2)
    busy = server.log.call(calls[0])
    assert busy is not None and busy.end_reason == "session_busy"
    assert session.generation == 1


async def test_stt_set_after_connect_commits_through_on_stt_ready() -> None:
    session = VoiceSession()
    heard: list[str] = []
    committed = threading.Event()

    def on_committed(text: str) -> None:
        heard.append(text)
        committed.set()

    def wire(stt: SttProvider) -> None:
        stt.on_committed = on_committed

    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                session.on_stt_ready = wire
                session.stt_factory = lambda: create_stt("scripted", script=["yes please"])
                while session.stt is None:
                    await anyio.lowlevel.checkpoint()
                await sim.send_audio(tone(400))
                await sim.send_silence(600)
                assert await in_thread(committed.wait, 30)
        calls = await server.wait_finished(1)
    assert heard == ["yes please"]
    kinds = [e.kind for e in server.events(calls[0]) if e.source == "stt"]
    assert kinds[:2] == ["stt_created", "state_entered"]
    assert "transcript_committed" in kinds and kinds[-1] == "stt_stopped"


async def test_listen_returns_a_transcript_then_raises_when_the_caller_hangs_up() -> None:
    session = VoiceSession(stt_factory=lambda: ScriptedStt(script=["hello"]))
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                while session.stt is None:
                    await anyio.lowlevel.checkpoint()
                stt = session.stt
                assert isinstance(stt, SttAdapter)
                outcome: list[Any] = []

                def listen_twice() -> None:
                    outcome.append(stt.listen(session, timeout=30))
                    try:
                        stt.listen(session, timeout=30)
                    except CallHangupError as e:
                        outcome.append(e)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(in_thread, listen_twice)
                    await sim.send_audio(tone(400))
                    await sim.send_silence(600)
                    while not outcome:
                        await sim.send_silence(20)
                    await sim.hangup()
        await server.wait_finished(1)
    assert outcome[0] == "hello"
    assert isinstance(outcome[1], CallHangupError)


async def test_tts_speak_queues_every_sentence_and_reports_stops() -> None:
    session = VoiceSession()
    tts = create_tts("scripted", ms_per_char=10)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)

                def consumer() -> list[dict[str, Any]]:
                    first = tts.speak("Hello there. How are you?", session)
                    session.send_mark_and_wait("spoken", timeout=30)
                    stop = threading.Event()
                    stop.set()
                    cut = tts.speak("Never heard.", session, stop_event=stop)
                    return [first, cut]

                first, cut = await in_thread(consumer)
        await server.wait_finished(1)
        after = await in_thread(tts.speak, "Too late.", session)
    assert first == {"last_spoken": "Hello there. How are you?"}
    assert cut == {"last_spoken": "", "interrupted": True}
    assert after == {"last_spoken": "", "call_disconnected": True}
    synth = tts.synthesizer
    expected = sum(synth.duration_ms(s) for s in ("Hello there.", "How are you?")) * 8  # type: ignore[attr-defined]
    assert len(sim.played) == expected


async def test_a_secondary_stt_is_teed_and_logged_without_reaching_the_call() -> None:
    heard: list[str] = []

    class BrokenStt(ScriptedStt):
        async def start(self, inbound_queue: Any) -> None:
            raise RuntimeError("secondary region down")

    session = VoiceSession(
        stt_factory=lambda: ScriptedStt(script=["primary words"]),
        stt_secondary_factory=lambda: BrokenStt(script=["ignored"]),
        on_stt_ready=lambda stt: setattr(stt, "on_committed", heard.append),
    )
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                while session.stt is None:
                    await anyio.lowlevel.checkpoint()
                assert isinstance(session.stt, SttTee)
                await sim.send_audio(tone(400))
                await sim.send_silence(600)
                while not heard:
                    await sim.send_silence(20)
        calls = await server.wait_finished(1)
    assert heard == ["primary words"]
    failed = server.events(calls[0], "secondary_failed")
    assert [(e.data["stage"], e.data["error"]) for e in failed] == [
        ("start", "RuntimeError: secondary region down")
    ]
    assert server.events(calls[0], "provider_failed") == []
    assert server.log.call(calls[0]).end_reason == "caller_hangup"  # type: ignore[union-attr]


async def test_caller_audio_nobody_reads_is_dropped_oldest_first_and_logged() -> None:
    session = VoiceSession(inbound=asyncio.Queue(10))
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                await sim.send_audio(frames(30, salt=1))
                await in_thread(session.send_mark_and_wait, "sync", 30)  # all 30 were read
                queued = [session.inbound.get_nowait() for _ in range(session.inbound.qsize())]
        calls = await server.wait_finished(1)
    assert queued == [frames(30, salt=1)[i * 160 : (i + 1) * 160] for i in range(20, 30)]
    assert [e.data for e in server.events(calls[0], "inbound_frames_dropped")] == [{"limit": 10}]
    total = server.events(calls[0], "inbound_frames_dropped_total")
    assert [e.data for e in total] == [{"frames": 20}]


@dataclass
class TelcoSession(VoiceSession):
    """voice_runtime's consumer pattern: a dataclass subclass that adds its own state."""

    greeting: str = "hello"
    served: list[str] = field(default_factory=list)

    def start(self) -> None:  # the consumer's own server start, as in the seed's README
        self.served.append("started")


async def test_a_dataclass_subclass_serves_calls_like_the_seeds_consumers() -> None:
    ended: list[int] = []
    session = TelcoSession(greeting="hi")
    session.on_disconnected = lambda: ended.append(session.generation)
    session.start()
    with ThreadedServer(session) as server:
        for _ in range(2):
            async with dial(server.url) as sock, phone(sock):
                await in_thread(session.wait_for_ws_connect, 10)
            await server.wait_finished(session.generation)
    assert (session.greeting, session.served, session.generation) == ("hi", ["started"], 2)
    assert session.is_disconnected
    assert ended == [1, 2]


class FailingSynth:
    """A synthesiser at the outermost seam whose service refuses the request."""

    name = "failing"

    async def start(self) -> None:
        pass

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield b"\xff" * 160
        raise ConnectionError("quota exceeded")

    async def stop(self) -> None:
        pass


async def test_a_tts_failure_calls_on_error_and_is_logged() -> None:
    session = VoiceSession()
    tts = TtsAdapter(synthesizer=FailingSynth())
    errors: list[str] = []
    tts.on_error = errors.append
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock):
            await in_thread(session.wait_for_ws_connect, 10)
            result = await in_thread(tts.speak, "One. Two.", session)
        calls = await server.wait_finished(1)
    assert result == {"error": "tts_failed: ConnectionError: quota exceeded", "last_spoken": ""}
    assert errors == ["tts_failed: ConnectionError: quota exceeded"]
    failed = server.events(calls[0], "provider_failed")
    assert [(e.source, e.data) for e in failed] == [
        ("tts", {"error": "tts_failed: ConnectionError: quota exceeded"})
    ]
