"""The phone simulator against a scripted server, on the virtual clock (and once for real)."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from fsm_voice.audio.wav import read_wav_as_mulaw_8k
from fsm_voice.call.socket import MemorySocket, memory_socket_pair
from fsm_voice.clock import CountingIds, SystemClock, VirtualClock
from fsm_voice.errors import SocketClosed
from fsm_voice.simulator import (
    DialRejected,
    PhoneSimulator,
    dial,
    signature_matches,
    simulate_call,
    twilio_signature,
)

Scenario = Callable[[VirtualClock, PhoneSimulator, MemorySocket], Awaitable[None]]

ACCOUNT = "AC" + "0" * 31 + "1"
CALL = "CA" + "0" * 31 + "2"
STREAM = "MZ" + "0" * 31 + "3"


def run_call(scenario: Scenario, **options: Any) -> PhoneSimulator:
    """Run `scenario` with a simulator on the virtual clock; the test plays the server."""
    sims: list[PhoneSimulator] = []

    async def main() -> None:
        clock = VirtualClock()
        client, server = memory_socket_pair()
        sim = PhoneSimulator(client, clock, CountingIds(), **options)
        sims.append(sim)
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.autojump)
            async with sim:
                await scenario(clock, sim, server)
            tg.cancel_scope.cancel()
        # MemorySocket.close() leaves the receiving stream open; drop() closes both.
        await client.drop()
        await server.drop()

    anyio.run(main)
    return sims[0]


async def recv(server: MemorySocket) -> dict[str, Any]:
    message = await server.receive()
    assert isinstance(message, str)
    data = json.loads(message)
    assert isinstance(data, dict)
    return data


async def handshake(server: MemorySocket) -> tuple[dict[str, Any], dict[str, Any]]:
    return await recv(server), await recv(server)


def media(payload: bytes, stream_sid: str = STREAM) -> str:
    body = {"payload": base64.b64encode(payload).decode()}
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": body})


def mark(name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": STREAM, "mark": {"name": name}})


def frames(n: int) -> list[bytes]:
    """n distinct 160-byte frames (frame k is all byte k), so order is checkable."""
    return [bytes([k]) * 160 for k in range(n)]


def test_handshake_is_connected_then_start() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        connected, start = await handshake(server)
        assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        assert start == {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "streamSid": STREAM,
                "accountSid": ACCOUNT,
                "callSid": CALL,
                "tracks": ["inbound"],
                "customParameters": {"lang": "en", "From": "+15550001111", "To": "+15550002222"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": STREAM,
        }

    run_call(
        scenario,
        custom_parameters={"lang": "en"},
        from_number="+15550001111",
        to_number="+15550002222",
    )


def test_media_is_paced_every_20_ms_without_drift() -> None:
    arrivals: list[tuple[int, dict[str, Any]]] = []

    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)

        async def collect() -> None:
            while True:
                message = await recv(server)
                arrivals.append((clock.now_ms(), message))

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            assert await sim.send_audio(b"\x01" * 400) == 3  # 160 + 160 + 80 padded
            assert await sim.send_audio(b"\x02" * 160 * 50) == 50  # continues the grid
            await clock.sleep(1000)  # a pause: the next burst starts when it is sent
            await sim.send_audio(b"\x03" * 160)
            await clock.sleep(1)
            tg.cancel_scope.cancel()

    run_call(scenario)
    assert len(arrivals) == 54
    times = [t for t, _ in arrivals]
    assert times[:53] == [20 * k for k in range(53)]
    assert times[53] == 20 * 52 + 1000  # sent right after the 1 s pause
    for k, (t, message) in enumerate(arrivals):
        assert message["event"] == "media"
        assert message["sequenceNumber"] == str(k + 2)  # start was 1
        assert message["streamSid"] == STREAM
        assert message["media"]["track"] == "inbound"
        assert message["media"]["chunk"] == str(k + 1)
        assert message["media"]["timestamp"] == str(t)
    payloads = [base64.b64decode(m["media"]["payload"]) for _, m in arrivals]
    assert payloads[2] == b"\x01" * 80 + b"\xff" * 80  # padded with μ-law silence
    assert all(len(p) == 160 for p in payloads)


def test_mark_is_echoed_only_after_the_audio_before_it_has_played() -> None:
    echoes: list[tuple[int, dict[str, Any]]] = []
    audio = frames(50)

    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        t0 = clock.now_ms()
        for frame in audio:
            await server.send(media(frame))
        await server.send(mark("greeting-done"))
        echo = await recv(server)
        echoes.append((clock.now_ms() - t0, echo))
        assert bytes(sim.played) == b"".join(audio)

    sim = run_call(scenario)
    assert echoes == [
        (
            1000,  # 50 frames × 20 ms: not a millisecond earlier
            {
                "event": "mark",
                "sequenceNumber": "2",
                "streamSid": STREAM,
                "mark": {"name": "greeting-done"},
            },
        )
    ]
    assert sim.marks_echoed == ["greeting-done"]


def test_played_bytes_follow_the_clock() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        for frame in frames(10):
            await server.send(media(frame))
        await sim.wait_played_bytes(160 * 6)
        # Frame k starts playing at 20·k ms: the sixth starts at 100 ms.
        assert clock.now_ms() == 100
        await clock.sleep(5)
        assert len(sim.played) == 160 * 6

    run_call(scenario)


def test_mark_on_an_empty_buffer_is_echoed_at_once() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        await clock.sleep(500)
        await server.send(mark("nothing-queued"))
        echo = await recv(server)
        assert echo["mark"] == {"name": "nothing-queued"}
        assert clock.now_ms() == 500
        await sim.wait_for_mark_echoed("nothing-queued")

    run_call(scenario)


def test_clear_drops_the_buffer_and_echoes_pending_marks() -> None:
    audio = frames(50)

    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        for frame in audio[:25]:
            await server.send(media(frame))
        await server.send(mark("half"))
        for frame in audio[25:]:
            await server.send(media(frame))
        await server.send(mark("end"))
        await clock.sleep(210)  # 11 frames have started playing
        await server.send(json.dumps({"event": "clear", "streamSid": STREAM}))
        first, second = await recv(server), await recv(server)
        assert [first["mark"]["name"], second["mark"]["name"]] == ["half", "end"]
        assert clock.now_ms() == 210  # at once, not when the audio would have ended
        await clock.sleep(2000)
        assert bytes(sim.played) == b"".join(audio[:11])  # nothing after the clear
        assert sim.cleared == 1
        assert sim.marks_echoed == ["half", "end"]
        assert sim.playback_pending_bytes == 0
        # Playback resumes with what is sent after the clear.
        await server.send(media(b"\x77" * 160))
        await server.send(mark("after"))
        await sim.wait_for_mark_echoed("after")
        assert bytes(sim.played).endswith(b"\x77" * 160)

    run_call(scenario)


def test_dtmf_message_shape() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        await sim.send_dtmf("7")
        assert await recv(server) == {
            "event": "dtmf",
            "sequenceNumber": "2",
            "streamSid": STREAM,
            "dtmf": {"track": "inbound_track", "digit": "7"},
        }
        with pytest.raises(ValueError, match="DTMF"):
            await sim.send_dtmf("x")

    run_call(scenario)


def test_hangup_sends_stop_then_closes_with_1000() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        await sim.send_silence(40)
        await recv(server), await recv(server)
        await sim.hangup()
        assert await recv(server) == {
            "event": "stop",
            "sequenceNumber": "4",
            "streamSid": STREAM,
            "stop": {"accountSid": ACCOUNT, "callSid": CALL},
        }
        with pytest.raises(SocketClosed) as closed:
            await server.receive()
        assert closed.value.code == 1000
        assert await sim.wait_closed() == 1000
        await sim.hangup()  # a second hangup does nothing
        with pytest.raises(RuntimeError):
            await sim.send_silence(20)

    sim = run_call(scenario)
    assert [m["event"] for m in sim.sent].count("stop") == 1


def test_leaving_the_context_hangs_up() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)

    sim = run_call(scenario)
    assert sim.sent[-1]["event"] == "stop"
    assert sim.close_code == 1000


def test_drop_vanishes_without_stop() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        await sim.drop()
        with pytest.raises(SocketClosed) as closed:
            await server.receive()
        assert closed.value.code == 1006
        assert await sim.wait_closed() == 1006

    sim = run_call(scenario)
    assert "stop" not in [m["event"] for m in sim.sent]


def test_server_close_is_reported_and_ends_waits() -> None:
    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        await server.send(media(b"\x05" * 160 * 100))
        await server.send(mark("never"))
        await clock.sleep(100)
        await server.close(1011, "boom")
        assert await sim.wait_closed() == 1011
        with pytest.raises(SocketClosed):
            await sim.wait_for_mark_echoed("never")
        with pytest.raises(SocketClosed):
            await sim.send_dtmf("1")

    sim = run_call(scenario)
    assert "stop" not in [m["event"] for m in sim.sent]  # the server ended the call
    assert sim.marks_echoed == []


def test_protocol_errors_are_recorded_and_ignored() -> None:
    garbage: list[str | bytes] = [
        b"\x00\x01",
        "{not json",
        "[1, 2]",
        json.dumps({"event": "play", "streamSid": STREAM}),
        media(b"\x11" * 160, stream_sid="MZ-someone-else"),
        json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "***"}}),
        json.dumps({"event": "mark", "streamSid": STREAM, "mark": {}}),
        json.dumps({"event": "media", "streamSid": STREAM}),
    ]

    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        for message in garbage:
            await server.send(message)
        await server.send(mark("fine"))
        await sim.wait_for_mark_echoed("fine")
        found = await sim.wait_for_message(lambda m: m.get("event") == "play")
        assert found == {"event": "play", "streamSid": STREAM}

    sim = run_call(scenario)
    assert len(sim.protocol_errors) == len(garbage)
    for error, needle in zip(
        sim.protocol_errors,
        ["binary", "JSON", "not an object", "'play'", "MZ-someone-else", "base64", "mark.name"],
        strict=False,
    ):
        assert needle in error
    assert sim.played == bytearray()
    assert sim.received_audio_bytes == 0
    assert len(sim.received) == len(garbage) - 3 + 1  # the JSON objects, plus the good mark


def test_recording_holds_what_the_caller_heard(tmp_path: Path) -> None:
    path = tmp_path / "heard.wav"
    audio = b"".join(frames(5))

    async def scenario(clock: VirtualClock, sim: PhoneSimulator, server: MemorySocket) -> None:
        await handshake(server)
        await server.send(media(audio))
        await server.send(mark("done"))
        await sim.wait_for_mark_echoed("done")

    run_call(scenario, record_path=path)
    assert read_wav_as_mulaw_8k(path) == audio


def test_signature_matches_twilios_documented_example() -> None:
    # The worked example in Twilio's "Webhooks security" docs
    # (https://www.twilio.com/docs/usage/security#validating-requests).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature_matches("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, params)
    assert not signature_matches(
        "12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, {**params, "To": "1"}
    )
    assert not signature_matches("12345", None, url, params)
    assert twilio_signature("12345", url) != twilio_signature("12345", url, params)


def test_real_websocket_signed_dial_and_simulated_call() -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    token = "secret-token"
    public_url = "wss://voice.example.com/voice"  # what the server validates against
    seen: list[list[dict[str, Any]]] = []

    def check_signature(connection: ServerConnection, request: Request) -> Response | None:
        if signature_matches(token, request.headers.get("X-Twilio-Signature"), public_url):
            return None
        return connection.respond(403, "bad signature\n")

    async def twilio_peer(connection: ServerConnection) -> None:
        messages: list[dict[str, Any]] = []
        seen.append(messages)
        async for raw in connection:
            message = json.loads(raw)
            messages.append(message)
            if message["event"] == "start":
                sid = message["start"]["streamSid"]
                frame = base64.b64encode(b"\x42" * 160).decode()
                await connection.send(
                    json.dumps({"event": "media", "streamSid": sid, "media": {"payload": frame}})
                )
                await connection.send(
                    json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "hi"}})
                )

    async def main() -> None:
        async with serve(twilio_peer, "127.0.0.1", 0, process_request=check_signature) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/voice"

            with pytest.raises(DialRejected) as rejected:
                async with dial(url, auth_token="wrong", signed_url=public_url):
                    pass
            assert rejected.value.status == 403

            async with dial(url, auth_token=token, signed_url=public_url) as socket:
                sim = PhoneSimulator(socket, SystemClock(), CountingIds())
                async with sim:
                    await sim.wait_for_mark_echoed("hi")
                    assert bytes(sim.played) == b"\x42" * 160
                    await sim.send_silence(40)
            assert sim.protocol_errors == []
            assert sim.close_code == 1000

            result = await simulate_call(
                url,
                seconds=0.04,
                dtmf="5",
                auth_token=token,
                signed_url=public_url,
                quiet_ms=40,
                max_drain_ms=300,
            )
            assert result.marks_echoed == ("hi",)
            assert result.bytes_played == 160
            assert result.close_code == 1000
            assert result.protocol_errors == ()
            assert result.frames_sent >= 2 + 10  # the silence, then 200 ms after the key

    anyio.run(main)
    first, second = seen
    assert [m["event"] for m in first] == ["connected", "start", "mark", "media", "media", "stop"]
    events = [m["event"] for m in second]
    assert events[:2] == ["connected", "start"] and events[-1] == "stop"
    assert "dtmf" in events and "mark" in events
