"""The call runtime with the phone simulator, in process, on the virtual clock."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from fsm_voice.call.config import CallConfig
from fsm_voice.call.handle import CallHandle, MarkOutcome
from fsm_voice.call.runtime import CallRuntime
from fsm_voice.clock import SystemClock
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.query import call_events, track_pcm_mulaw
from fsm_voice.testing import in_process_call
from fsm_voice.twilio.media_streams import MEDIA_STREAMS

pytestmark = pytest.mark.anyio


def frames(n: int, base: int = 0) -> list[bytes]:
    """n distinct 160-byte frames (no 0xFF so none is mistaken for padding)."""
    return [bytes([(base + i) % 255] * 80 + [(base + i * 7) % 255] * 80) for i in range(n)]


def kinds(call_log: list[tuple[str, str]], source: str | None = None) -> list[str]:
    return [k for s, k in call_log if source is None or s == source]


async def idle_agent(call: CallHandle) -> None:
    await call.wait_ended()


async def test_handshake_binds_the_stream_and_starts_the_agent() -> None:
    started: list[tuple[str | None, str | None, dict[str, str]]] = []

    async def agent(call: CallHandle) -> None:
        started.append((call.stream_sid, call.call_sid, call.custom_parameters))
        await call.wait_ended()

    async with in_process_call(agent, custom_parameters={"machine": "echo", "token": "t1"}) as c:
        await c.runtime.handle.wait_connected(1000)
        assert c.runtime.handle.state == "listening"
    # the stream token is the runtime's credential, not call data: the agent never sees it
    assert started == [(c.sim.stream_sid, c.sim.call_sid, {"machine": "echo"})]
    events = call_events(c.log, c.runtime.call_id)
    assert [e.kind for e in events][:6] == [
        "socket_opened",
        "timer_started",
        "connected",
        "stream_started",
        "state_entered",
        "timer_cancelled",
    ]
    call = c.log.call(c.runtime.call_id)
    assert call is not None
    assert call.stream_sid == c.sim.stream_sid and call.call_sid == c.sim.call_sid
    assert call.end_reason == "caller_hangup" and call.final_state == "ended"


async def test_inbound_frames_reach_the_call_byte_identical_and_in_order() -> None:
    heard: list[bytes] = []

    async def agent(call: CallHandle) -> None:
        async for frame in call.caller_audio():
            heard.append(frame)

    sent = frames(120)
    async with in_process_call(agent) as c:
        await c.sim.send_audio(b"".join(sent))
    assert heard == sent
    assert track_pcm_mulaw(c.log, c.runtime.call_id, "caller") == b"".join(sent)
    chunks = c.log.audio(c.runtime.call_id, "caller")
    assert [ch.first_frame for ch in chunks] == list(range(0, 120, 5))  # 100 ms chunks


async def test_outbound_audio_arrives_byte_identical_and_in_order() -> None:
    out = frames(75, base=3)

    async def agent(call: CallHandle) -> None:
        await call.send_audio(b"".join(out))
        assert await call.send_mark("done") == MarkOutcome.PLAYED
        await call.hangup()

    async with in_process_call(agent) as c:
        assert await c.wait_ended() == "agent_hangup"
    assert bytes(c.sim.played) == b"".join(out)
    assert track_pcm_mulaw(c.log, c.runtime.call_id, "agent") == b"".join(out)


async def test_a_mark_queued_after_50_frames_goes_out_after_all_50() -> None:
    outcome: list[tuple[MarkOutcome, int]] = []

    async def agent(call: CallHandle) -> None:
        t0 = c.clock.now_ms()
        await call.send_audio(b"".join(frames(50)))
        outcome.append((await call.send_mark("after-50"), c.clock.now_ms() - t0))
        await call.hangup()

    async with in_process_call(agent) as c:
        await c.wait_ended()
    kinds_sent = [m["event"] for m in c.sim.received]
    assert kinds_sent == ["media"] * 50 + ["mark"]
    # Released only once the simulator has played 50 × 20 ms.
    assert outcome[0][0] == MarkOutcome.PLAYED
    assert 1000 <= outcome[0][1] <= 1040


async def test_two_waiters_with_the_same_label_do_not_release_each_other() -> None:
    times: dict[int, int] = {}

    async def agent(call: CallHandle) -> None:
        await call.send_audio(b"".join(frames(10)))
        first = call.mark("same")
        await call.send_audio(b"".join(frames(25)))
        second = call.mark("same")
        assert await first == MarkOutcome.PLAYED
        times[1] = c.clock.now_ms()
        assert not second.done()
        assert await second == MarkOutcome.PLAYED
        times[2] = c.clock.now_ms()
        await call.hangup()

    async with in_process_call(agent) as c:
        await c.wait_ended()
    assert times[2] - times[1] >= 25 * 20 - 20


async def test_mark_timeout_releases_the_waiter_and_is_logged() -> None:
    result: list[MarkOutcome] = []

    async def agent(call: CallHandle) -> None:
        await call.send_audio(b"".join(frames(100)))  # 2 s of audio
        result.append(await call.send_mark("slow", timeout_ms=500))
        await call.hangup()

    async with in_process_call(agent) as c:
        await c.wait_ended()
    assert result == [MarkOutcome.TIMEOUT]
    released = [e.data for e in call_events(c.log, c.runtime.call_id, kind="mark_released")]
    assert released[0]["outcome"] == "timeout"
    # The late echo after the timeout is expected, not a protocol violation.
    assert not call_events(c.log, c.runtime.call_id, kind="protocol_violation")


async def test_a_mark_times_out_only_when_asked() -> None:
    async def agent(call: CallHandle) -> None:
        await call.send_audio(b"".join(frames(5)))
        assert await call.send_mark("untimed") == MarkOutcome.PLAYED
        assert await call.send_mark("timed", timeout_ms=5_000) == MarkOutcome.PLAYED
        await call.hangup()

    async with in_process_call(agent) as c:
        await c.wait_ended()
    log = call_events(c.log, c.runtime.call_id)
    timers = [(e.kind, e.data["name"]) for e in log if e.kind.startswith("timer_")]
    assert [t for t in timers if t[1].startswith("mark:")] == [
        ("timer_started", "mark:2"),
        ("timer_cancelled", "mark:2"),
    ]
    released = [e.data for e in log if e.kind == "mark_released"]
    assert [(r["name"], r["outcome"]) for r in released] == [
        ("untimed", "played"),
        ("timed", "played"),
    ]


async def test_mark_wait_after_hangup_returns_at_once() -> None:
    async with in_process_call(idle_agent) as c:
        handle = c.runtime.handle
        await handle.wait_connected()
        await c.sim.hangup()
        assert await c.wait_ended() == "caller_hangup"
        t = c.clock.now_ms()
        assert await handle.send_mark("late") == MarkOutcome.CALL_ENDED
        assert c.clock.now_ms() == t
        assert await handle.send_audio(b"\x00" * 160) is False


async def test_clear_drops_the_local_queue_and_releases_waiters() -> None:
    result: list[MarkOutcome] = []

    async def agent(call: CallHandle) -> None:
        await call.send_audio(b"".join(frames(200)))  # 4 s
        pending = call.mark("end-of-prompt")
        await c.sim.wait_played_bytes(25 * 160)  # the caller barges in 0.5 s into it
        await call.clear()
        result.append(await pending)
        await c.sim.wait_for_message(lambda m: m["event"] == "clear")
        await call.hangup()

    async with in_process_call(agent) as c:
        await c.wait_ended()
    assert result == [MarkOutcome.CLEARED]
    sent = [m["event"] for m in c.sim.received]
    assert "clear" in sent
    assert len(c.sim.played) < 200 * 160  # most of the prompt never played
    events = call_events(c.log, c.runtime.call_id)
    dropped = [e.data for e in events if e.kind == "outbound_dropped"]
    assert dropped and dropped[0]["frames"] + sent.count("media") == 200


async def test_dtmf_reaches_callbacks_and_iterators_in_order() -> None:
    via_callback: list[str] = []
    via_iterator: list[str] = []

    async def agent(call: CallHandle) -> None:
        call.on_dtmf(via_callback.append)
        async for digit in call.dtmf():
            via_iterator.append(digit)

    async with in_process_call(agent) as c:
        for digit in "12#":
            await c.sim.send_dtmf(digit)
    assert via_callback == via_iterator == ["1", "2", "#"]


async def test_socket_drop_without_stop_ends_the_call_cleanly() -> None:
    ended: list[str] = []

    async def agent(call: CallHandle) -> None:
        call.on_end(ended.append)
        await call.wait_ended()

    async with in_process_call(agent) as c:
        await c.runtime.handle.wait_connected()
        await c.sim.send_audio(b"".join(frames(5)))
        await c.sim.drop()
        assert await c.wait_ended() == "socket_dropped"
    assert ended == ["socket_dropped"]
    call = c.log.call(c.runtime.call_id)
    assert call is not None and call.end_reason == "socket_dropped"


async def test_server_requested_hangup_closes_the_socket() -> None:
    async def agent(call: CallHandle) -> None:
        await call.hangup("goodbye")

    async with in_process_call(agent) as c:
        assert await c.sim.wait_closed() == 1000
        assert await c.wait_ended() == "goodbye"


async def test_agent_failure_is_an_event_and_the_call_ends_in_error() -> None:
    async def agent(call: CallHandle) -> None:
        raise ValueError("bug in user code")

    async with in_process_call(agent) as c:
        assert await c.wait_ended() == "error"
    failed = call_events(c.log, c.runtime.call_id, kind="agent_failed")
    assert "bug in user code" in failed[0].data["error"]
    assert c.runtime.machine.state == "error"


async def test_no_start_times_out_with_a_policy_close() -> None:
    config = CallConfig(connect_timeout_ms=3000)
    async with in_process_call(idle_agent, config=config, start=False) as c:
        assert await c.wait_ended() == "no_stream"
        assert c.clock.now_ms() == 3000
        with pytest.raises(SocketClosed) as closed:
            await c.phone_socket.receive()
        assert closed.value.code == 1008


MALFORMED: list[tuple[str | bytes, str]] = [
    ("{not json", "invalid_json"),
    (b"\x00\x01binary", "binary_frame"),
    ('"a string"', "not_an_object"),
    ("[1, 2]", "not_an_object"),
    ('{"event": "teleport"}', "unknown_event"),
    ('{"event": "media", "media": {"payload": "!!notbase64"}}', "bad_base64"),
    ('{"event": "media"}', "missing_field"),
    ('{"event": "mark", "mark": {}}', "missing_field"),
    ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "bad_field"),
    ('{"event": "media", "sequenceNumber": "x", "media": {"payload": ""}}', "bad_field"),
    ('{"event": "media", "media": {"payload": "", "chunk": "1.5"}}', "bad_field"),
    ('{"event": "media", "media": {"payload": "", "timestamp": true}}', "bad_field"),
    ('{"event": "media", "streamSid": 5, "media": {"payload": ""}}', "bad_field"),
    ('{"event": "media", "media": {"payload": 160}}', "missing_field"),
]


@pytest.mark.parametrize(("message", "reason"), MALFORMED)
async def test_malformed_input_is_a_violation_and_the_call_goes_on(
    message: str | bytes, reason: str
) -> None:
    heard: list[bytes] = []

    async def agent(call: CallHandle) -> None:
        async for frame in call.caller_audio():
            heard.append(frame)

    async with in_process_call(agent) as c:
        await c.sim.send_audio(b"".join(frames(2)))
        await c.phone_socket.send(message)
        await c.sim.send_audio(b"".join(frames(2, base=9)))
    assert heard == frames(2) + frames(2, base=9)  # nothing lost around the bad message
    violations = call_events(c.log, c.runtime.call_id, kind="protocol_violation")
    assert [v.data["reason"] for v in violations] == [reason]
    assert c.runtime.end_reason == "caller_hangup"


async def test_media_before_start_is_a_violation() -> None:
    async with in_process_call(idle_agent, start=False) as c:
        media = {"event": "media", "streamSid": "MZx", "media": {"payload": "AAAA"}}
        await c.phone_socket.send(json.dumps(media))
        await c.phone_socket.send(json.dumps({"event": "stop", "streamSid": "MZx"}))
        await c.wait_ended()
    violations = call_events(c.log, c.runtime.call_id, kind="protocol_violation")
    assert [v.data["reason"] for v in violations] == ["media_before_start"]


async def test_duplicate_start_is_recorded_once_and_does_not_restart_the_agent() -> None:
    starts: list[str] = []

    async def agent(call: CallHandle) -> None:
        starts.append(call.call_id)
        await call.wait_ended()

    async with in_process_call(agent) as c:
        await c.runtime.handle.wait_connected()
        again = {
            "event": "start",
            "streamSid": c.sim.stream_sid,
            "start": {"streamSid": c.sim.stream_sid, "callSid": c.sim.call_sid},
        }
        await c.phone_socket.send(json.dumps(again))
        await c.sim.send_silence(40)
    assert len(starts) == 1
    reasons = [
        e.data["reason"] for e in call_events(c.log, c.runtime.call_id, kind="protocol_violation")
    ]
    assert reasons == ["duplicate_start"]


async def test_a_foreign_stream_sid_is_dropped_and_a_second_stream_closes_the_socket() -> None:
    heard: list[bytes] = []

    async def agent(call: CallHandle) -> None:
        call.on_caller_audio(heard.append)
        await call.wait_ended()

    async with in_process_call(agent) as c:
        await c.runtime.handle.wait_connected()
        media = {"event": "media", "streamSid": "MZintruder", "media": {"payload": "AAAA"}}
        await c.phone_socket.send(json.dumps(media))
        await c.sim.send_silence(20)
        other = {"event": "start", "streamSid": "MZother", "start": {"streamSid": "MZother"}}
        await c.phone_socket.send(json.dumps(other))
        assert await c.sim.wait_closed() == 1008
    assert await c.wait_ended() == "protocol_violation"
    assert heard == [b"\xff" * 160]  # the intruder's frame never reached the agent
    reasons = [
        e.data["reason"] for e in call_events(c.log, c.runtime.call_id, kind="protocol_violation")
    ]
    assert reasons == ["stream_sid_mismatch", "duplicate_start"]


async def test_sequence_and_chunk_gaps_are_detected() -> None:
    async with in_process_call(idle_agent, start=False) as c:
        sid = "MZ1"
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": sid,
            "start": {"streamSid": sid},
        }
        await c.phone_socket.send(json.dumps(start))

        def media(seq: int, chunk: int) -> str:
            return json.dumps(
                {
                    "event": "media",
                    "streamSid": sid,
                    "sequenceNumber": str(seq),
                    "media": {
                        "track": "inbound",
                        "chunk": str(chunk),
                        "timestamp": "0",
                        "payload": "AAAA",
                    },
                }
            )

        for seq, chunk in [(2, 1), (3, 2), (6, 5), (5, 4)]:
            await c.phone_socket.send(media(seq, chunk))
        await c.phone_socket.send(
            json.dumps({"event": "stop", "streamSid": sid, "sequenceNumber": "7"})
        )
        await c.wait_ended()
    events = call_events(c.log, c.runtime.call_id, source="transport")
    got = [(e.kind, e.data.get("missing")) for e in events if "gap" in e.kind or "order" in e.kind]
    assert got == [
        ("sequence_gap", 2),
        ("chunk_gap", 2),
        ("sequence_out_of_order", None),
        ("chunk_out_of_order", None),
    ]


async def test_too_many_violations_close_the_socket_with_a_policy_code() -> None:
    config = CallConfig(max_violations=5)
    async with in_process_call(idle_agent, config=config) as c:
        await c.runtime.handle.wait_connected()
        for _ in range(5):
            await c.phone_socket.send("garbage")
        assert await c.sim.wait_closed() == 1008
        assert await c.wait_ended() == "protocol_violation"


async def test_the_same_call_twice_gives_the_same_event_log() -> None:
    async def agent(call: CallHandle) -> None:
        async for frame in call.caller_audio():
            await call.send_audio(frame)
            if frame[0] % 5 == 0:
                call.mark(f"m{frame[0]}")

    logs = []
    for _ in range(2):
        async with in_process_call(agent) as c:
            await c.sim.send_audio(b"".join(frames(40)))
            await c.sim.send_dtmf("5")
        logs.append(
            [(e.seq, e.t_ms, e.kind, e.data) for e in call_events(c.log, c.runtime.call_id)]
        )
    assert logs[0] == logs[1]
    assert len(logs[0]) > 40


class QueueSocket:
    """Messages from an asyncio.Queue, as uvicorn hands them over: a receive with a
    message waiting returns it without yielding to other tasks."""

    def __init__(self, messages: list[str]) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        for message in messages:
            self.inbox.put_nowait(message)
        self.sent: list[str] = []

    async def receive(self) -> str | bytes:
        if self.inbox.empty():
            raise SocketClosed(1000)
        return await self.inbox.get()

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


async def test_the_agent_hears_a_frame_that_arrives_with_the_start() -> None:
    """Media read right behind `start` reaches an agent that subscribes at once."""
    heard: list[bytes] = []

    async def agent(call: CallHandle) -> None:
        call.on_caller_audio(heard.append)
        await call.wait_ended()

    sid = "MZ1"
    first = frames(1)[0]
    start = {"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": {"streamSid": sid}}
    media = {
        "event": "media",
        "sequenceNumber": "2",
        "streamSid": sid,
        "media": {"chunk": "1", "payload": base64.b64encode(first).decode()},
    }
    stop = {"event": "stop", "sequenceNumber": "3", "streamSid": sid}
    socket = QueueSocket([json.dumps(start), json.dumps(media), json.dumps(stop)])
    log = MemoryEventLog()
    runtime = CallRuntime(
        socket, wire=MEDIA_STREAMS, call_id="FV1", clock=SystemClock(), log=log, agent=agent
    )
    assert await runtime.run() == "caller_hangup"
    assert heard == [first]
