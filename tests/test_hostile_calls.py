"""Hostile input over real sockets: no message can crash a call or reach another call.

Each bad message is a logged violation and the call goes on, or the call ends cleanly:
its row closed (end time, end reason), no traceback in the server's logs, and the
call object freed once the call is over. A failure of the call's own code ends that
call alone, with `runtime_failed` in its log.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import tempfile
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm_voice.agents.echo import echo_agent
from fsm_voice.call.config import Limits
from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import CallRuntime
from fsm_voice.call.socket import MessageSocket
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.query import call_events, track_pcm_mulaw
from fsm_voice.eventlog.records import CallRecord, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.server.endpoint import VoiceEndpoint
from fsm_voice.simulator.client import WebSocketClientSocket, dial
from fsm_voice.simulator.phone import PhoneSimulator
from tests.hostile_messages import hostile_message, nesting

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

SAID = bytes(range(160)) * 10
FOUR_HOURS_MS = 4 * 3600 * 1000  # Twilio's own cap: a timer that long pinned crashed calls
HANG_GUARD_S = 60  # only a guard against a hang; every wait is on an event


class Tracebacks(logging.Handler):
    """Every error or traceback logged by uvicorn, asyncio or anything else."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.seen.append(f"{record.name}: {record.getMessage()}")

    @contextlib.contextmanager
    def watching(self) -> Iterator[Tracebacks]:
        # uvicorn's own loggers do not propagate to the root: watch them by name.
        loggers = [logging.getLogger(name) for name in ("", "uvicorn.error")]
        for logger in loggers:
            logger.addHandler(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeHandler(self)


@dataclass
class Server:
    url: str
    endpoint: VoiceEndpoint
    log: SqliteEventLog
    tracebacks: Tracebacks
    runtimes: list[weakref.ref[CallRuntime]] = field(default_factory=list)

    def calls(self) -> list[CallRecord]:
        return list(self.log.calls())

    def events(self, call_id: str, kind: str) -> list[EventRecord]:
        return call_events(self.log, call_id, kind=kind)

    def call_of(self, sim: PhoneSimulator) -> CallRecord:
        [call] = [c for c in self.calls() if c.stream_sid == sim.stream_sid]
        return call

    def assert_clean(self) -> None:
        """Every row closed, no traceback, no failure of our own, every call freed."""
        assert self.tracebacks.seen == []
        for call in self.calls():
            assert call.ended_wall_ms is not None and call.end_reason is not None, call
            assert self.events(call.call_id, "runtime_failed") == []
        assert_freed(self.runtimes)


def assert_freed(runtimes: list[weakref.ref[CallRuntime]]) -> None:
    gc.collect()
    assert [ref for ref in runtimes if ref() is not None] == []


@contextlib.asynccontextmanager
async def serving(log: Any, limits: Limits | None = None) -> AsyncIterator[Server]:
    limits = limits or Limits(max_call_ms=FOUR_HOURS_MS)
    runtimes: list[weakref.ref[CallRuntime]] = []
    endpoint: VoiceEndpoint | None = None

    def on_call(handle: CallHandle) -> None:
        assert endpoint is not None
        runtimes.extend(weakref.ref(r) for r in endpoint.calls.values() if r.handle is handle)

    app = create_app(log, agent=echo_agent(), limits=limits, on_call=on_call)
    endpoint = app.state.voice
    async with serve_in_background(app) as running:
        with Tracebacks().watching() as tracebacks:
            yield Server(running.url, endpoint, log.inner if isinstance(log, Failing) else log,
                         tracebacks, runtimes)  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "calls.db")
    yield log
    log.close()


def phone(socket: MessageSocket) -> PhoneSimulator:
    return PhoneSimulator(socket, SystemClock(), RandomIds())


async def send_raw(socket: MessageSocket, message: str | bytes, *, as_text: bool = False) -> None:
    """Send `message` as is: bytes as a binary frame, or as a text frame (any bytes)."""
    assert isinstance(socket, WebSocketClientSocket)
    with contextlib.suppress(SocketClosed):
        if isinstance(message, bytes) and as_text:
            await socket.connection.send(message, text=True)
        else:
            await socket.send(message)  # type: ignore[arg-type]


def media(sid: str, **raw: str) -> str:
    """A media message from the stream `sid`; `raw` fields are raw JSON text."""
    fields = {"sequenceNumber": '"9"', "chunk": '"9"', "timestamp": '"180"'} | raw
    payload = raw.get("payload", '"' + "f" * 212 + '"')
    return (
        f'{{"event":"media","sequenceNumber":{fields["sequenceNumber"]},"streamSid":"{sid}",'
        f'"media":{{"track":"inbound","chunk":{fields["chunk"]},'
        f'"timestamp":{fields["timestamp"]},"payload":{payload}}}}}'
    )


def hostile_mid_call(sid: str) -> list[tuple[str | bytes, str]]:
    """(message, the violation it is) for input that must not end the call."""
    start = {"event": "start", "streamSid": sid, "start": {"streamSid": sid}}
    start["start"]["customParameters"] = {"deep": json.loads(nesting(500))}  # type: ignore[index]
    return [
        (media(sid, sequenceNumber="1e999"), "non_finite_number"),
        ('{"event":"mark","sequenceNumber":Infinity,"mark":{"name":"x"}}', "non_finite_number"),
        (media(sid, chunk="-Infinity"), "non_finite_number"),
        (media(sid, timestamp="NaN"), "non_finite_number"),
        (media(sid, chunk="1" + "0" * 30), "bad_field"),
        (media(sid, sequenceNumber='"-3"'), "bad_field"),
        (nesting(40_000), "too_deeply_nested"),
        (json.dumps(start), "too_deeply_nested"),
        ('{"event":"dtmf","dtmf":{"digit":["1"]}}', "missing_field"),
        ('{"event":"dtmf","dtmf":{"digit":"\\ud800"}}', "bad_field"),
        (media(sid, payload='"!!not base64"'), "bad_base64"),
        (b"\x00\xff binary", "binary_frame"),
        # A mark we never sent, named by a lone surrogate: logged (escaped), a violation.
        (json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "\ud800"}}),
         "unknown_mark"),
    ]  # fmt: skip


async def test_hostile_numbers_nesting_and_types_are_violations_and_the_call_goes_on(
    log: SqliteEventLog,
) -> None:
    with anyio.fail_after(HANG_GUARD_S):
        async with serving(log) as server:
            async with dial(server.url) as socket:
                sim = phone(socket)
                async with sim:
                    await sim.send_audio(SAID[:800])
                    hostile = hostile_mid_call(sim.stream_sid)
                    for message, _ in hostile:
                        await send_raw(socket, message)
                    await sim.send_audio(SAID[800:])
                    await sim.wait_played_bytes(len(SAID))  # all echoed: all read
            await server.endpoint.wait_finished(1)
            await log.flush()
            call = server.call_of(sim)
            violations = server.events(call.call_id, "protocol_violation")
            assert [v.data["reason"] for v in violations] == [reason for _, reason in hostile]
            assert call.end_reason == "caller_hangup" and call.outcome == "completed"
            assert bytes(sim.played) == SAID  # no frame lost around the bad messages
            assert track_pcm_mulaw(log, call.call_id, "caller") == SAID
            [surrogate] = [
                e for e in server.events(call.call_id, "mark_echoed") if e.data["name"] != "echo-10"
            ]
            assert surrogate.data == {"name": "\ud800"}  # stored escaped, read back as sent
            server.assert_clean()


async def test_a_text_frame_that_is_not_utf8_is_a_violation_that_ends_only_its_call(
    log: SqliteEventLog,
) -> None:
    with anyio.fail_after(HANG_GUARD_S):
        async with serving(log) as server:
            async with dial(server.url) as good_socket, dial(server.url) as bad_socket:
                good, bad = phone(good_socket), phone(bad_socket)
                async with good, bad:
                    await good.send_audio(SAID[:800])
                    await send_raw(bad_socket, b'{"event":"dtmf" \xff\xfe}', as_text=True)
                    assert await bad.wait_closed() == 1007
                    await good.send_audio(SAID[800:])
                    await good.wait_played_bytes(len(SAID))
            await server.endpoint.wait_finished(2)
            await log.flush()
            refused = server.call_of(bad)
            assert refused.end_reason == "protocol_violation"
            [violation] = server.events(refused.call_id, "protocol_violation")
            assert violation.data["reason"] == "invalid_utf8"
            assert server.call_of(good).end_reason == "caller_hangup"
            assert bytes(good.played) == SAID
            server.assert_clean()


async def test_a_call_that_never_starts_ends_without_waiting_for_an_agent(
    log: SqliteEventLog,
) -> None:
    with anyio.fail_after(HANG_GUARD_S):
        async with serving(log) as server:
            async with dial(server.url) as socket:
                await send_raw(socket, nesting(40_000))
                await socket.close()
            await server.endpoint.wait_finished(1)
            await log.flush()
            [call] = server.calls()
            assert call.end_reason == "socket_dropped"
            kinds = [e.kind for e in call_events(log, call.call_id)]
            assert "protocol_violation" in kinds and "agent_cancelled" not in kinds
            server.assert_clean()


# --- a failure of the call's own code ---


class Failing:
    """The event log, except that writing one kind of event raises once (a bug in our
    code that some input reaches: the failure has to stay inside its call)."""

    def __init__(self, inner: SqliteEventLog, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.failed = False

    def append(self, event: EventRecord) -> None:
        if event.kind == self.kind and not self.failed:
            self.failed = True
            raise RuntimeError(f"the disk caught fire writing {event.kind}")
        self.inner.append(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    ("kind", "task"), [("dtmf_received", "read_loop"), ("limit_reached", "limit")]
)
async def test_a_failure_in_the_calls_own_code_ends_only_that_call(
    log: SqliteEventLog, kind: str, task: str
) -> None:
    # max_call_ms fires the limit timer; the dtmf case sends its key long before.
    limits = Limits(max_call_ms=1500 if kind == "limit_reached" else FOUR_HOURS_MS)
    with anyio.fail_after(HANG_GUARD_S):
        async with serving(Failing(log, kind), limits) as server:
            async with dial(server.url) as bad_socket:
                bad = phone(bad_socket)
                async with bad:
                    await bad.send_audio(SAID[:160])
                    await bad.wait_played_bytes(160)
                    if kind == "dtmf_received":
                        await bad.send_dtmf("5")
                    assert await bad.wait_closed() == 1011
            # The next call on the same server is untouched.
            async with dial(server.url) as good_socket:
                good = phone(good_socket)
                async with good:
                    await good.send_audio(SAID)
                    await good.wait_played_bytes(len(SAID))
            await server.endpoint.wait_finished(2)
            await log.flush()
            failed = server.call_of(bad)
            assert (failed.end_reason, failed.outcome, failed.final_state) == (
                "error",
                "error",
                "error",
            )
            [event] = server.events(failed.call_id, "runtime_failed")
            assert event.data["task"] == task
            assert event.data["error"] == f"RuntimeError: the disk caught fire writing {kind}"
            assert event.data["at"].startswith("test_hostile_calls.py:")
            assert server.call_of(good).end_reason == "caller_hangup"
            assert bytes(good.played) == SAID
            assert server.tracebacks.seen == []
            assert_freed(server.runtimes)


# --- one call's unwritable event never fails another call ---


async def test_a_lone_surrogate_in_one_call_never_raises_in_another(
    log: SqliteEventLog,
) -> None:
    with anyio.fail_after(HANG_GUARD_S):
        async with serving(log) as server:
            async with dial(server.url) as good_socket, dial(server.url) as bad_socket:
                good, bad = phone(good_socket), phone(bad_socket)
                async with good, bad:
                    await good.send_audio(SAID[:160])
                    await bad.send_audio(SAID[:160])
                    await bad.wait_played_bytes(160)
                    bad_mark = {"event": "mark", "streamSid": bad.stream_sid}
                    await send_raw(
                        bad_socket, json.dumps(bad_mark | {"mark": {"name": "a\udfffb"}})
                    )
                    await bad.send_audio(SAID[:160])  # echoed: the mark was read before
                    await bad.wait_played_bytes(320)
                    await good.hangup()  # its flush comes after the bad row
                    await server.endpoint.wait_finished(1)
            await server.endpoint.wait_finished(2)
            await log.flush()
            assert server.call_of(good).end_reason == "caller_hangup"
            names = [
                e.data["name"] for e in server.events(server.call_of(bad).call_id, "mark_echoed")
            ]
            assert "a\udfffb" in names
            server.assert_clean()


# --- a live call fed whatever Hypothesis makes ---


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(st.tuples(hostile_message(), st.booleans()), min_size=1, max_size=10))
async def test_a_live_call_fed_hostile_messages_goes_on_or_ends_cleanly(
    messages: list[tuple[str | bytes, bool]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp, SqliteEventLog(Path(tmp) / "calls.db") as log:
        with anyio.fail_after(HANG_GUARD_S):
            async with serving(log) as server:
                async with dial(server.url) as good_socket, dial(server.url) as bad_socket:
                    good, bad = phone(good_socket), phone(bad_socket)
                    async with good, bad:
                        await good.send_audio(SAID[:800])
                        await bad.send_audio(SAID[:160])
                        for message, as_text in messages:
                            await send_raw(bad_socket, message, as_text=as_text)
                        await good.send_audio(SAID[800:])
                        await good.wait_played_bytes(len(SAID))
                await server.endpoint.wait_finished(2)
                await log.flush()
                # The bad call went on (we hung up) or the server ended it for cause.
                assert bad.close_code in (1000, 1007, 1008, 1009)
                assert server.call_of(good).end_reason == "caller_hangup"
                assert bytes(good.played) == SAID
                assert track_pcm_mulaw(log, server.call_of(good).call_id, "caller") == SAID
                server.assert_clean()


# --- memory: a call that crashed or broke the protocol is freed when it ends ---


def live_runtimes() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, CallRuntime))


async def test_calls_that_crashed_or_broke_the_protocol_are_freed(log: SqliteEventLog) -> None:
    before = live_runtimes()
    with anyio.fail_after(HANG_GUARD_S):
        async with serving(Failing(log, "dtmf_received")) as server:
            for message, as_text in [
                (media("MZ1", sequenceNumber="1e999"), False),
                (media("MZ1", chunk="Infinity"), False),
                (nesting(40_000), False),
                (b"\xff\xfe", True),
                (None, False),  # the key whose log write fails: a crash in our code
            ]:
                async with dial(server.url) as socket:
                    sim = phone(socket)
                    async with sim:
                        await sim.send_audio(SAID[:160])
                        await sim.wait_played_bytes(160)
                        if message is None:
                            await sim.send_dtmf("1")
                        else:
                            await send_raw(socket, message, as_text=as_text)
            await server.endpoint.wait_finished(5)
            await log.flush()
            assert all(call.ended_wall_ms is not None for call in server.calls())
            assert len(server.runtimes) == 5
            assert_freed(server.runtimes)
            assert live_runtimes() == before
