"""voice_runtime's README Quick Example, Twilio REST included, against local fakes.

MERGE GUARD: the `importorskip` below is temporary. `initiate_outbound_call` and the
fake Twilio REST API (which answers a created call by dialling the stream URL with the
phone simulator) come from the twilio-rest branch; once merged, remove the guard and
point `answering_twilio` at that fake (the one marked place below).

The example's code is kept as written except: imports (`voice_runtime` → `fsm_voice`),
providers "offline", loopback and a port of our own instead of 0.0.0.0:8080, a socket
bound up front instead of `time.sleep(1)`, the server stopped at the end, and
`on_committed` wired through `on_stt_ready` (the example never attaches it).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fsm_voice.transports.twilio_call")  # temporary merge guard

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fsm_voice.transports.twilio_call import initiate_outbound_call

from fsm_voice.session import VoiceSession
from fsm_voice.stt import create_stt
from fsm_voice.transports.twilio_ws import register_voice_websocket
from fsm_voice.tts import create_tts

pytestmark = [pytest.mark.real_server, pytest.mark.slow]


@contextlib.contextmanager
def answering_twilio(monkeypatch: pytest.MonkeyPatch, stream_url: str) -> Iterator[object]:
    """The fake Twilio REST API; a created call is answered by the phone simulator,
    which says "Yes, I am fine." once the greeting has played. (Integrator: wire the
    twilio-rest branch's fake here.)"""
    from fsm_voice import testing

    monkeypatch.setenv("VOICE_STREAM_URL", stream_url)
    with testing.fake_twilio_rest(monkeypatch, answer_with="Yes, I am fine.") as fake:  # type: ignore[attr-defined]
        yield fake


def test_quick_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSM_VOICE_DB", str(tmp_path / "calls.db"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    servers: list[uvicorn.Server] = []
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/voice"
    with answering_twilio(monkeypatch, url):
        # 1. Create session and start WebSocket server
        session = VoiceSession()
        app = FastAPI()
        register_voice_websocket(app, session)

        def run_server() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            session.set_loop(loop)
            servers.append(uvicorn.Server(uvicorn.Config(app, log_level="warning")))
            loop.run_until_complete(servers[0].serve([listener]))

        server_thread = threading.Thread(target=run_server, daemon=True)
        server_thread.start()

        # 2. Initiate call (Twilio calls back to our /voice WebSocket)
        call_sid = initiate_outbound_call("+358401234567")
        session.call_sid = call_sid
        session.wait_for_ws_connect(timeout=30)

        # 3. Speak
        tts = create_tts(provider="offline")
        tts.speak("Hello! How are you today?", session)
        session.send_mark_and_wait("after-greeting")  # block until playback done

        # 4. Listen — persistent STT with on_committed callback
        transcript_event = threading.Event()
        heard = []

        def on_committed(text: str) -> None:
            heard.append(text)
            transcript_event.set()

        session.on_stt_ready = lambda stt: setattr(stt, "on_committed", on_committed)
        session.stt_factory = lambda: create_stt(provider="offline")
        # Transport starts STT automatically; on_committed fires for each utterance
        transcript_event.wait(timeout=30)
        print(f"Caller said: {heard}")

        # 5. Hang up
        session.request_disconnect()

        servers[0].should_exit = True
        server_thread.join(timeout=30)
    listener.close()
    assert call_sid and session.call_sid == call_sid
    assert heard and heard[0].strip()
    assert session.is_disconnected
