"""The ElevenLabs STT built by the compat factory keeps the seed's documented policy.

Against the local Scribe fake (real WebSockets on 127.0.0.1); backoff and the echo
window run on a VirtualClock that moves only when a test says so. Tests wait for
facts (events, sessions), never for time; `fail_after` only guards against a hang.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from compat_stt_harness import GUARD_S, Consumer, retry_until_error, states
from elevenlabs.realtime.connection import RealtimeConnection

import fsm_voice
from fsm_voice.clock import VirtualClock
from fsm_voice.providers.elevenlabs_stt import ElevenLabsRecognizer
from fsm_voice.stt import ELEVENLABS_SEED_POLICY, PersistentSttSession, SttAdapter, create_stt
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs, silence, tone

pytestmark = pytest.mark.anyio
PACKAGE = str(Path(fsm_voice.__file__).parent)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeElevenLabs, str]]:
    server = FakeElevenLabs(["yes please", "tuesday"])
    async with server.serve() as base_url:
        yield server, base_url


def compat_stt(base_url: str, clock: VirtualClock) -> PersistentSttSession:
    stt = create_stt("elevenlabs", api_key=API_KEY, base_url=base_url, clock=clock, environ={})
    assert isinstance(stt, PersistentSttSession)
    return stt


def say(queue: asyncio.Queue[bytes | None], audio: bytes) -> None:
    for start in range(0, len(audio), 160):
        queue.put_nowait(audio[start : start + 160])


async def test_nothing_heard_while_the_agent_speaks_reaches_the_consumer(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    clock = VirtualClock()
    stt = compat_stt(base_url, clock)
    consumer = Consumer(stt)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    await stt.start(queue)
    stt.set_speaking(True)
    say(queue, silence(100) + tone(400) + silence(400))
    # Both the interim and the committed result arrive, and are dropped.
    await consumer.until(lambda: len(consumer.kinds("transcript_discarded")) == 2)
    assert consumer.kinds("transcript_discarded") == [
        {"text": "…", "reason": "agent_speaking"},
        {"text": "yes please", "reason": "agent_speaking"},
    ]
    assert (consumer.recognizing, consumer.committed) == ([], [])
    stt.set_speaking(False)
    await clock.advance(400)  # past the echo window
    say(queue, tone(400) + silence(400))
    await consumer.until(lambda: bool(consumer.committed))
    assert (consumer.recognizing, consumer.committed) == (["…"], ["tuesday"])
    await stt.stop()
    assert len(server.sessions) == 1


async def test_set_speaking_from_a_consumer_thread_renews_after_a_long_turn(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    # The seed's consumers call set_speaking from their own threads; the end of a long
    # agent turn replaces the Scribe session, which must happen on the loop.
    server, base_url = fake
    clock = VirtualClock()
    stt = compat_stt(base_url, clock)
    consumer = Consumer(stt)
    await stt.start(asyncio.Queue())
    await anyio.to_thread.run_sync(stt.set_speaking, True)
    await clock.advance(10_000)
    await anyio.to_thread.run_sync(stt.set_speaking, False)
    with anyio.fail_after(GUARD_S):
        await server.wait_for(lambda: len(server.sessions) == 2)
    await consumer.until(lambda: states(consumer).count("streaming") == 2)
    assert consumer.errors == []
    await stt.stop()


@pytest.mark.parametrize("kind", ["rate_limited", "auth_error", "quota_exceeded", "input_error"])
async def test_terminal_errors_report_their_type_once_and_never_reconnect(
    fake: tuple[FakeElevenLabs, str], kind: str
) -> None:
    server, base_url = fake
    clock = VirtualClock()
    stt = compat_stt(base_url, clock)
    consumer = Consumer(stt)
    await stt.start(asyncio.Queue())
    server.send_error(kind)
    await consumer.until(lambda: bool(consumer.errors))
    await clock.advance(120_000)  # any retry would have gone by now
    assert consumer.errors == [kind]
    assert states(consumer)[-1] == "error"
    assert len(server.sessions) == 1
    await stt.stop()


async def test_natively_rate_limited_is_retried(fake: tuple[FakeElevenLabs, str]) -> None:
    # fsm_voice's own recogniser keeps retrying a rate limit: it passes (the upgrading
    # guide lists the difference); the compat factory passes the seed's terminal set.
    server, base_url = fake
    clock = VirtualClock()
    stt = SttAdapter(ElevenLabsRecognizer(api_key=API_KEY, base_url=base_url, clock=clock))
    consumer = Consumer(stt)
    await stt.start(asyncio.Queue())
    server.send_error("rate_limited")
    await consumer.until(lambda: "reconnecting" in states(consumer))
    await clock.advance(1000)
    await consumer.until(lambda: states(consumer)[-1] == "streaming")
    assert consumer.errors == []
    assert len(server.sessions) == 2
    await stt.stop()


async def test_the_third_failed_reconnect_reports_reconnecting_exhausted(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    clock = VirtualClock()
    stt = compat_stt(base_url, clock)
    consumer = Consumer(stt)
    await stt.start(asyncio.Queue())
    server.plan_sessions("drop", "drop", "drop", "ok")
    server.drop()
    await retry_until_error(consumer, clock)
    await consumer.until(lambda: bool(consumer.errors))
    await clock.advance(120_000)
    assert consumer.errors == ["reconnect_exhausted_after_3_attempts"]
    assert len(server.sessions) == 4  # the first, then 3 reconnects: no 4th
    await stt.stop()


async def test_three_failed_sends_in_a_row_end_the_feed(
    fake: tuple[FakeElevenLabs, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A socket that opens but cannot carry audio: the fake cannot make a live socket's
    # send fail on cue, so the SDK's send (the outermost seam) refuses, as it does when
    # its socket is gone. Sessions still open against the fake.
    async def refused(self: RealtimeConnection, data: dict[str, Any]) -> None:
        raise RuntimeError("WebSocket is not connected")

    monkeypatch.setattr(RealtimeConnection, "send", refused)
    server, base_url = fake
    clock = VirtualClock()
    stt = compat_stt(base_url, clock)
    consumer = Consumer(stt)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    await stt.start(queue)
    say(queue, tone(100))
    await retry_until_error(consumer, clock)  # each failure drops the session; one opens
    assert states(consumer).count("streaming") == 3
    say(queue, tone(100))
    await clock.advance(120_000)
    assert consumer.errors == ["feed_audio_3_consecutive_send_failures"]
    assert states(consumer)[-1] == "error"
    assert len(server.sessions) == 3
    assert server.received() == b""
    await stt.stop()


def our_tasks() -> set[asyncio.Task[Any]]:
    """Tasks running fsm_voice's code (not the fake's, not the test's)."""
    me = asyncio.current_task()
    return {
        t
        for t in asyncio.all_tasks()
        if t is not me
        and os.path.commonpath([t.get_coro().cr_code.co_filename, PACKAGE]) == PACKAGE  # type: ignore[union-attr]
    }


async def test_stop_while_a_reconnect_is_connecting_leaves_nothing_scheduled(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    clock = VirtualClock()
    stt = compat_stt(base_url, clock)
    consumer = Consumer(stt)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    await stt.start(queue)
    server.plan_sessions("stall")  # the reconnect's session never starts
    server.drop()
    await consumer.until(lambda: "reconnecting" in states(consumer))
    await clock.advance(30_000)
    await server.wait_for(lambda: len(server.sessions) == 2)
    assert states(consumer)[-1] == "connecting"
    await stt.stop()
    assert clock.next_due_ms() is None  # no retry, no connect timeout left armed
    assert our_tasks() == set()
    with anyio.fail_after(GUARD_S):
        await server.wait_for(lambda: server.sessions[1].closed_by == "client")
    assert states(consumer)[-1] == "closed"
    assert consumer.errors == []


def test_the_compat_factory_passes_the_seed_limits_and_native_keeps_its_own() -> None:
    stt = create_stt("elevenlabs", api_key="k", environ={})
    recognizer = stt.recognizer
    assert isinstance(recognizer, ElevenLabsRecognizer)
    assert recognizer.machine.max_retries == ELEVENLABS_SEED_POLICY["max_retries"] == 3
    assert recognizer.max_send_failures == 3
    assert "rate_limited" in recognizer.terminal_errors
    native = ElevenLabsRecognizer(api_key="k", environ={})
    assert native.machine.max_retries == 5
    assert native.max_send_failures is None
    assert "rate_limited" not in native.terminal_errors
