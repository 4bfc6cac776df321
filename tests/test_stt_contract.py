"""The contract every STT adapter keeps: offline (pocketsphinx on real speech),
scripted, ElevenLabs (the local fake) and Azure (the fake SDK).

Each gets the same events in (start, a grammar, the same caller audio, stop; a drop
and a reconnect where it has a connection to lose) and must give the same callbacks
out and log the same moves (`state_entered` of machine `stt`). Retry timers run on
a VirtualClock; tests wait for facts, never for time.

Where an adapter differs on purpose the test says so by name:
- scripted: no drop and reconnect (it has no connection to lose).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService
from fake_azure_types import CancellationErrorCode

from fsm_voice.audio.frames import silence
from fsm_voice.clock import VirtualClock
from fsm_voice.providers.base import Grammar, SpeechRecognizer, Transcript
from fsm_voice.providers.scripted import ScriptedRecognizer
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs
from tests.fake_elevenlabs import tone as elevenlabs_tone
from tests.provider_contract import Heard, StateLog, chained

pytestmark = pytest.mark.anyio

OFFLINE = (
    importlib.util.find_spec("pocketsphinx") is not None
    and importlib.util.find_spec("piper") is not None
)
ADAPTERS = [
    pytest.param("offline", marks=pytest.mark.skipif(not OFFLINE, reason="offline extra")),
    "scripted",
    "elevenlabs",
    "azure",
]
WORD = "yes"
GRAMMAR = Grammar(("yes", "no"), name="contract")
FIRST_RETRY_MS = 1000  # 1 s backoff, jitter 0.5 (±0) for every adapter


@dataclass
class Stt:
    recognizer: SpeechRecognizer
    clock: VirtualClock
    drop: Callable[[], Awaitable[None]] | None  # lose the connection (None: nothing to lose)


@pytest.fixture(scope="module")
def speech() -> bytes:
    """The caller saying "yes": piper's voice on the telephone path when the offline
    extra is there (pocketsphinx needs real speech), else a tone the energy VADs hear."""
    if not OFFLINE:
        return elevenlabs_tone(400)
    from fsm_voice.providers.offline_tts import PiperSynthesizer

    voice = PiperSynthesizer(deterministic=True)
    voice.load()
    return b"".join(voice.synthesize_piece(p) for p in voice.pieces(WORD))


@contextlib.asynccontextmanager
async def adapter(name: str) -> AsyncIterator[Stt]:
    clock = VirtualClock()
    script = [WORD, WORD]
    if name == "offline":
        from fsm_voice.providers.offline_stt import DecoderPool, PocketsphinxRecognizer

        pool = DecoderPool(1)
        offline = PocketsphinxRecognizer(pool=pool, clock=clock)

        async def kill_worker() -> None:  # a decoder process dies: the next utterance is lost
            pid = await asyncio.wrap_future(pool._ensure().submit(os.getpid))
            os.kill(pid, signal.SIGKILL)

        try:
            yield Stt(offline, clock, kill_worker)
        finally:
            pool.shutdown()
    elif name == "scripted":
        yield Stt(ScriptedRecognizer(script), clock, None)
    elif name == "elevenlabs":
        from fsm_voice.providers.elevenlabs_stt import ElevenLabsRecognizer

        server = FakeElevenLabs(script)
        async with server.serve() as base_url:
            cloud = ElevenLabsRecognizer(
                api_key=API_KEY, base_url=base_url, environ={}, clock=clock
            )

            async def drop_socket() -> None:
                server.drop()

            yield Stt(cloud, clock, drop_socket)
    else:
        from fsm_voice.providers.azure_stt import AzureRecognizer

        service = FakeSpeechService(script)
        sdk = AzureRecognizer(
            key="test-key", sdk=FakeSpeechSdk(service), clock=clock, environ={}, jitter=lambda: 0.5
        )

        async def cancel_session() -> None:
            service.drop_sessions(CancellationErrorCode.ServiceTimeout, "Timeout while waiting.")

        try:
            yield Stt(sdk, clock, cancel_session)
        finally:
            service.close()
            assert not service.callback_errors


def say(recognizer: SpeechRecognizer, audio: bytes, t_ms: int) -> int:
    """Feed silence, `audio`, then a pause long enough for every endpointer, as 20 ms
    frames from call time `t_ms`; returns the call time after it."""
    stream = silence(400) + audio + silence(1500)
    for start in range(0, len(stream), 160):
        recognizer.feed(stream[start : start + 160], t_ms)
        t_ms += 20
    return t_ms


def transcripts(heard: Heard) -> list[Transcript]:
    return list(heard.of("committed"))


@pytest.mark.parametrize("name", ADAPTERS)
async def test_start_hear_stop(name: str, speech: bytes) -> None:
    async with adapter(name) as stt:
        log = StateLog("stt")
        heard = Heard(log.recorder(stt.recognizer.name))
        recognizer = stt.recognizer
        await recognizer.start(heard)
        assert log.states() == ["connecting", "streaming"]  # start returns when streaming
        recognizer.set_grammar(GRAMMAR)
        recognizer.set_speaking(False)
        say(recognizer, speech, 1000)
        await heard.until(lambda: bool(transcripts(heard)))
        (transcript,) = transcripts(heard)
        assert transcript.text == WORD
        assert 1000 <= transcript.start_ms < transcript.end_ms
        # speech began before its words were committed. (Its call time is the
        # adapter's own: ElevenLabs says it when the service's first partial comes
        # back, so with all audio fed at once it is the time of the last frame fed.)
        kinds = [k for k in heard.kinds() if k in ("speech_started", "committed")]
        assert kinds == ["speech_started", "committed"]
        (onset,) = heard.of("speech_started")
        assert onset >= 1000
        await recognizer.stop()
        await recognizer.stop()  # idempotent: no second move, no exception
        say(recognizer, speech, 5000)  # audio after stop is ignored
        assert transcripts(heard) == [transcript]
        assert heard.of("error") == []
        assert log.states() == ["connecting", "streaming", "closed"]
        assert chained(log.moves(), "idle")


# Every adapter with a connection to lose; the scripted one has none (scripted text,
# nothing remote): the test below holds it to that.
DROPPABLE = [a for a in ADAPTERS if a != "scripted"]


async def test_the_scripted_recogniser_has_no_connection_to_lose() -> None:
    async with adapter("scripted") as stt:
        assert stt.drop is None


@pytest.mark.parametrize("name", DROPPABLE)
async def test_a_drop_reconnects_after_the_backoff_and_hears_again(
    name: str, speech: bytes
) -> None:
    async with adapter(name) as stt:
        assert stt.drop is not None
        log = StateLog("stt")
        heard = Heard(log.recorder(stt.recognizer.name))
        recognizer = stt.recognizer
        await recognizer.start(heard)
        recognizer.set_grammar(GRAMMAR)
        await stt.drop()
        if name == "offline":  # a dead decoder is found when an utterance needs it
            say(recognizer, speech, 1000)
        await heard.until(lambda: "reconnecting" in log.states())
        ((_, fatal),) = heard.of("error")
        assert fatal is False  # a drop is reported, not given up on
        assert stt.clock.next_due_ms() == FIRST_RETRY_MS
        await stt.clock.advance(FIRST_RETRY_MS)
        await heard.until(lambda: log.states().count("streaming") == 2)
        say(recognizer, speech, 10_000)
        await heard.until(lambda: bool(transcripts(heard)))
        assert [t.text for t in transcripts(heard)] == [WORD]
        await recognizer.stop()
        assert log.states() == [
            "connecting",
            "streaming",
            "reconnecting",
            "connecting",
            "streaming",
            "closed",
        ]
        assert chained(log.moves(), "idle")
