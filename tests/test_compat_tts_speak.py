"""The compat TTS on live calls: a hang-up ends speak() at once, even mid-synthesis, and
on_error says which failure it was. ElevenLabs against its local fake (tests/
fake_elevenlabs.py), Azure against the fake SDK (tests/fake_azure_sdk.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from compat_harness import ThreadedServer, in_thread, phone
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService

from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial
from fsm_voice.tts import AzureTTS, ElevenLabsTTS, create_tts
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]
GUARD_S = 10  # a hang guard, never a timing assertion


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeElevenLabs, str]]:
    server = FakeElevenLabs()
    async with server.serve() as base_url:
        yield server, base_url


async def test_a_hangup_ends_speak_within_100_ms_in_the_middle_of_synthesis(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    server.tts_paced = True  # one chunk per release(): synthesis stalls mid-sentence
    tts = create_tts("elevenlabs", api_key=API_KEY, base_url=base_url, environ={})
    session = VoiceSession()
    hung_up_at: list[float] = []
    returned: list[tuple[float, dict[str, Any]]] = []

    def consumer() -> None:
        result = tts.speak("Hello there, this sentence never ends.", session)
        returned.append((time.monotonic(), result))

    with ThreadedServer(session) as server_thread:
        async with dial(server_thread.url) as sock, phone(sock) as sim:
            await in_thread(session.wait_for_ws_connect, 10)
            session.watch_hangup(lambda: hung_up_at.append(time.monotonic()))
            speaker = threading.Thread(target=consumer)
            speaker.start()
            with anyio.fail_after(GUARD_S):
                await server.wait_for(lambda: bool(server.tts_requests))
            server.release(1)
            with anyio.fail_after(GUARD_S):  # the first chunk reached the caller
                await sim.wait_played_bytes(160)
            await sim.hangup()
            await in_thread(speaker.join, GUARD_S)
        await server_thread.wait_finished(1)
        await server_thread.on_server(tts.synthesizer.stop())  # its HTTP client: this loop's
    ((t_returned, result),) = returned
    assert t_returned - hung_up_at[0] < 0.1
    assert result == {"last_spoken": "", "call_disconnected": True}
    request = server.tts_requests[0]
    with anyio.fail_after(GUARD_S):  # the synthesis itself stopped, not just our wait
        await server.wait_for(lambda: request.client_left)
    assert not request.finished


async def speak_on_a_call(tts: Any, texts: list[str]) -> list[dict[str, Any]]:
    """Speak each text on one live call; the results, in order."""
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock):
            await in_thread(session.wait_for_ws_connect, 10)
            results = [await in_thread(tts.speak, text, session) for text in texts]
        await server.wait_finished(1)
        await server.on_server(tts.synthesizer.stop())  # its HTTP client: this loop's
    return results


async def test_elevenlabs_on_error_names_the_failure(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    tts = create_tts("elevenlabs", api_key=API_KEY, base_url=base_url, environ={})
    assert isinstance(tts, ElevenLabsTTS)
    errors: list[str] = []
    tts.on_error = errors.append
    server.plan_tts(("fail", 401), ("cut", 0))
    results = await speak_on_a_call(tts, ["Refused.", "Broken off.", "Fine."])
    assert len(errors) == 2  # once per failed speak
    refused, cut = errors
    assert refused.startswith("elevenlabs_tts_failed: elevenlabs auth_error: HTTP 401")
    assert cut.startswith("elevenlabs_tts_failed: elevenlabs connection:")
    assert [r.get("error") for r in results] == [refused, cut, None]
    assert results[2] == {"last_spoken": "Fine."}


async def test_azure_takes_the_seeds_option_names_and_names_its_failure() -> None:
    service = FakeSpeechService()
    sdk = FakeSpeechSdk(service)
    good = create_tts(
        "azure", subscription_key="test-key", voice_name="fi-FI-SelmaNeural", sdk=sdk, environ={}
    )
    wrong = create_tts("azure", subscription_key="not-the-key", sdk=sdk, environ={})
    assert isinstance(good, AzureTTS) and isinstance(wrong, AzureTTS)
    assert good.synthesizer.settings.voice == "fi-FI-SelmaNeural"  # type: ignore[attr-defined]
    errors: list[str] = []
    wrong.on_error = errors.append
    (spoken,) = await speak_on_a_call(good, ["Hei."])
    (failed,) = await speak_on_a_call(wrong, ["Hei."])
    assert spoken == {"last_spoken": "Hei."}
    assert len(errors) == 1 and errors[0].startswith("azure_synthesis_failed: ")
    assert failed["error"] == errors[0]


async def test_speak_returns_once_the_caller_has_heard_it_all() -> None:
    # The seed's speak waited for its `tts_complete` mark: code that listens right
    # after speak() must not hear the tail of its own prompt.
    tts = create_tts("scripted", ms_per_char=10)
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock) as sim:
            await in_thread(session.wait_for_ws_connect, 10)
            result = await in_thread(tts.speak, "Hello there. How are you?", session)
            played_then = len(sim.played)
            marks_then = list(sim.marks_echoed)
        await server.wait_finished(1)
    assert result == {"last_spoken": "Hello there. How are you?"}
    synth = tts.synthesizer
    total = sum(synth.duration_ms(s) for s in ("Hello there.", "How are you?")) * 8  # type: ignore[attr-defined]
    assert played_then == total
    assert [m.split("__")[0] for m in marks_then] == ["tts_complete"]


async def test_speaking_nothing_returns_at_once_without_a_mark() -> None:
    tts = create_tts("scripted")
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock) as sim:
            await in_thread(session.wait_for_ws_connect, 10)
            assert await in_thread(tts.speak, "  ", session) == {"last_spoken": ""}
            marks = list(sim.marks_echoed)
        await server.wait_finished(1)
    assert marks == []
    assert len(sim.played) == 0
