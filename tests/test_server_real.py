"""The real thing: uvicorn on 127.0.0.1, dialled by the phone simulator over TCP."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import uvicorn

from fsm_voice.agents.echo import echo_agent
from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.eventlog.query import call_events, track_pcm_mulaw
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.server import (
    RunningServer,
    create_app,
    inherited_socket,
    serve_in_background,
    uvicorn_config,
)
from fsm_voice.server.endpoint import VoiceEndpoint
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]


def frames(n: int, salt: int) -> bytes:
    """n distinct 160-byte frames, different per caller (`salt`)."""
    return b"".join(
        bytes([(salt * 31 + i) % 250, (i >> 8) % 250, i % 250]) + bytes([salt % 250]) * 157
        for i in range(n)
    )


class Harness:
    def __init__(self, server: RunningServer, endpoint: VoiceEndpoint, log: SqliteEventLog):
        self.server = server
        self.endpoint = endpoint
        self.log = log
        self.clock = SystemClock()

    def phone(self, socket: object, **params: str) -> PhoneSimulator:
        return PhoneSimulator(socket, self.clock, RandomIds(), custom_parameters=params)  # type: ignore[arg-type]


@pytest.fixture
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    agent: Agent = getattr(request, "param", echo_agent(mark_every=10))
    log = SqliteEventLog(tmp_path / "calls.db")
    app = create_app(log, agent=agent, machine_name="test")
    try:
        async with serve_in_background(app) as server:
            yield Harness(server, app.state.voice, log)
    finally:
        log.close()


async def test_echo_call_over_a_real_socket(harness: Harness) -> None:
    said = frames(50, salt=1)
    async with dial(harness.server.url) as socket:
        sim = harness.phone(socket, who="alice")
        async with sim:
            await sim.send_audio(said)
            await sim.wait_played_bytes(len(said))
            await sim.wait_for_mark_echoed("echo-50")
    await harness.endpoint.wait_finished(1)
    assert bytes(sim.played) == said
    call_id = harness.endpoint.finished[0]
    call = harness.log.call(call_id)
    assert call is not None
    assert (call.stream_sid, call.end_reason) == (sim.stream_sid, "caller_hangup")
    assert call.custom_parameters == {"who": "alice"}
    assert track_pcm_mulaw(harness.log, call_id, "caller") == said
    assert track_pcm_mulaw(harness.log, call_id, "agent") == said
    echoed = [e.data["name"] for e in call_events(harness.log, call_id, kind="mark_echoed")]
    assert echoed == [f"echo-{n}" for n in range(10, 51, 10)]


async def test_fifty_concurrent_calls_account_for_every_frame(harness: Harness) -> None:
    results: dict[int, tuple[bytes, bytes, str]] = {}

    async def caller(n: int) -> None:
        said = frames(25, salt=n)
        async with dial(harness.server.url) as socket:
            sim = harness.phone(socket, caller=str(n))
            async with sim:
                await sim.send_audio(said)
                await sim.wait_played_bytes(len(said))
        results[n] = (said, bytes(sim.played), sim.stream_sid)

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(caller, n)
    await harness.endpoint.wait_finished(50)
    assert sorted(results) == list(range(50))
    for said, heard, _ in results.values():
        assert heard == said  # every frame echoed, none mixed up between calls
    by_stream = {c.stream_sid: c for c in harness.log.calls()}
    for n, (said, _, stream_sid) in results.items():
        call = by_stream[stream_sid]
        assert call.custom_parameters == {"caller": str(n)}
        assert track_pcm_mulaw(harness.log, call.call_id, "caller") == said
        assert call.end_reason == "caller_hangup"


async def test_a_second_call_leaves_the_first_untouched(harness: Harness) -> None:
    first_said, second_said = frames(40, salt=7), frames(10, salt=8)
    async with dial(harness.server.url) as first_socket:
        first = harness.phone(first_socket)
        async with first:
            await first.send_audio(first_said[: 20 * 160])
            async with dial(harness.server.url) as second_socket:
                second = harness.phone(second_socket)
                async with second:
                    await second.send_audio(second_said)
                    await second.wait_played_bytes(len(second_said))
                    await second_socket.send("{broken")  # the second call misbehaves
            await first.send_audio(first_said[20 * 160 :])
            await first.wait_played_bytes(len(first_said))
    await harness.endpoint.wait_finished(2)
    assert bytes(first.played) == first_said
    assert bytes(second.played) == second_said
    by_stream = {c.stream_sid: c.call_id for c in harness.log.calls()}
    first_events = call_events(harness.log, by_stream[first.stream_sid])
    assert not [e for e in first_events if e.kind == "protocol_violation"]
    second_violations = call_events(
        harness.log, by_stream[second.stream_sid], kind="protocol_violation"
    )
    assert [e.data["reason"] for e in second_violations] == ["invalid_json"]


async def test_malformed_messages_over_the_wire_keep_the_call_going(harness: Harness) -> None:
    said = frames(10, salt=3)
    async with dial(harness.server.url) as socket:
        sim = harness.phone(socket)
        async with sim:
            await sim.send_audio(said[:800])
            for bad in ["{", "[]", '{"event":"zap"}', '{"event":"media","media":{"payload":"%%"}}']:
                await socket.send(bad)
            await sim.send_audio(said[800:])
            await sim.wait_played_bytes(len(said))
    await harness.endpoint.wait_finished(1)
    assert bytes(sim.played) == said
    reasons = [
        e.data["reason"]
        for e in call_events(harness.log, harness.endpoint.finished[0], kind="protocol_violation")
    ]
    assert reasons == ["invalid_json", "not_an_object", "unknown_event", "bad_base64"]


async def test_a_dropped_socket_ends_the_call_cleanly(harness: Harness) -> None:
    async with dial(harness.server.url) as socket:
        sim = harness.phone(socket)
        async with sim:
            await sim.send_audio(frames(5, salt=4))
            await sim.drop()
    await harness.endpoint.wait_finished(1)
    call = harness.log.call(harness.endpoint.finished[0])
    assert call is not None and call.end_reason == "socket_dropped"
    assert not harness.endpoint.calls


async def hang_up_after_a_prompt(call: CallHandle) -> None:
    await call.send_audio(frames(10, salt=5))
    await call.send_mark("prompt-done")
    await call.hangup("done")


@pytest.mark.parametrize("harness", [hang_up_after_a_prompt], indirect=True)
async def test_server_requested_hangup_over_the_wire(harness: Harness) -> None:
    async with dial(harness.server.url) as socket:
        sim = harness.phone(socket)
        async with sim:
            assert await sim.wait_closed() == 1000
    await harness.endpoint.wait_finished(1)
    assert bytes(sim.played) == frames(10, salt=5)
    call = harness.log.call(harness.endpoint.finished[0])
    assert call is not None and call.end_reason == "done"


async def test_binary_frames_are_violations_not_crashes(harness: Harness) -> None:
    async with dial(harness.server.url) as socket:
        sim = harness.phone(socket)
        async with sim:
            await sim.send_audio(frames(2, salt=6))
            await socket.connection.send(b"\x00\x01\x02")  # type: ignore[attr-defined]
            await sim.send_audio(frames(2, salt=6))
            await sim.wait_played_bytes(4 * 160)
    await harness.endpoint.wait_finished(1)
    events = call_events(harness.log, harness.endpoint.finished[0], kind="protocol_violation")
    assert [e.data["reason"] for e in events] == ["binary_frame"]


def consumer_thread_agent(results: list[object]) -> Agent:
    """An agent whose logic runs in a plain thread, through the *_sync twins."""

    async def agent(call: CallHandle) -> None:
        def work() -> None:
            call.wait_connected_sync(5_000)
            call.send_audio_sync(frames(15, salt=9))
            results.append(call.send_mark_sync("spoken"))
            results.append(call.send_mark_sync("nothing-queued"))
            call.hangup_sync("thread_done")
            results.append(call.wait_ended_sync(5))
            results.append(call.send_mark_sync("after-hangup"))

        await anyio.to_thread.run_sync(work)

    return agent


_thread_results: list[object] = []


@pytest.mark.parametrize("harness", [consumer_thread_agent(_thread_results)], indirect=True)
async def test_sync_twins_drive_a_call_from_a_consumer_thread(harness: Harness) -> None:
    async with dial(harness.server.url) as socket:
        sim = harness.phone(socket)
        async with sim:
            assert await sim.wait_closed() == 1000
    await harness.endpoint.wait_finished(1)
    assert bytes(sim.played) == frames(15, salt=9)
    assert _thread_results == ["played", "played", "thread_done", "call_ended"]


async def test_sync_twins_refuse_to_run_on_the_event_loop(harness: Harness) -> None:
    refused: list[str] = []

    async def check(call: CallHandle) -> None:
        try:
            call.send_mark_sync("x")
        except RuntimeError as e:
            refused.append(str(e))

    harness.endpoint.agent = check
    async with dial(harness.server.url) as socket, harness.phone(socket):
        pass
    await harness.endpoint.wait_finished(1)
    assert refused and "await the async one" in refused[0]


async def test_connections_on_an_inherited_tcp_listener_are_tcp_with_nodelay(
    tmp_path: Path,
) -> None:
    """`serve --fd`: a TCP listener's connections send small messages at once (no Nagle)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    sock = inherited_socket(os.dup(listener.fileno()))
    listener.close()
    assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
    log = SqliteEventLog(tmp_path / "calls.db")
    server = uvicorn.Server(uvicorn_config(create_app(log), loop="none"))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:
                await anyio.lowlevel.checkpoint()
            async with dial(f"ws://127.0.0.1:{port}/voice"):
                await anyio.sleep(0.05)
                served = [o for o in gc.get_objects() if _serves(o, port)]
                assert len(served) == 1
                served_socket = served[0].get_extra_info("socket")
                assert served_socket.family == socket.AF_INET
                assert served_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            server.should_exit = True
    finally:
        log.close()


def _serves(obj: object, port: int) -> bool:
    """Is `obj` the server side's transport of a connection to `port`?"""
    if not issubclass(type(obj), asyncio.Transport):  # type(): dead weak proxies raise
        return False
    name = obj.get_extra_info("sockname")
    return isinstance(name, tuple) and name[1] == port
