"""voice_runtime's README Quick Example, Twilio REST included, against local fakes.

`initiate_outbound_call` goes through the real `twilio` SDK to `tests/fake_twilio_api.py`
(a local HTTP fake of Twilio's API, reached via TWILIO_API_BASE), which answers the
call the way Twilio does: it dials the TwiML's stream URL with the phone simulator,
signed, with the call's `<Parameter>`s, and the callee says "Yes, I am fine." after
the greeting.

The example's code is kept as written except: imports (`voice_runtime` → `fsm_voice`),
providers "offline", loopback and a port of our own instead of 0.0.0.0:8080, a socket
bound up front instead of `time.sleep(1)`, the server stopped at the end, and
`on_committed` wired through `on_stt_ready` (the example never attaches it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import uvicorn
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI

from fsm_voice.clock import SystemClock
from fsm_voice.providers import create_synthesizer
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.caller_script import parse_caller_script
from fsm_voice.stt import create_stt
from fsm_voice.transports.twilio_call import initiate_outbound_call
from fsm_voice.transports.twilio_ws import register_voice_websocket
from fsm_voice.tts import create_tts
from tests.fake_twilio_api import Answer, FakeTwilioApi

pytestmark = [pytest.mark.real_server, pytest.mark.slow]

ACCOUNT = "AC" + "7" * 32
TOKEN = "quick-example-token"

CALLEE = """
name: quick-example-callee
machine: quick-example
steps:
  - wait_prompt: {timeout_ms: 30000}
  - silence: {ms: 1500}
  - say: "Yes, I am fine."
  - silence: {ms: 2000}
"""


@contextlib.contextmanager
def answering_twilio(
    monkeypatch: pytest.MonkeyPatch, stream_url: str
) -> Iterator[tuple[FakeTwilioApi, BlockingPortal]]:
    """The fake Twilio API on a loop of its own (the example's code is threaded)."""
    with anyio.from_thread.start_blocking_portal() as portal:
        voice = create_synthesizer("offline", deterministic=True)
        portal.call(voice.start)
        callee = Answer(parse_caller_script(CALLEE, "callee.yaml"), voice)
        fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock(), answer=callee)
        try:
            with portal.wrap_async_context_manager(fake.running()) as api_base:
                for name, value in {
                    "TWILIO_ACCOUNT_SID": ACCOUNT,
                    "TWILIO_AUTH_TOKEN": TOKEN,
                    "TWILIO_PHONE_NUMBER": "+15550100",
                    "TWILIO_API_BASE": api_base,
                    "VOICE_STREAM_URL": stream_url,
                }.items():
                    monkeypatch.setenv(name, value)
                yield fake, portal
        finally:
            portal.call(voice.stop)


def test_quick_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSM_VOICE_DB", str(tmp_path / "calls.db"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    servers: list[uvicorn.Server] = []
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/voice"
    with answering_twilio(monkeypatch, url) as (twilio, portal):
        # --- the Quick Example -----------------------------------------------------
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
        # --- end of the Quick Example ----------------------------------------------

        call = twilio.calls[call_sid]
        portal.call(_wait, call.done)  # Twilio's side of the call is over too
        servers[0].should_exit = True
        server_thread.join(timeout=30)
    if session.loop is not None:  # the example leaves its loop open; the test closes it
        session.loop.close()
    listener.close()
    assert call.to == "+358401234567"
    assert call.stream_parameters["call_id"] and call.stream_parameters["token"]
    assert call.sim is not None
    # speak() waits for its own mark, as the seed's did; then the example's (seed's shape)
    marks = call.sim.marks_echoed[:2]
    assert [m.split("__")[0] for m in marks] == ["tts_complete", "after-greeting"]
    assert all(re.fullmatch(r"[a-z_-]+__[0-9a-f]{8}", m) for m in marks)
    assert heard and heard[0].strip()
    assert session.is_disconnected
    assert call.sim.close_code == 1000


async def _wait(done: anyio.Event) -> None:
    with anyio.fail_after(30):
        await done.wait()
