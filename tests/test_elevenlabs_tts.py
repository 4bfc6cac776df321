"""ElevenLabs TTS through the real SDK (httpx) against the local fake on 127.0.0.1.

Request timeouts and retry backoff run on a VirtualClock: a test that waits 10 s
for a stalled request, or 1 s of backoff, moves the clock instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from fsm_voice.clock import VirtualClock
from fsm_voice.providers import create_synthesizer
from fsm_voice.providers.elevenlabs_client import ElevenLabsError, ElevenLabsSettings
from fsm_voice.providers.elevenlabs_tts import ElevenLabsSynthesizer, split_long
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs, tone

pytestmark = pytest.mark.anyio
GUARD_S = 10  # a hang guard, never a timing assertion


class Seen:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.errors: list[tuple[str, bool]] = []

    def on_state(self, state: str, detail: str) -> None:
        self.states.append((state, detail))

    def on_error(self, reason: str, fatal: bool) -> None:
        self.errors.append((reason, fatal))

    def names(self) -> list[str]:
        return [s for s, _ in self.states]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeElevenLabs, str]]:
    server = FakeElevenLabs()
    async with server.serve() as base_url:
        yield server, base_url


def synth(
    base_url: str, seen: Seen, clock: VirtualClock | None = None, **kw: object
) -> ElevenLabsSynthesizer:
    options: dict[str, object] = {"api_key": API_KEY, "base_url": base_url, "environ": {}}
    options.update(kw)
    return ElevenLabsSynthesizer(
        clock=clock,
        on_state=seen.on_state,
        on_error=seen.on_error,
        **options,  # type: ignore[arg-type]
    )


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    out = b""
    with anyio.fail_after(GUARD_S):
        async for chunk in chunks:
            out += chunk
    return out


async def test_streams_ulaw_8000_with_the_seed_defaults(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    seen = Seen()
    tts = synth(base_url, seen)
    await tts.start()
    audio = await collect(tts.synthesize("Hello there."))
    await tts.stop()
    assert audio == tone(server.ms_per_char * len("Hello there."))
    (request,) = server.tts_requests
    assert request.output_format == "ulaw_8000"
    assert request.voice_id == "21m00Tcm4TlvDq8ikWAM"  # Rachel
    assert request.model_id == "eleven_multilingual_v2"
    assert request.api_key == API_KEY and request.text == "Hello there."
    assert seen.names() == ["connecting", "streaming", "closed"]
    assert seen.errors == []


async def test_chunks_arrive_as_they_are_streamed(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    server.tts_paced = True
    tts = synth(base_url, Seen())
    chunks = tts.synthesize("One two three four five.")
    server.release(1)
    with anyio.fail_after(GUARD_S):
        first = await chunks.__anext__()
    # the first chunk came out while the fake still held back the rest
    assert first and server.tts_requests[0].sent_bytes == server.chunk_bytes
    server.release(1000)
    rest = await collect(chunks)
    assert first + rest == tone(server.ms_per_char * len("One two three four five."))
    await tts.stop()


def test_settings_come_from_the_environment_and_kwargs_win() -> None:
    env = {
        "ELEVENLABS_API_KEY": "sk-from-env",
        "ELEVENLABS_VOICE_ID": "voice-env",
        "ELEVENLABS_MODEL": "eleven_flash_v2_5",
        "STT_MODEL_ID": "scribe_x",
        "STT_LANGUAGE_CODE": "en",
        "ELEVENLABS_BASE_URL": "https://api.eu.example",
    }
    settings = ElevenLabsSettings.from_env(env, voice_id="voice-kwarg")
    assert settings.voice_id == "voice-kwarg"
    assert (settings.tts_model, settings.stt_model, settings.language_code) == (
        "eleven_flash_v2_5",
        "scribe_x",
        "en",
    )
    assert settings.base_url == "https://api.eu.example"
    assert settings.key() == "sk-from-env"
    assert "sk-from-env" not in repr(settings) and "sk-from-env" not in str(settings)
    defaults = ElevenLabsSettings.from_env({})
    assert (defaults.voice_id, defaults.tts_model, defaults.stt_model, defaults.language_code) == (
        "21m00Tcm4TlvDq8ikWAM",
        "eleven_multilingual_v2",
        "scribe_v2_realtime",
        "fi",
    )


def test_the_registry_builds_it_with_kwargs() -> None:
    tts = create_synthesizer("elevenlabs", api_key="k", environ={}, voice_id="v1")
    assert isinstance(tts, ElevenLabsSynthesizer)
    assert tts.settings.voice_id == "v1" and tts.settings.key() == "k"


def test_long_sentences_are_cut_at_clauses_then_words() -> None:
    sentence = "First part is here, second part is a little longer, and the third one ends it."
    pieces = split_long(sentence, 30)
    assert all(len(p) <= 30 for p in pieces)
    assert " ".join(pieces) == sentence
    assert split_long("Short one.", 30) == ["Short one."]


async def test_long_text_becomes_one_request_per_piece_in_order(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    tts = synth(base_url, Seen(), max_chars=40)
    text = "Hi. " + "This sentence is long, with several clauses, and it keeps going on."
    audio = await collect(tts.synthesize(text))
    texts = [r.text for r in server.tts_requests]
    assert texts[0] == "Hi." and len(texts) >= 3
    assert all(len(t) <= 40 for t in texts)
    assert " ".join(texts) == text
    assert audio == b"".join(tone(server.ms_per_char * len(t)) for t in texts)
    await tts.stop()


async def test_barge_in_closes_the_http_request(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    server.tts_paced = True
    tts = synth(base_url, Seen())
    chunks = tts.synthesize("A long answer that the caller interrupts.")
    server.release(1)
    with anyio.fail_after(GUARD_S):
        await chunks.__anext__()
        await chunks.aclose()  # type: ignore[attr-defined]
        request = server.tts_requests[0]
        await server.wait_for(lambda: request.client_left)
    assert not request.finished
    assert request.sent_bytes < len(tone(server.ms_per_char * len(request.text)))
    await tts.stop()


async def test_cancelling_the_speaker_closes_the_http_request(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    """The runner's barge-in cancels the prompt's scope around the iteration."""
    server, base_url = fake
    server.tts_paced = True
    tts = synth(base_url, Seen())
    first = anyio.Event()
    scope = anyio.CancelScope()

    async def speak() -> None:
        with scope:
            chunks = tts.synthesize("A long answer that the caller interrupts.")
            try:
                async for _ in chunks:
                    first.set()
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]

    server.release(1)
    with anyio.fail_after(GUARD_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(speak)
            await first.wait()
            scope.cancel()
        request = server.tts_requests[0]
        await server.wait_for(lambda: request.client_left)
    assert not request.finished
    await tts.stop()


async def test_a_stalled_request_times_out_on_the_clock_and_recovers(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    clock = VirtualClock()
    seen = Seen()
    tts = synth(base_url, seen, clock, timeout_ms=5000)
    server.plan_tts(("stall", 0))
    chunks = tts.synthesize("This one stalls.")
    with anyio.fail_after(GUARD_S):
        await chunks.__anext__()  # the first chunk, then nothing
        pending = anyio.Event()
        failure: list[BaseException] = []

        async def read_more() -> None:
            try:
                await chunks.__anext__()
            except ElevenLabsError as exc:
                failure.append(exc)
            pending.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_more)
            await clock.advance(4999)
            assert not pending.is_set()
            await clock.advance(1)
            await pending.wait()
        (error,) = failure
        assert isinstance(error, ElevenLabsError) and error.kind == "timeout" and error.retryable
        await server.wait_for(lambda: server.tts_requests[0].client_left)
    assert seen.errors == [("elevenlabs timeout: no audio for 5000 ms", False)]
    assert seen.names()[-1] == "reconnecting"
    await clock.advance(1000)  # backoff 1 s (jitter 0.5: exactly the nominal delay)
    assert seen.names()[-1] == "connecting"
    assert await collect(tts.synthesize("Fine again.")) == tone(server.ms_per_char * 11)
    assert seen.names()[-1] == "streaming"
    await tts.stop()


@pytest.mark.parametrize(
    ("status", "kind", "fatal"),
    [
        (500, "http_500", False),
        (429, "http_429", False),
        (402, "http_402", True),
        (422, "http_422", True),
    ],
)
async def test_http_errors_reach_the_machine_and_on_error(
    fake: tuple[FakeElevenLabs, str], status: int, kind: str, fatal: bool
) -> None:
    server, base_url = fake
    seen = Seen()
    tts = synth(base_url, seen, VirtualClock())
    server.plan_tts(("fail", status))
    with pytest.raises(ElevenLabsError) as caught:
        await collect(tts.synthesize("Hello."))
    assert caught.value.kind == kind and caught.value.retryable is not fatal
    (reason, was_fatal), *_ = seen.errors
    assert was_fatal is fatal and f"HTTP {status}" in reason
    assert seen.names()[-1] == ("error" if fatal else "reconnecting")
    await tts.stop()


async def test_a_bad_key_is_fatal_and_a_new_start_recovers(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    seen = Seen()
    tts = synth(base_url, seen, VirtualClock(), api_key="wrong")
    with pytest.raises(ElevenLabsError, match="auth_error"):
        await collect(tts.synthesize("Hello."))
    assert seen.errors[-1][1] is True and seen.names()[-1] == "error"
    with pytest.raises(ElevenLabsError, match="unavailable"):
        await collect(tts.synthesize("Hello again."))
    assert len(server.tts_requests) == 1  # the dead provider sent nothing more
    await tts.start()  # the next call starts it afresh
    assert seen.names()[-2:] == ["connecting", "streaming"]
    await tts.stop()


async def test_failures_in_a_row_back_off_then_give_up(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    clock = VirtualClock()
    seen = Seen()
    tts = synth(base_url, seen, clock, max_retries=2)
    server.plan_tts(("fail", 503), ("fail", 503), ("fail", 503))
    for delay in (1000, 2000):
        with pytest.raises(ElevenLabsError):
            await collect(tts.synthesize("Try."))
        assert seen.names()[-1] == "reconnecting"
        await clock.advance(delay - 1)
        assert seen.names()[-1] == "reconnecting"
        await clock.advance(1)
        assert seen.names()[-1] == "connecting"
    with pytest.raises(ElevenLabsError):
        await collect(tts.synthesize("Try."))
    assert seen.names()[-1] == "error"
    assert [fatal for _, fatal in seen.errors] == [False, False, True]
    assert "after 2 retries" in seen.errors[-1][0]
    await tts.stop()


async def test_no_key_is_a_clear_error_at_start() -> None:
    seen = Seen()
    tts = ElevenLabsSynthesizer(environ={}, on_state=seen.on_state, on_error=seen.on_error)
    with pytest.raises(ElevenLabsError, match="ELEVENLABS_API_KEY is not set"):
        await tts.start()
    assert seen.names() == ["connecting", "error"]


async def test_a_connection_cut_mid_body_is_a_retryable_error(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    seen = Seen()
    tts = synth(base_url, seen, VirtualClock())
    server.plan_tts(("cut", 0))
    chunks = tts.synthesize("This one breaks.")
    with anyio.fail_after(GUARD_S):
        assert await chunks.__anext__()  # the first chunk came through
        with pytest.raises(ElevenLabsError) as caught:
            await chunks.__anext__()
    assert caught.value.kind == "connection" and caught.value.retryable
    assert seen.errors[-1][1] is False and seen.names()[-1] == "reconnecting"
    await tts.stop()
