"""The Azure synthesiser against the fake SDK (tests/fake_azure_sdk.py).

The fake "synthesises" a 400 Hz μ-law tone in 200 ms pieces on its own threads; a
test can hold it to a number of pieces (`allow_chunks`) to see what leaves before
the synthesis is done, and what happens to the rest on barge-in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import anyio
import anyio.to_thread
import pytest
from fake_azure_sdk import HANG_GUARD_S, FakeSpeechSdk, FakeSpeechService
from fake_azure_synthesis import tone
from fake_azure_types import CancellationErrorCode, SpeechSynthesisOutputFormat

from fsm_voice.providers import create_synthesizer
from fsm_voice.providers.azure_common import AzureSpeechError
from fsm_voice.providers.azure_tts import AzureSynthesizer

pytestmark = pytest.mark.anyio

KEY = "test-key"
SENTENCE = "Which day works better?"  # 23 characters: 1480 ms at 65 ms each


@pytest.fixture
def service() -> Iterator[FakeSpeechService]:
    service = FakeSpeechService()
    yield service
    service.close()
    assert not service.callback_errors


def make(service: FakeSpeechService, **options: Any) -> tuple[AzureSynthesizer, list[str]]:
    states: list[str] = []
    options.setdefault("key", KEY)
    synthesizer = AzureSynthesizer(
        sdk=FakeSpeechSdk(service),
        environ={},
        on_state=lambda state, detail: states.append(state),
        **options,
    )
    return synthesizer, states


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_audio_streams_while_it_is_synthesised_in_8khz_mulaw(
    service: FakeSpeechService,
) -> None:
    synthesizer, states = make(service)
    await synthesizer.start()
    assert states == ["connecting", "streaming"]
    service.allow_chunks(1)
    chunks = synthesizer.synthesize(SENTENCE)
    first = await chunks.__anext__()
    (sdk_synthesizer,) = service.synthesizers
    # the first piece is out while the rest is not even synthesised yet
    assert first == tone(1480)[:1600]
    assert sdk_synthesizer.chunks_sent == 1 and sdk_synthesizer.outcomes == []
    service.chunk_allowance = None
    service.wake()
    rest = await collect(chunks)
    assert first + rest == tone(1480)
    config = sdk_synthesizer.config
    assert config.synthesis_output_format == SpeechSynthesisOutputFormat.Raw8Khz8BitMonoMULaw
    assert config.speech_synthesis_voice_name == "fi-FI-NooraNeural"
    assert sdk_synthesizer.audio_config is None  # nothing plays on this machine's speaker
    assert sdk_synthesizer.outcomes == ["completed"] and sdk_synthesizer.stop_calls == 0
    await synthesizer.stop()
    assert states[-1] == "closed"


async def test_closing_the_stream_stops_the_synthesis_itself(service: FakeSpeechService) -> None:
    synthesizer, _ = make(service)
    service.allow_chunks(1)
    chunks = synthesizer.synthesize(SENTENCE)
    await chunks.__anext__()
    await cast(Any, chunks).aclose()  # barge-in
    (stopped,) = service.synthesizers
    assert await anyio.to_thread.run_sync(stopped.idle.wait, HANG_GUARD_S)
    assert stopped.stop_calls == 1 and stopped.outcomes == ["stopped"]
    assert stopped.chunks_sent == 1 < stopped.chunks_total  # it stopped producing
    # the next sentence gets a fresh synthesiser: nothing of the stopped one leaks in
    service.chunk_allowance = None
    audio = await collect(synthesizer.synthesize("Yes."))
    assert audio == tone(400) and len(service.synthesizers) == 2
    await synthesizer.stop()


async def test_a_bad_key_fails_the_sentence_at_once_and_the_provider_for_good(
    service: FakeSpeechService,
) -> None:
    synthesizer, states = make(service, key="wrong-key-51c2")
    with pytest.raises(AzureSpeechError) as raised:
        await collect(synthesizer.synthesize(SENTENCE))
    error = raised.value
    assert error.code == "AuthenticationFailure" and error.fatal and "401" in str(error)
    (sdk_synthesizer,) = service.synthesizers
    # raised from synthesis_canceled, not after waiting for the late result
    assert not sdk_synthesizer.result_resolved.is_set()
    assert states == ["connecting", "streaming", "error"]
    calls = len(service.sdk_calls)
    with pytest.raises(AzureSpeechError, match="in error"):
        await collect(synthesizer.synthesize("Hello."))
    assert len(service.sdk_calls) == calls  # the service is not asked again
    assert "wrong-key-51c2" not in str(error) + repr(synthesizer.settings)
    await synthesizer.stop()


async def test_an_exhausted_quota_fails_one_sentence_not_the_provider(
    service: FakeSpeechService,
) -> None:
    synthesizer, states = make(service)
    service.tts_failure = CancellationErrorCode.TooManyRequests
    with pytest.raises(AzureSpeechError) as raised:
        await collect(synthesizer.synthesize(SENTENCE))
    assert raised.value.code == "TooManyRequests" and not raised.value.fatal
    assert "429" in str(raised.value)
    assert states == ["connecting", "streaming"]
    service.tts_failure = None
    assert await collect(synthesizer.synthesize("Yes.")) == tone(400)
    await synthesizer.stop()


async def test_a_missing_key_fails_start_before_any_sdk_call(service: FakeSpeechService) -> None:
    synthesizer = AzureSynthesizer(sdk=FakeSpeechSdk(service), environ={})
    with pytest.raises(AzureSpeechError, match="AZURE_SPEECH_KEY is not set"):
        await synthesizer.start()
    assert synthesizer.machine.state == "error" and service.sdk_calls == []
    with pytest.raises(AzureSpeechError, match="in error"):
        await collect(synthesizer.synthesize("Hello."))


async def test_sentences_reuse_an_idle_synthesiser_and_calls_in_parallel_get_their_own(
    service: FakeSpeechService,
) -> None:
    import asyncio

    synthesizer, _ = make(service)
    await collect(synthesizer.synthesize("One."))
    await collect(synthesizer.synthesize("Two."))
    assert len(service.synthesizers) == 1
    both = await asyncio.gather(
        collect(synthesizer.synthesize("Hello from call one.")),
        collect(synthesizer.synthesize("Hi.")),
    )
    assert both == [tone(1300), tone(400)]
    assert len(service.synthesizers) == 2
    assert [s.spoken for s in service.synthesizers] == [
        ["One.", "Two.", "Hello from call one."],
        ["Hi."],
    ]
    await synthesizer.stop()


async def test_blocking_sdk_calls_run_off_the_loop(service: FakeSpeechService) -> None:
    synthesizer, _ = make(service)
    service.allow_chunks(1)
    chunks = synthesizer.synthesize(SENTENCE)
    await chunks.__anext__()
    await cast(Any, chunks).aclose()
    assert await anyio.to_thread.run_sync(service.synthesizers[0].idle.wait, HANG_GUARD_S)
    await synthesizer.stop()
    assert [m for m, _ in service.sdk_calls] == [
        "SpeechSynthesizer",
        "speak_text_async",
        "stop_speaking_async",
    ]
    assert all(thread.startswith("azure-tts") for _, thread in service.sdk_calls)


def test_the_registry_builds_the_azure_synthesizer(service: FakeSpeechService) -> None:
    synthesizer = create_synthesizer("azure", sdk=FakeSpeechSdk(service), key=KEY, environ={})
    assert isinstance(synthesizer, AzureSynthesizer) and synthesizer.name == "azure"
