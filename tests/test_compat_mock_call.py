"""The mock providers and the mock transport on real calls over 127.0.0.1.

- `MockStt`/`MockTts` in a VoiceSession served by `register_voice_websocket`, dialled
  by the phone simulator: the mark wait, injected transcripts, the caller's audio read.
- `FakeWsBridge` as Twilio's side of a stream: hang-ups from either side.
- `initiate_mock_call` + `create_text_relay`: two voice processes (two servers) talk
  without Twilio, through `/incoming`, a routed `/voice/<route>` that checks stream
  tokens, and `/test/inject/<route>`.
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import parse_qs

import pytest
from compat_harness import ThreadedServer, in_thread, phone
from starlette.requests import Request
from starlette.responses import Response

from fsm_voice.call.config import SecuritySettings
from fsm_voice.mock import MockStt, MockTts
from fsm_voice.security import Secret
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial
from fsm_voice.stt import create_stt
from fsm_voice.transports.mock_bridge import (
    FakeWsBridge,
    cleanup_bridges,
    create_text_relay,
    initiate_mock_call,
)
from fsm_voice.transports.twilio_call import build_stream_twiml
from fsm_voice.transports.twilio_ws import register_voice_websocket
from fsm_voice.tts import create_tts

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

STREAM_KEY = "mock-test-stream-key"


@pytest.fixture(autouse=True)
def _no_twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_AUTH_TOKEN", "FSM_VOICE_STREAM_KEY", "VOICE_STREAM_URL", "TRANSPORT"):
        monkeypatch.delenv(name, raising=False)


class Heard:
    """An `on_committed` a test thread can wait on."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.arrived = threading.Event()

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.arrived.set()


def mock_stt_for(session: VoiceSession, heard: Heard) -> list[MockStt]:
    """Give `session` a mock STT per call, wired to `heard`; the list collects them."""
    made: list[MockStt] = []

    def factory() -> MockStt:
        made.append(create_stt(provider="mock"))
        made[-1].on_committed = heard
        return made[-1]

    session.stt_factory = factory
    return made


async def test_mock_providers_on_a_call_dialled_by_the_phone() -> None:
    # A 4-frame queue: a second of caller audio overflows it unless the STT reads it.
    session = VoiceSession(inbound=asyncio.Queue(4))
    heard = Heard()
    stts = mock_stt_for(session, heard)
    tts = create_tts(provider="mock")
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock) as sim:
            await in_thread(session.wait_for_ws_connect, 10)
            session.put_outbound_sync(b"\x7f" * 8000)  # a second of agent audio, then speak
            result = await in_thread(tts.speak, "Hello there", session)
            # speak returned once the call echoed its mark: after the audio before it played
            assert len(sim.played) == 8000
            assert result == {"last_spoken": "Hello there", "interrupted": False}
            await sim.send_silence(1000)
            stts[0].inject("yes please")
            await in_thread(heard.arrived.wait, 10)
            session.request_disconnect()
            await sim.wait_closed()
        (call_id,) = await server.wait_finished(1)
        after = await in_thread(tts.speak, "anyone there?", session)
    assert heard.texts == ["yes please"]
    assert tts.spoken == ["Hello there"]
    assert after == {"last_spoken": "", "call_disconnected": True}
    committed = server.events(call_id, "transcript_committed")
    assert [e.data["text"] for e in committed] == ["yes please"]
    assert [e.data["provider"] for e in server.events(call_id, "stt_stopped")] == ["MockStt"]
    assert server.events(call_id, "inbound_frames_dropped") == []
    assert session.inbound_dropped == 0


async def test_a_fake_bridge_is_twilios_side_of_a_stream() -> None:
    session = VoiceSession()
    tts = MockTts()
    with ThreadedServer(session) as server:
        bridge = FakeWsBridge()
        bridge.start(server.url)
        await in_thread(session.wait_for_ws_connect, 10)
        assert session.call_sid == bridge.call_sid
        assert bridge.call_sid.startswith("CAMOCK_")
        assert session.stream_sid == bridge.stream_sid
        assert bridge.stream_sid.startswith("MZ")
        result = await in_thread(tts.speak, "Hi", session)  # the bridge echoes the mark
        assert result == {"last_spoken": "Hi", "interrupted": False}
        assert [m.startswith("tts_complete") for m in bridge.marks_echoed] == [True]
        await in_thread(bridge.stop)  # the bridge hangs up: stop, then close 1000
        (call_id,) = await server.wait_finished(1)
    assert [e.data["reason"] for e in server.events(call_id, "call_ended")] == ["caller_hangup"]
    assert bridge.wait_finished(0)
    assert bridge.close_code == 1000
    assert bridge.error is None
    assert session.is_disconnected


async def test_a_fake_bridge_ends_when_the_server_hangs_up() -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        bridge = FakeWsBridge(call_sid="CAMOCK_custom")
        bridge.start(server.url)
        await in_thread(session.wait_for_ws_connect, 10)
        assert session.call_sid == "CAMOCK_custom"
        session.request_disconnect()
        assert await in_thread(bridge.wait_finished, 20)
        await server.wait_finished(1)
    assert bridge.error is None
    assert bridge.close_code is not None


def test_a_fake_bridge_that_cannot_dial_keeps_the_error() -> None:
    bridge = FakeWsBridge()
    bridge.start("ws://127.0.0.1:9/voice")  # the discard port: nothing listens there
    assert bridge.wait_finished(20)
    assert bridge.error is not None
    assert not bridge.wait_connected(0)
    bridge.stop()  # after the end: nothing to do, returns


class Peer:
    """A consumer process for the mock transport: /incoming, a routed /voice and
    /test/inject, a session with a mock STT. Its /voice checks stream tokens."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.session = VoiceSession()
        self.heard = Heard()
        mock_stt_for(self.session, self.heard)
        self.stt_ready = threading.Event()  # injected text is safe to send from here on
        self.session.on_stt_ready = lambda stt: self.stt_ready.set()
        self.server = ThreadedServer(self.session)
        security = SecuritySettings(stream_key=Secret(STREAM_KEY))
        self.endpoint = register_voice_websocket(
            self.server.app,
            self.session,
            path=f"/voice/{route}",
            log=self.server.log,
            security=security,
        )
        self.server.app.add_route("/incoming", self.incoming, methods=["POST"])
        self.server.app.add_route(f"/test/inject/{route}", self.inject, methods=["POST"])
        self.incoming_calls: list[dict[str, list[str]]] = []

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def incoming(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        self.incoming_calls.append(form)
        stream_url = f"ws://127.0.0.1:{self.server.port}/voice/{self.route}"
        environ = {"FSM_VOICE_STREAM_KEY": STREAM_KEY}
        # Not bound to the CallSid: a token binds only letters and digits, not CAMOCK_….
        twiml = build_stream_twiml(stream_url, environ=environ)
        return Response(twiml, media_type="application/xml")

    async def inject(self, request: Request) -> Response:
        stt = self.session.stt
        if not isinstance(stt, MockStt):
            return Response("no mock STT running", status_code=409)
        stt.inject(str((await request.json())["text"]))
        return Response(status_code=204)


async def test_two_processes_talk_through_the_mock_transport() -> None:
    callee = Peer("route-b")
    caller_session = VoiceSession()  # the caller's own /voice: its marks come back there
    with callee.server, ThreadedServer(caller_session) as caller_server:
        caller_url = f"http://127.0.0.1:{caller_server.port}"
        call_sid = await in_thread(initiate_mock_call, callee.http_url, caller_url)
        try:
            await in_thread(callee.session.wait_for_ws_connect, 10)
            await in_thread(caller_session.wait_for_ws_connect, 10)
            # The TwiML's stream token came back in `start`: /voice/route-b admitted it.
            assert callee.session.call_sid == caller_session.call_sid == call_sid
            assert callee.incoming_calls[0]["CallSid"] == [call_sid]
            relay = create_text_relay(callee.http_url)
            try:
                assert relay.url == f"{callee.http_url}/test/inject/route-b"
                await in_thread(callee.stt_ready.wait, 10)
                tts = MockTts(on_spoken=relay)
                result = await in_thread(tts.speak, "Hello, is this Bob?", caller_session)
                await in_thread(callee.heard.arrived.wait, 10)
            finally:
                relay.close()
        finally:
            await in_thread(cleanup_bridges)  # both bridges hang up
        await callee.server.on_server(callee.endpoint.wait_finished(1))
        await caller_server.wait_finished(1)
    assert result == {"last_spoken": "Hello, is this Bob?", "interrupted": False}
    assert callee.heard.texts == ["Hello, is this Bob?"]
    assert callee.session.is_disconnected
    assert caller_session.is_disconnected


async def test_a_relay_to_a_failing_peer_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    peer = Peer("route-x")
    with peer.server:
        relay = create_text_relay(peer.http_url + "/")
        try:
            # Not routed (no mock call yet): the plain /test/inject, which this peer lacks.
            assert relay.url == f"{peer.http_url}/test/inject"
            await in_thread(relay, "nobody hears this")
        finally:
            relay.close()
    assert "relaying 17 chars" in caplog.text


def test_is_mock_transport_reads_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsm_voice.transports.mock_bridge import is_mock_transport

    assert not is_mock_transport()
    monkeypatch.setenv("TRANSPORT", " Mock ")
    assert is_mock_transport()
    monkeypatch.setenv("TRANSPORT", "twilio")
    assert not is_mock_transport()
