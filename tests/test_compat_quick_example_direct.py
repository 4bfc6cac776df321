"""voice_runtime's README Quick Example against the phone simulator, dialled directly.

The example's own code, with `voice_runtime` → `fsm_voice` and providers "offline".
What had to differ, and why:
- the phone simulator dials `/voice` itself instead of `initiate_outbound_call`
  (tests/test_compat_quick_example.py runs the Twilio REST version);
- 127.0.0.1 and a port of our own instead of 0.0.0.0:8080 (tests bind loopback only),
  a socket bound before the thread starts instead of `time.sleep(1)`, and the server is
  stopped at the end instead of left running;
- `on_committed` is wired through `session.on_stt_ready`, as the seed's "STT Ready
  Hook" section says: the example defines the callback but never attaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading

import pytest
import uvicorn
from fastapi import FastAPI

from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.errors import SocketClosed
from fsm_voice.providers import create_synthesizer
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.stt import create_stt
from fsm_voice.transports.twilio_ws import register_voice_websocket
from fsm_voice.tts import create_tts

pytestmark = [pytest.mark.real_server, pytest.mark.slow]


class Caller:
    """Answers, hears the greeting out, waits for the STT, says a line, waits for hang-up."""

    def __init__(self, url: str, session: VoiceSession) -> None:
        self.url = url
        self.session = session
        self.sim: PhoneSimulator | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._call())
        except BaseException as e:  # reported by the test
            self.error = e

    async def _call(self) -> None:
        tts = create_synthesizer("offline", deterministic=True)
        await tts.start()
        line = b"".join([chunk async for chunk in tts.synthesize("Yes, I am fine.")])
        async with dial(self.url) as sock:
            sim = self.sim = PhoneSimulator(sock, SystemClock(), RandomIds())
            async with sim:
                mark = await sim.wait_for_message(lambda m: m["event"] == "mark")
                await sim.wait_for_mark_echoed(mark["mark"]["name"])  # tts_complete__<hex>
                while self.session.stt is None:  # a caller who pauses before answering
                    await sim.send_silence(20)
                await sim.send_silence(600)
                await sim.send_audio(line)
                with contextlib.suppress(SocketClosed):  # the server hangs up: the end
                    while True:  # Twilio streams the caller until the call ends
                        await sim.send_silence(20)


def test_quick_example_with_the_phone_dialling_directly(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FSM_VOICE_DB", f"{tmp_path}/calls.db")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    servers: list[uvicorn.Server] = []

    # --- the Quick Example ---------------------------------------------------------
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

    # 2. The phone dials our /voice WebSocket
    caller = Caller(f"ws://127.0.0.1:{listener.getsockname()[1]}/voice", session)
    caller.thread.start()
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
    # --- end of the Quick Example --------------------------------------------------

    caller.thread.join(timeout=30)
    servers[0].should_exit = True
    server_thread.join(timeout=30)
    if session.loop is not None:  # the example leaves its loop open; the test closes it
        session.loop.close()
    listener.close()
    assert caller.error is None
    assert heard and heard[0].strip()
    sim = caller.sim
    assert sim is not None
    # speak() waits for its own mark, as the seed's did; then the example's (seed's shape)
    assert [m.split("__")[0] for m in sim.marks_echoed[:2]] == ["tts_complete", "after-greeting"]
    assert all(re.fullmatch(r"[a-z_-]+__[0-9a-f]{8}", m) for m in sim.marks_echoed[:2])
    assert len(sim.played) > 8000  # the greeting: more than a second of speech
    assert sim.close_code == 1000
    assert session.is_disconnected
