"""The contract every TTS adapter keeps: offline (piper, for real), scripted,
ElevenLabs (the local fake) and Azure (the fake SDK).

Each gets the same events in (start, a second start, a sentence, a sentence closed
after its first chunk, stop, a second stop) and must give the same out: μ-law audio,
the same moves logged as a call logs them (`state_entered` of machine `tts`,
through `watch_states`, the way the conversation runner and compat's speak watch a
shared synthesiser), and the same moves to the `on_state` callback.

Where an adapter differs on purpose the test says so by name:
- drop and reconnect: only ElevenLabs has one. offline and scripted have nothing
  remote to lose; Azure has no retryable failure at the provider level (each
  sentence borrows its own SDK synthesiser; a failed one is thrown away, and only a
  bad key moves the machine, to error for good).
- `on_error`: only ElevenLabs takes one (a failed retry is not the sentence's
  failure); the others fail the sentence by raising from `synthesize`.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService

from fsm_voice.clock import VirtualClock
from fsm_voice.providers.base import SpeechSynthesizer
from fsm_voice.providers.state_log import watch_states
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs
from tests.provider_contract import StateLog, chained

pytestmark = pytest.mark.anyio

OFFLINE = importlib.util.find_spec("piper") is not None
ADAPTERS = [
    pytest.param("offline", marks=pytest.mark.skipif(not OFFLINE, reason="offline extra")),
    "scripted",
    "elevenlabs",
    "azure",
]
SENTENCE = "Which day works better?"
LONG = "One sentence here. Another one there. A third one now. And a fourth one too."


@dataclass
class Tts:
    synthesizer: SpeechSynthesizer
    clock: VirtualClock
    states: list[str] = field(default_factory=list)  # what `on_state` was told
    errors: list[tuple[str, bool]] = field(default_factory=list)  # what `on_error` was told
    fake: FakeElevenLabs | None = None


@contextlib.asynccontextmanager
async def adapter(name: str) -> AsyncIterator[Tts]:
    clock = VirtualClock()
    states: list[str] = []
    errors: list[tuple[str, bool]] = []

    def on_state(state: str, detail: str) -> None:
        states.append(state)

    def on_error(reason: str, fatal: bool) -> None:
        errors.append((reason, fatal))

    if name == "offline":
        from fsm_voice.providers.offline_tts import PiperSynthesizer

        piper = PiperSynthesizer(deterministic=True, on_state=on_state)
        yield Tts(piper, clock, states, errors)
    elif name == "scripted":
        from fsm_voice.providers.scripted import ScriptedSynthesizer

        yield Tts(ScriptedSynthesizer(on_state=on_state), clock, states, errors)
    elif name == "elevenlabs":
        from fsm_voice.providers.elevenlabs_tts import ElevenLabsSynthesizer

        server = FakeElevenLabs()
        async with server.serve() as base_url:
            cloud = ElevenLabsSynthesizer(
                api_key=API_KEY,
                base_url=base_url,
                environ={},
                clock=clock,
                on_state=on_state,
                on_error=on_error,
            )
            yield Tts(cloud, clock, states, errors, server)
    else:
        from fsm_voice.providers.azure_tts import AzureSynthesizer

        service = FakeSpeechService()
        sdk = AzureSynthesizer(
            key="test-key", sdk=FakeSpeechSdk(service), environ={}, on_state=on_state
        )
        try:
            yield Tts(sdk, clock, states, errors)
        finally:
            service.close()
            assert not service.callback_errors


async def spoken(synthesizer: SpeechSynthesizer, text: str) -> bytes:
    return b"".join([chunk async for chunk in synthesizer.synthesize(text)])


@pytest.mark.parametrize("name", ADAPTERS)
async def test_start_speak_stop(name: str) -> None:
    async with adapter(name) as tts:
        log = StateLog("tts")
        synthesizer = tts.synthesizer
        unwatch = watch_states(synthesizer, log.record)
        await synthesizer.start()
        await synthesizer.start()  # idempotent: shared by every call of a process
        assert log.states() == ["connecting", "streaming"]
        audio = await spoken(synthesizer, SENTENCE)
        assert len(audio) > 4000  # over half a second of 8 kHz μ-law, a byte a sample
        assert log.states() == ["connecting", "streaming"]  # speaking moves nothing
        await synthesizer.stop()
        await synthesizer.stop()  # idempotent: no second move, no exception
        unwatch()
        assert log.states() == ["connecting", "streaming", "closed"]
        assert chained(log.moves(), "idle")
        # the callback and the log see the same moves
        assert tts.states == log.states()
        assert {e.data["provider"] for e in log.log.events("call")} == {synthesizer.name}
        assert tts.errors == []


@pytest.mark.parametrize("name", ADAPTERS)
async def test_closing_a_sentence_early_moves_nothing_and_the_next_one_speaks(
    name: str,
) -> None:
    async with adapter(name) as tts:
        synthesizer = tts.synthesizer
        await synthesizer.start()
        chunks = synthesizer.synthesize(LONG)
        async for first in chunks:
            assert first
            break  # barge-in on the first chunk
        await cast(Any, chunks).aclose()
        assert len(await spoken(synthesizer, "Yes.")) > 0
        await synthesizer.stop()
        assert tts.states == ["connecting", "streaming", "closed"]
        assert tts.errors == []


async def test_a_watcher_that_unwatched_sees_nothing_more() -> None:
    async with adapter("scripted") as tts:
        first, second = StateLog("tts"), StateLog("tts")
        unwatch_first = watch_states(tts.synthesizer, first.record)
        await tts.synthesizer.start()
        unwatch_first()
        unwatch_second = watch_states(tts.synthesizer, second.record)  # a later call
        await tts.synthesizer.stop()
        unwatch_second()
        assert first.states() == ["connecting", "streaming"]
        assert second.moves() == [("streaming", "closed")]  # `from`: where it was


# Only ElevenLabs has a retryable failure at the provider level (see the docstring);
# the test below holds the others to that.
RETRYABLE = ["elevenlabs"]


@pytest.mark.parametrize("name", [a for a in ADAPTERS if a not in RETRYABLE])
async def test_the_other_synthesisers_have_no_retryable_failure(name: str) -> None:
    async with adapter(name) as tts:
        assert tts.fake is None


@pytest.mark.parametrize("name", RETRYABLE)
async def test_a_failed_request_reconnects_after_the_backoff(name: str) -> None:
    async with adapter(name) as tts:
        assert tts.fake is not None
        log = StateLog("tts")
        synthesizer = tts.synthesizer
        unwatch = watch_states(synthesizer, log.record)
        await synthesizer.start()
        tts.fake.plan_tts(("fail", 503))
        with pytest.raises(Exception, match="503"):  # the sentence fails, told to the caller
            await spoken(synthesizer, SENTENCE)
        ((_, fatal),) = tts.errors
        assert fatal is False
        await tts.clock.advance(1000)  # backoff 1 s, jitter 0.5: exactly the nominal delay
        assert len(await spoken(synthesizer, "Fine again.")) > 0
        await synthesizer.stop()
        unwatch()
        assert log.states() == [
            "connecting",
            "streaming",
            "reconnecting",
            "connecting",
            "streaming",
            "closed",
        ]
        assert chained(log.moves(), "idle")
        assert tts.states == log.states()
