"""The Azure recogniser against the fake SDK (tests/fake_azure_sdk.py).

The fake fires its events from its own threads, as the SDK does, so every test here
also checks the hand-over to the event loop. Retry timers run on a VirtualClock
that moves only when a test advances it: backoff delays are read off the clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService
from fake_azure_synthesis import tone
from fake_azure_types import AudioStreamWaveFormat, CancellationErrorCode, PropertyId

from fsm_voice.clock import VirtualClock
from fsm_voice.providers import create_recognizer
from fsm_voice.providers.azure_common import AzureSettings
from fsm_voice.providers.azure_stt import AzureRecognizer
from fsm_voice.providers.base import Grammar, Transcript

pytestmark = pytest.mark.anyio

KEY = "test-key"
HANG_GUARD_S = 30  # turns a deadlock into a failure; never reached by a passing run
SILENCE = b"\xff" * 160


class Heard:
    """An SttListener that records everything and checks it runs on the loop's thread."""

    def __init__(self) -> None:
        self.loop_thread = threading.current_thread()
        self.log: list[tuple[str, Any]] = []
        self.threads: set[str] = set()
        self._changed = asyncio.Event()

    def _note(self, kind: str, value: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.log.append((kind, value))
        self._changed.set()

    def on_speech_started(self, t_ms: int) -> None:
        self._note("speech_started", t_ms)

    def on_recognizing(self, text: str) -> None:
        self._note("recognizing", text)

    def on_committed(self, transcript: Transcript) -> None:
        self._note("committed", transcript)

    def on_error(self, reason: str, fatal: bool) -> None:
        self._note("error", (reason, fatal))

    def on_state(self, state: str, detail: str) -> None:
        self._note("state", state)
        self._note("detail", detail)

    def on_discarded(self, transcript: Transcript, reason: str) -> None:
        self._note("discarded", (transcript.start_ms, reason))

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.log if k == kind]

    async def until(self, condition: Callable[[], bool]) -> None:
        with anyio.fail_after(HANG_GUARD_S):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def service() -> Iterator[FakeSpeechService]:
    service = FakeSpeechService(["yes please", "tuesday"])
    yield service
    service.close()
    assert not service.callback_errors  # our callbacks never raised on the SDK's threads


def make(service: FakeSpeechService, clock: VirtualClock, **options: Any) -> AzureRecognizer:
    options.setdefault("key", KEY)
    return AzureRecognizer(
        sdk=FakeSpeechSdk(service), clock=clock, jitter=lambda: 0.5, environ={}, **options
    )


def feed(recognizer: AzureRecognizer, audio: bytes, t_ms: int) -> int:
    """Feed `audio` as 20 ms frames from call time `t_ms`; returns where it ends."""
    for start in range(0, len(audio), 160):
        recognizer.feed(audio[start : start + 160], t_ms)
        t_ms += 20
    return t_ms


def speech_then_pause(ms: int, pause_ms: int = 1500) -> bytes:
    return tone(ms) + SILENCE * (pause_ms // 20)


async def started(service: FakeSpeechService, **options: Any) -> tuple[AzureRecognizer, Heard]:
    recognizer = make(service, VirtualClock(), **options)
    heard = Heard()
    await recognizer.start(heard)
    return recognizer, heard


async def test_interim_and_final_results_reach_the_listener_on_the_loop(
    service: FakeSpeechService,
) -> None:
    recognizer, heard = await started(service, silence_timeout_ms=800)
    assert heard.of("state") == ["connecting", "streaming"]
    end = feed(recognizer, SILENCE * 10, 1000)  # the call is 1 s old when audio starts
    feed(recognizer, speech_then_pause(600), end)
    await heard.until(lambda: bool(heard.of("committed")))

    assert heard.of("speech_started") == [1200]  # stream offset 200 ms + the call's 1000
    assert heard.of("recognizing") == ["yes", "yes please", "yes please"]
    assert heard.of("committed") == [
        Transcript("yes please", 0.87, 1200, 1800, ("yes please please",))
    ]
    assert heard.threads == {heard.loop_thread.name}
    await recognizer.stop()
    assert heard.of("state")[-1] == "closed"


async def test_the_push_stream_is_8khz_mulaw_and_the_language_is_set(
    service: FakeSpeechService,
) -> None:
    recognizer, _ = await started(service, language="en-GB")
    (sdk_recognizer,) = service.recognizers
    fmt = sdk_recognizer.stream.stream_format
    assert (fmt.samples_per_second, fmt.bits_per_sample, fmt.channels) == (8000, 8, 1)
    assert fmt.wave_stream_format == AudioStreamWaveFormat.MULAW
    assert sdk_recognizer.config.speech_recognition_language == "en-GB"
    assert sdk_recognizer.config.region == "westeurope"
    await recognizer.stop()
    assert sdk_recognizer.stopped and sdk_recognizer.stream.closed


@pytest.mark.parametrize(("silence_timeout_ms", "utterances"), [(800, 1), (300, 2)])
async def test_the_silence_timeout_decides_where_an_utterance_ends(
    service: FakeSpeechService, silence_timeout_ms: int, utterances: int
) -> None:
    recognizer, heard = await started(service, silence_timeout_ms=silence_timeout_ms)
    config = service.recognizers[0].config
    assert config.get_property(PropertyId.Speech_SegmentationSilenceTimeoutMs) == str(
        silence_timeout_ms
    )
    # 400 ms of speech, a 500 ms pause, 400 ms more: one answer or two?
    audio = tone(400) + SILENCE * 25 + speech_then_pause(400)
    feed(recognizer, audio, 0)
    await heard.until(lambda: len(heard.of("committed")) == utterances)
    await recognizer.stop()
    assert len(heard.of("speech_started")) == utterances


async def test_speech_just_after_the_agent_stops_is_discarded_as_echo(
    service: FakeSpeechService,
) -> None:
    recognizer, heard = await started(service)
    recognizer.set_speaking(True)
    end = feed(recognizer, SILENCE * 100, 0)  # the agent speaks until 2000 ms
    recognizer.set_speaking(False)
    end = feed(recognizer, SILENCE * 10 + speech_then_pause(300), end)  # speech at 2200
    end = feed(recognizer, speech_then_pause(300), end)  # and at 4000: the caller
    await heard.until(lambda: len(heard.of("committed")) == 1)
    await recognizer.stop()
    assert recognizer.echo_discarded == 1
    assert heard.of("discarded") == [(2200, "echo")]  # the runner logs it
    assert heard.of("speech_started") == [4000]
    # the service heard both; only the one outside the window reached the listener
    assert [t.text for t in heard.of("committed")] == ["tuesday"]


async def test_barge_in_during_agent_speech_and_a_zero_window_keep_everything(
    service: FakeSpeechService,
) -> None:
    recognizer, heard = await started(service, echo_discard_ms=0)
    recognizer.set_speaking(True)
    end = feed(recognizer, SILENCE * 10 + tone(300), 0)  # the caller talks over the agent
    recognizer.set_speaking(False)
    feed(recognizer, SILENCE * 75 + speech_then_pause(300), end)
    await heard.until(lambda: len(heard.of("committed")) == 2)
    await recognizer.stop()
    assert heard.of("speech_started") == [200, end + 1500]
    assert recognizer.echo_discarded == 0


async def test_canceled_with_an_error_reconnects_after_backoff_and_streams_again(
    service: FakeSpeechService,
) -> None:
    clock = VirtualClock()
    recognizer = make(service, clock)
    heard = Heard()
    await recognizer.start(heard)
    service.drop_sessions(CancellationErrorCode.ServiceTimeout, "Timeout while waiting.")
    await heard.until(lambda: "reconnecting" in heard.of("state"))
    ((reason, fatal),) = heard.of("error")
    assert "ServiceTimeout" in reason and "Timeout while waiting" in reason and not fatal
    assert clock.next_due_ms() == 1000  # 1 s, jitter 0.5 is ±0
    first = service.recognizers[0]
    await clock.advance(1000)
    await heard.until(lambda: heard.of("state").count("streaming") == 2)
    assert heard.of("state") == [
        "connecting",
        "streaming",
        "reconnecting",
        "connecting",
        "streaming",
    ]
    assert first.stopped and first.stream.closed and len(service.recognizers) == 2
    # the new connection's stream starts at the call time of its first frame
    feed(recognizer, speech_then_pause(400), 5000)
    await heard.until(lambda: bool(heard.of("committed")))
    assert heard.of("committed")[0].start_ms == 5000
    await recognizer.stop()


@pytest.mark.parametrize(("jitter", "first_delay_ms"), [(0.0, 750), (0.5, 1000), (0.999_999, 1250)])
async def test_backoff_jitter_is_plus_or_minus_a_quarter(
    service: FakeSpeechService, jitter: float, first_delay_ms: int
) -> None:
    clock = VirtualClock()
    recognizer = AzureRecognizer(
        key=KEY, sdk=FakeSpeechSdk(service), clock=clock, jitter=lambda: jitter, environ={}
    )
    heard = Heard()
    await recognizer.start(heard)
    service.drop_sessions()
    await heard.until(lambda: "reconnecting" in heard.of("state"))
    assert clock.next_due_ms() == first_delay_ms
    await recognizer.stop()
    assert clock.next_due_ms() is None  # stop cancelled the retry


async def test_retries_back_off_up_to_the_cap_then_the_provider_errors(
    service: FakeSpeechService,
) -> None:
    clock = VirtualClock()
    recognizer = make(service, clock, max_retries=4, cap_ms=3000)
    heard = Heard()
    await recognizer.start(heard)
    service.connect_failures = [CancellationErrorCode.ConnectionFailure] * 10
    service.drop_sessions()
    delays: list[int] = []
    for attempt in range(1, 5):
        await heard.until(lambda n=attempt: heard.of("state").count("reconnecting") == n)
        due = clock.next_due_ms()
        assert due is not None
        delays.append(due - clock.now_ms())
        await clock.advance(due - clock.now_ms())
    await heard.until(lambda: "error" in heard.of("state"))
    assert delays == [1000, 2000, 3000, 3000]  # 1, 2, 4→capped at 3 s
    reason, fatal = heard.of("error")[-1]
    assert fatal and "ConnectionFailure" in reason and "after 4 retries" in reason
    assert [fatal for _, fatal in heard.of("error")] == [False] * 4 + [True]
    assert clock.next_due_ms() is None
    await recognizer.stop()


async def test_a_bad_key_is_terminal_without_retries(service: FakeSpeechService) -> None:
    clock = VirtualClock()
    recognizer = make(service, clock, key="not-the-key-7f3a")
    heard = Heard()
    await recognizer.start(heard)
    assert heard.of("state") == ["connecting", "error"]
    ((reason, fatal),) = heard.of("error")
    assert fatal and "AuthenticationFailure" in reason and "401" in reason
    assert clock.next_due_ms() is None and len(service.recognizers) == 1
    assert service.recognizers[0].stopped  # released, not left running
    logged = repr(heard.log) + repr(recognizer.settings)
    assert "not-the-key-7f3a" not in logged  # the key never shows
    await recognizer.stop()


async def test_a_missing_key_is_an_error_before_any_sdk_call(service: FakeSpeechService) -> None:
    recognizer = AzureRecognizer(sdk=FakeSpeechSdk(service), clock=VirtualClock(), environ={})
    heard = Heard()
    await recognizer.start(heard)
    assert heard.of("state") == ["connecting", "error"]
    assert heard.of("error") == [("AZURE_SPEECH_KEY is not set", True)]
    assert service.sdk_calls == []
    await recognizer.stop()


async def test_no_connection_within_the_timeout_counts_as_a_failed_attempt(
    service: FakeSpeechService,
) -> None:
    clock = VirtualClock()
    service.silent_connects = 1
    recognizer = make(service, clock, connect_timeout_ms=5000)
    heard = Heard()
    starting = asyncio.ensure_future(recognizer.start(heard))
    with anyio.fail_after(HANG_GUARD_S):
        while clock.next_due_ms() != 5000:  # the connect timer, armed once start returned
            await anyio.lowlevel.checkpoint()  # lets the SDK thread's answer in
    await clock.advance(5000)
    await starting
    assert heard.of("state") == ["connecting", "reconnecting"]
    assert "within 5000 ms" in heard.of("error")[0][0]
    await clock.advance(1000)
    await heard.until(lambda: heard.of("state")[-1] == "streaming")
    await recognizer.stop()


async def test_a_failed_write_reaches_the_provider_machine(service: FakeSpeechService) -> None:
    clock = VirtualClock()
    recognizer = make(service, clock)
    heard = Heard()
    await recognizer.start(heard)
    service.fail_writes = True
    recognizer.feed(SILENCE, 0)
    await heard.until(lambda: "reconnecting" in heard.of("state"))
    ((reason, fatal),) = heard.of("error")
    assert reason.startswith("audio write failed: RuntimeError") and not fatal
    recognizer.feed(SILENCE, 20)  # between connections: dropped, no second error
    assert len(heard.of("error")) == 1
    service.fail_writes = False
    await clock.advance(1000)
    await heard.until(lambda: heard.of("state")[-1] == "streaming")
    feed(recognizer, speech_then_pause(400), 2000)
    await heard.until(lambda: bool(heard.of("committed")))
    await recognizer.stop()


async def test_blocking_sdk_calls_run_off_the_loop(service: FakeSpeechService) -> None:
    recognizer, heard = await started(service)
    recognizer.set_grammar(Grammar(("yes", "no thanks"), name="confirm"))
    feed(recognizer, speech_then_pause(400), 0)
    await heard.until(lambda: bool(heard.of("committed")))
    await recognizer.stop()
    called = [method for method, _ in service.sdk_calls]
    assert called == [
        "SpeechRecognizer",
        "start_continuous_recognition_async",
        "stop_continuous_recognition_async",
    ]
    assert all(thread.startswith("azure-stt") for _, thread in service.sdk_calls)
    assert service.recognizers[0].phrases == ["yes", "no thanks"]


async def test_the_grammar_becomes_the_phrase_list_of_every_connection(
    service: FakeSpeechService,
) -> None:
    clock = VirtualClock()
    recognizer = make(service, clock)
    recognizer.set_grammar(Grammar(("monday", "tuesday")))
    heard = Heard()
    await recognizer.start(heard)
    service.drop_sessions()
    await heard.until(lambda: "reconnecting" in heard.of("state"))
    await clock.advance(1000)
    await heard.until(lambda: heard.of("state")[-1] == "streaming")
    await recognizer.stop()
    assert [r.phrases for r in service.recognizers] == [["monday", "tuesday"]] * 2


async def test_events_after_stop_are_ignored_and_stop_is_idempotent(
    service: FakeSpeechService,
) -> None:
    recognizer, heard = await started(service)
    await recognizer.stop()
    await recognizer.stop()
    recognizer.feed(tone(100), 0)
    service.drop_sessions()
    assert heard.of("state") == ["connecting", "streaming", "closed"]
    assert heard.of("error") == []


def test_settings_come_from_the_environment_and_keywords_override() -> None:
    environ = {
        "AZURE_SPEECH_KEY": "env-key",
        "AZURE_SPEECH_REGION": "northeurope",
        "AZURE_SPEECH_LANGUAGE": "sv-SE",
        "AZURE_TTS_VOICE": "sv-SE-SofieNeural",
        "AZURE_STT_SILENCE_TIMEOUT_MS": "700",
    }
    settings = AzureSettings.from_env(environ)
    assert (settings.region, settings.language, settings.voice) == (
        "northeurope",
        "sv-SE",
        "sv-SE-SofieNeural",
    )
    assert settings.silence_timeout_ms == 700
    assert settings.key is not None and settings.key.reveal() == "env-key"
    assert "env-key" not in repr(settings)
    override = AzureSettings.from_env(environ, key="kw-key", region="eastus", language="en-US")
    assert override.key is not None and override.key.reveal() == "kw-key"
    assert (override.region, override.language) == ("eastus", "en-US")
    defaults = AzureSettings.from_env({})
    assert (defaults.key, defaults.region, defaults.voice) == (
        None,
        "westeurope",
        "fi-FI-NooraNeural",
    )


def test_bad_silence_timeouts_are_config_errors() -> None:
    from fsm_voice.errors import ConfigError

    with pytest.raises(ConfigError, match="AZURE_STT_SILENCE_TIMEOUT_MS"):
        AzureSettings.from_env({"AZURE_STT_SILENCE_TIMEOUT_MS": "soon"})
    with pytest.raises(ConfigError, match="positive"):
        AzureSettings.from_env({}, silence_timeout_ms=0)


def test_the_registry_builds_the_azure_recognizer(service: FakeSpeechService) -> None:
    recognizer = create_recognizer(
        "azure", sdk=FakeSpeechSdk(service), key=KEY, language_code="fi-FI", environ={}
    )
    assert isinstance(recognizer, AzureRecognizer)
    assert recognizer.settings.language == "fi-FI" and recognizer.name == "azure"
