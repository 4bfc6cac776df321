"""Abuse limits over real sockets: message size, concurrent calls, call length, idle
streams. Each ends only the call that broke it, cleanly, with an event in the log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from fsm_voice.agents.echo import echo_agent
from fsm_voice.call.config import Limits
from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent
from fsm_voice.call.socket import MessageSocket
from fsm_voice.clock import Clock, RandomIds, SystemClock, VirtualClock
from fsm_voice.errors import ConfigError
from fsm_voice.eventlog.query import call_events
from fsm_voice.eventlog.records import CallRecord, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.server import RunningServer, create_app, serve_in_background
from fsm_voice.server.endpoint import VoiceEndpoint
from fsm_voice.simulator.client import DialRejected, dial
from fsm_voice.simulator.phone import PhoneSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

SAID = bytes(range(160)) * 10


class Server:
    def __init__(self, running: RunningServer, endpoint: VoiceEndpoint, log: SqliteEventLog):
        self.running = running
        self.endpoint = endpoint
        self.log = log
        self.url = running.url

    def call(self, call_id: str) -> CallRecord:
        call = self.log.call(call_id)
        assert call is not None
        return call

    def events(self, call_id: str, kind: str) -> list[EventRecord]:
        return call_events(self.log, call_id, kind=kind)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "calls.db")
    yield log
    log.close()


@asynccontextmanager
async def serving(
    log: SqliteEventLog, limits: Limits, agent: Agent, clock: Clock | None = None
) -> AsyncIterator[Server]:
    app = create_app(log, agent=agent, clock=clock, limits=limits)
    async with serve_in_background(app) as running:
        yield Server(running, app.state.voice, log)


def phone(socket: MessageSocket) -> PhoneSimulator:
    return PhoneSimulator(socket, SystemClock(), RandomIds())


class Answered:
    """An agent that records each call it answers and the keys it hears, then waits."""

    def __init__(self) -> None:
        self.handles: list[CallHandle] = []
        self.keys: list[str] = []
        self.changed = anyio.Event()

    async def __call__(self, call: CallHandle) -> None:
        self.handles.append(call)
        self._notify()
        async for key in call.dtmf():
            self.keys.append(key)
            self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait(self, calls: int = 0, keys: int = 0) -> None:
        while len(self.handles) < calls or len(self.keys) < keys:
            await self.changed.wait()


# --- maximum message size ---


async def test_an_oversized_message_closes_only_its_socket_with_1009(log: SqliteEventLog) -> None:
    limits = Limits(max_message_bytes=4096)
    async with serving(log, limits, echo_agent(mark_every=10)) as server:
        async with dial(server.url) as good_socket, dial(server.url) as bad_socket:
            good, bad = phone(good_socket), phone(bad_socket)
            async with good, bad:
                await good.send_audio(SAID[:800])
                await bad.send_audio(SAID[:160])
                await bad.wait_played_bytes(160)
                await bad_socket.send('{"event":"media","media":{"payload":"' + "A" * 8192 + '"}}')
                assert await bad.wait_closed() == 1009
                await good.send_audio(SAID[800:])
                await good.wait_played_bytes(len(SAID))
        await server.endpoint.wait_finished(2)
    by_stream = {c.stream_sid: c for c in server.log.calls()}
    assert bytes(good.played) == SAID
    assert by_stream[good.stream_sid].end_reason == "caller_hangup"
    flooded = by_stream[bad.stream_sid]
    assert flooded.end_reason == "message_too_big"
    [limit] = server.events(flooded.call_id, "limit_reached")
    assert limit.data == {"limit": "max_message_bytes", "max_bytes": 4096}
    assert [e.data["code"] for e in server.events(flooded.call_id, "socket_closed")] == [1009]


# --- maximum concurrent calls ---


async def test_the_call_past_the_limit_is_refused_with_503_and_the_others_go_on(
    log: SqliteEventLog,
) -> None:
    async with serving(log, Limits(max_concurrent_calls=2), echo_agent()) as server:
        async with dial(server.url) as first_socket, dial(server.url) as second_socket:
            first, second = phone(first_socket), phone(second_socket)
            async with first, second:
                await first.send_audio(SAID[:800])
                with pytest.raises(DialRejected) as refused:
                    async with dial(server.url):
                        pass
                assert refused.value.status == 503
                await first.send_audio(SAID[800:])
                await second.send_audio(SAID)
                await first.wait_played_bytes(len(SAID))
                await second.wait_played_bytes(len(SAID))
        await server.endpoint.wait_finished(2)
        # The slots are free again: the next call gets in.
        async with dial(server.url) as socket:
            third = phone(socket)
            async with third:
                await third.send_audio(SAID[:160])
                await third.wait_played_bytes(160)
        await server.endpoint.wait_finished(3)
        await server.log.flush()
        assert bytes(first.played) == bytes(second.played) == SAID
        assert [server.call(c).end_reason for c in server.endpoint.finished] == [
            "caller_hangup"
        ] * 3
        assert server.endpoint.refused == {"too_many_calls": 1}
        [counted] = server.log.refusals()  # counted, never a call of its own
        assert (counted.reason, counted.status, counted.count) == ("too_many_calls", 503, 1)
        assert len(server.log.calls()) == 3


async def test_a_burst_of_upgrades_never_overshoots_the_limit(log: SqliteEventLog) -> None:
    agent = Answered()
    async with serving(log, Limits(max_concurrent_calls=3), agent) as server:
        outcomes: list[str] = []
        hang_up = anyio.Event()

        async def caller() -> None:
            try:
                async with dial(server.url) as socket, phone(socket):
                    outcomes.append("in")
                    await hang_up.wait()
            except DialRejected as e:
                outcomes.append(str(e.status))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(caller)
            await agent.wait(calls=3)
            while len(outcomes) < 10:
                await anyio.lowlevel.checkpoint()
            hang_up.set()
        assert sorted(outcomes) == ["503"] * 7 + ["in"] * 3
        await server.endpoint.wait_finished(3)
        assert server.endpoint.refused == {"too_many_calls": 7}


# --- maximum call duration and idle streams (on the server's virtual clock) ---


async def test_a_call_ends_at_its_maximum_duration_on_the_calls_clock(log: SqliteEventLog) -> None:
    clock, agent = VirtualClock(), Answered()
    limits = Limits(max_call_ms=60_000)
    async with serving(log, limits, agent, clock) as server:
        async with dial(server.url) as socket:
            sim = phone(socket)
            async with sim:
                await agent.wait(calls=1)
                await sim.send_dtmf("1")  # the caller is active: only the length ends it
                await agent.wait(keys=1)
                await clock.advance(59_999)
                assert not agent.handles[0].ended
                await clock.advance(1)
                assert await sim.wait_closed() == 1000
        await server.endpoint.wait_finished(1)
    call_id = server.endpoint.finished[0]
    assert server.call(call_id).end_reason == "max_call_duration"
    [limit] = server.events(call_id, "limit_reached")
    assert (limit.t_ms, limit.data) == (60_000, {"limit": "max_call_ms", "limit_ms": 60_000})


async def test_an_idle_stream_ends_after_the_timeout_since_its_last_message(
    log: SqliteEventLog,
) -> None:
    clock, agent = VirtualClock(), Answered()
    async with serving(log, Limits(idle_stream_ms=5_000), agent, clock) as server:
        async with dial(server.url) as socket:
            sim = phone(socket)
            async with sim:
                await agent.wait(calls=1)
                await clock.advance(3_000)
                await sim.send_dtmf("5")  # a message at 3 s: idle from there on
                await agent.wait(keys=1)
                await clock.advance(4_999)  # 7.999 s: 4.999 s quiet
                assert not agent.handles[0].ended
                await clock.advance(1)
                assert await sim.wait_closed() == 1000
        await server.endpoint.wait_finished(1)
    call_id = server.endpoint.finished[0]
    assert server.call(call_id).end_reason == "idle_timeout"
    [limit] = server.events(call_id, "limit_reached")
    assert (limit.t_ms, limit.data) == (8_000, {"limit": "idle_stream_ms", "limit_ms": 5_000})


async def test_limits_off_by_default_leave_a_quiet_call_alone(log: SqliteEventLog) -> None:
    clock, agent = VirtualClock(), Answered()
    async with serving(log, Limits(), agent, clock) as server:
        async with dial(server.url) as socket:
            sim = phone(socket)
            async with sim:
                await agent.wait(calls=1)
                await clock.advance(5 * 3_600_000)  # five quiet hours
                assert not agent.handles[0].ended
        await server.endpoint.wait_finished(1)
    call_id = server.endpoint.finished[0]
    assert server.call(call_id).end_reason == "caller_hangup"
    assert server.events(call_id, "limit_reached") == []


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ConfigError, match="max_call_ms"):
        Limits(max_call_ms=-1)
    with pytest.raises(ConfigError, match="max_message_bytes"):
        Limits(max_message_bytes=0)
