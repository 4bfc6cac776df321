"""ElevenLabs Scribe realtime through the SDK's realtime client against the local fake.

Real WebSockets on 127.0.0.1; backoff, connect timeouts and the echo window run on a
VirtualClock that moves only when a test says so, so "retries after 1, 2, 4 s, then
error" is instant and exact. Tests wait for facts (a state, bytes received) through
conditions, never for time; `fail_after` is only a guard against a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import pytest

from fsm_voice.clock import VirtualClock
from fsm_voice.providers import create_recognizer
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import Transcript
from fsm_voice.providers.elevenlabs_client import ElevenLabsSettings
from fsm_voice.providers.elevenlabs_stt import ElevenLabsRecognizer
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs, silence, tone

pytestmark = pytest.mark.anyio
GUARD_S = 10  # a hang guard, never a timing assertion


class Listener:
    """Records every callback; `until(predicate)` waits for a fact."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.states: list[tuple[str, str]] = []
        self.errors: list[tuple[str, bool]] = []
        self.committed: list[Transcript] = []
        self.discarded: list[Transcript] = []
        self._changed = asyncio.Event()

    def _note(self, kind: str, value: object) -> None:
        self.events.append((kind, value))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(GUARD_S):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def on_speech_started(self, t_ms: int) -> None:
        self._note("speech_started", t_ms)

    def on_recognizing(self, text: str) -> None:
        self._note("recognizing", text)

    def on_committed(self, transcript: Transcript) -> None:
        self.committed.append(transcript)
        self._note("committed", transcript.text)

    def on_discarded(self, transcript: Transcript, why: str) -> None:
        self.discarded.append(transcript)
        self._note("discarded", why)

    def on_error(self, reason: str, fatal: bool) -> None:
        self.errors.append((reason, fatal))
        self._note("error", reason)

    def on_state(self, state: str, detail: str) -> None:
        self.states.append((state, detail))
        self._note("state", state)

    def state(self) -> str:
        return self.states[-1][0] if self.states else "idle"

    def names(self) -> list[str]:
        return [s for s, _ in self.states]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeElevenLabs, str]]:
    server = FakeElevenLabs(["yes please", "tuesday"])
    async with server.serve() as base_url:
        yield server, base_url


def recognizer(base_url: str, clock: VirtualClock, **kw: object) -> ElevenLabsRecognizer:
    options: dict[str, object] = {"api_key": API_KEY, "base_url": base_url, "environ": {}}
    options.update(kw)
    return ElevenLabsRecognizer(clock=clock, **options)  # type: ignore[arg-type]


def feed(stt: ElevenLabsRecognizer, audio: bytes, t_ms: int) -> int:
    """Feed `audio` as 20 ms frames from call time `t_ms`; returns the time after."""
    for start in range(0, len(audio), 160):
        stt.feed(audio[start : start + 160], t_ms)
        t_ms += 20
    return t_ms


async def received(server: FakeElevenLabs, size: int) -> None:
    with anyio.fail_after(GUARD_S):
        await server.wait_for(lambda: len(server.received()) >= size)


async def test_transcribes_ulaw_with_vad_commits(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    assert listener.names() == ["connecting", "streaming"]
    speech, after = silence(200) + tone(400), silence(400)
    audio = speech + after
    t = feed(stt, speech, 1000)
    await listener.until(
        lambda: bool(listener.committed) or "speech_started" in dict(listener.events)
    )
    feed(stt, after, t)
    await listener.until(lambda: bool(listener.committed))
    (transcript,) = listener.committed
    assert transcript.text == "yes please"
    kinds = [k for k, _ in listener.events if k in ("speech_started", "recognizing", "committed")]
    assert kinds == ["speech_started", "recognizing", "committed"]
    # word timestamps (seconds into the session's audio) placed in the call: the tone
    assert (transcript.start_ms, transcript.end_ms) == (1200, 1600)
    assert transcript.confidence == 0.951  # exp(mean word logprob)
    await received(server, len(audio))
    (session,) = server.sessions
    assert bytes(session.audio) == audio  # μ-law in, as it came: nothing transcoded
    assert session.api_key == API_KEY
    assert session.query["model_id"] == "scribe_v2_realtime"
    assert session.query["audio_format"] == "ulaw_8000"
    assert session.query["commit_strategy"] == "vad"
    assert session.query["language_code"] == "fi"
    assert session.query["include_timestamps"] == "true"
    await stt.stop()
    assert listener.state() == "closed"
    await server.wait_for(lambda: session.closed_by == "client")


async def test_a_dropped_socket_reconnects_and_buffered_audio_follows(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    before = silence(600)
    t = feed(stt, before, 0)
    await received(server, len(before))
    server.drop()
    await listener.until(lambda: listener.state() == "reconnecting")
    during = bytes(range(256)) * 25  # 800 ms of distinctive bytes, fed with no session
    feed(stt, during, t)
    assert len(server.received()) == len(before)
    await clock.advance(1000)  # the first retry (1 s, jitter 0.5: no offset)
    await listener.until(lambda: listener.names()[-2:] == ["connecting", "streaming"])
    await received(server, len(before) + len(during))
    assert server.received() == before + during  # every byte, in order
    assert bytes(server.sessions[1].audio) == during
    assert listener.errors and listener.errors[0][1] is False
    assert "socket_closed" in listener.errors[0][0]
    assert "800 ms of caller audio to send" in listener.states[-1][1]
    await stt.stop()


@pytest.mark.parametrize(
    "kind",
    [
        "queue_overflow",
        "resource_exhausted",
        "transcriber_error",
        "chunk_size_exceeded",
        "error",
        "rate_limited",
    ],
)
async def test_reconnectable_errors_retry_on_their_own(
    fake: tuple[FakeElevenLabs, str], kind: str
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    server.send_error(kind)
    await listener.until(lambda: listener.state() == "reconnecting")
    assert listener.errors == [(f"elevenlabs {kind}: fake {kind}", False)]
    await clock.advance(1000)
    await listener.until(lambda: listener.state() == "streaming")
    assert len(server.sessions) == 2
    await stt.stop()


@pytest.mark.parametrize("kind", ["auth_error", "quota_exceeded", "input_error"])
async def test_terminal_errors_go_straight_to_error(
    fake: tuple[FakeElevenLabs, str], kind: str
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    server.send_error(kind)
    await listener.until(lambda: listener.state() == "error")
    assert listener.errors == [(f"elevenlabs {kind}: fake {kind}", True)]
    await clock.advance(60_000)
    assert len(server.sessions) == 1  # no retry
    feed(stt, silence(100), 0)  # audio after the end is ignored, not an exception
    await stt.stop()


async def test_a_wrong_key_at_the_handshake_is_terminal(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock, api_key="wrong")
    await stt.start(listener)
    assert listener.names() == ["connecting", "error"]
    assert listener.errors == [("elevenlabs auth_error: fake auth_error", True)]
    (session,) = server.sessions
    assert session.api_key == "wrong" and session.closed_by == "error:auth_error"
    await stt.stop()


def jitters(*values: float) -> Callable[[], float]:
    source: Iterator[float] = iter(values)
    return lambda: next(source)


async def test_backoff_is_1_2_4_s_with_jitter_then_error(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    # jitter 0 → -25 %, 0.5 → nominal, 1 → +25 %
    stt = recognizer(base_url, clock, max_retries=3, jitter=jitters(0.0, 0.5, 1.0))
    await stt.start(listener)
    server.plan_sessions("drop", "stall", "transcriber_error")
    server.drop()
    delays = []
    for retry, expected in enumerate((750, 2000, 5000), start=1):
        await listener.until(lambda n=retry: listener.names().count("reconnecting") == n)
        delays.append(int(listener.states[-1][1].rsplit(" in ", 1)[1].split()[0]))
        await clock.advance(expected - 1)
        assert listener.state() == "reconnecting"  # not a millisecond early
        await clock.advance(1)
        assert listener.state() == "connecting"
        if retry == 2:  # the stalled session: no session_started, so the connect times out
            await server.wait_for(lambda: len(server.sessions) == 3)
            await clock.advance(10_000)
    await listener.until(lambda: listener.state() == "error")
    assert delays == [750, 2000, 5000]
    assert [fatal for _, fatal in listener.errors] == [False, False, False, True]
    assert "connect_timeout" in listener.errors[2][0]
    assert listener.errors[-1][0].endswith("(after 3 retries)")
    assert len(server.sessions) == 4
    await stt.stop()


async def test_immediate_first_retry_then_backoff(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock, immediate_first_retry=True)
    await stt.start(listener)
    server.plan_sessions("drop")
    server.drop()
    await listener.until(lambda: listener.names().count("reconnecting") == 2)
    assert "attempt 2 in 0 ms" in listener.states[2][1]
    assert "attempt 3 in 1000 ms" in listener.states[-1][1]
    await clock.advance(1000)
    await listener.until(lambda: listener.state() == "streaming")
    assert len(server.sessions) == 3
    await stt.stop()


async def test_the_reconnect_buffer_is_bounded_and_its_loss_reported(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock, max_buffer_ms=100)
    await stt.start(listener)
    server.drop()
    await listener.until(lambda: listener.state() == "reconnecting")
    audio = bytes(range(240)) * 10  # 300 ms
    feed(stt, audio, 0)
    assert stt.dropped_bytes == 200 * 8
    assert [r for r, _ in listener.errors if "buffer full" in r] == [
        "audio buffer full (100 ms): dropping the oldest caller audio"
    ]
    await clock.advance(1000)
    await listener.until(lambda: listener.state() == "streaming")
    assert "200 ms dropped (buffer full)" in listener.states[-1][1]
    await received(server, 800)
    assert server.received() == audio[-800:]  # the newest 100 ms, in order
    await stt.stop()


async def test_echo_after_the_agent_stops_is_discarded(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock, echo_discard_ms=400, timestamps=False)
    await stt.start(listener)
    stt.set_speaking(True)
    await clock.advance(2000)
    stt.set_speaking(False)
    server.send({"message_type": "partial_transcript", "text": "the agent's"})
    server.send({"message_type": "committed_transcript", "text": "the agent's own words"})
    await listener.until(lambda: bool(listener.discarded))
    assert [t.text for t in stt.discarded] == ["the agent's own words"]
    await clock.advance(399)
    server.send({"message_type": "committed_transcript", "text": "still echo"})
    await listener.until(lambda: len(listener.discarded) == 2)
    await clock.advance(1)
    server.send({"message_type": "partial_transcript", "text": "hello"})
    server.send({"message_type": "committed_transcript", "text": "hello there"})
    await listener.until(lambda: bool(listener.committed))
    assert [t.text for t in listener.committed] == ["hello there"]
    started = [v for k, v in listener.events if k == "speech_started"]
    assert len(started) == 1  # the echo's partial did not look like the caller
    await stt.stop()


async def test_speech_while_the_agent_speaks_is_heard_for_barge_in(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    stt.set_speaking(True)
    feed(stt, tone(300) + silence(400), 5000)
    await listener.until(lambda: bool(listener.committed))
    assert [k for k, _ in listener.events if k == "speech_started"] == ["speech_started"]
    assert listener.committed[0].text == "yes please"
    await received(server, 700 * 8)
    assert server.received() == tone(300) + silence(400)
    await stt.stop()


async def test_a_long_agent_turn_renews_the_session(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock, renew_after_speaking_ms=5000)
    await stt.start(listener)
    stt.set_speaking(True)
    await clock.advance(4999)
    stt.set_speaking(False)  # a short turn: the same session
    stt.set_speaking(True)
    await clock.advance(5000)
    stt.set_speaking(False)
    await listener.until(lambda: listener.names().count("streaming") == 2)
    assert listener.names() == [
        "connecting",
        "streaming",
        "reconnecting",
        "connecting",
        "streaming",
    ]
    assert "after a long agent turn" in listener.states[2][1]
    assert listener.errors == []  # planned: not an error
    await server.wait_for(lambda: server.sessions[0].closed_by == "client")
    audio = silence(100)
    feed(stt, audio, 20_000)
    await received(server, len(audio))
    assert bytes(server.sessions[1].audio) == audio
    await stt.stop()


async def test_the_session_time_limit_starts_a_new_session_cleanly(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    server.session_limit_ms = 200
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    first = silence(200)
    t = feed(stt, first, 0)
    await listener.until(lambda: stt.sessions_opened == 2)
    assert server.sessions[0].closed_by == "time_limit"
    assert "session time limit" in listener.states[2][1]
    assert listener.errors == []
    second = bytes(range(90, 250)) * 5
    feed(stt, second, t)
    await received(server, len(first) + len(second))
    assert server.received() == first + second
    await stt.stop()


async def test_stop_then_start_again(fake: tuple[FakeElevenLabs, str]) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    await stt.stop()
    await stt.start(listener)
    assert listener.names() == ["connecting", "streaming", "closed", "connecting", "streaming"]
    feed(stt, silence(100), 0)
    await received(server, 800)
    assert len(server.sessions) == 2 and bytes(server.sessions[1].audio) == silence(100)
    await stt.stop()


async def test_no_key_is_a_clear_fatal_error() -> None:
    listener = Listener()
    stt = ElevenLabsRecognizer(environ={}, clock=VirtualClock())
    await stt.start(listener)
    assert listener.names() == ["connecting", "error"]
    assert listener.errors == [("elevenlabs auth_error: ELEVENLABS_API_KEY is not set", True)]
    await stt.stop()


def test_the_registry_builds_it_from_env_and_kwargs() -> None:
    env = {"ELEVENLABS_API_KEY": "k", "STT_LANGUAGE_CODE": "en", "STT_MODEL_ID": "scribe_x"}
    stt = create_recognizer("elevenlabs", environ=env, language_code="sv")
    assert isinstance(stt, ElevenLabsRecognizer)
    assert stt.settings.language_code == "sv" and stt.settings.stt_model == "scribe_x"
    assert "k" not in repr(stt.settings.api_key)
    assert ElevenLabsSettings.from_env({}).language_code == "fi"


def test_the_machine_renews_without_counting_or_reporting() -> None:
    machine = pm.ProviderMachine("stt:test")
    assert machine.fire(pm.Renew("idle")).effects == ()  # nothing to renew yet
    machine.fire(pm.Start())
    machine.fire(pm.Connected())
    step = machine.fire(pm.Renew("session time limit"))
    assert (step.dest, machine.state) == ("reconnecting", "reconnecting")
    assert step.effects == (pm.ScheduleRetry(1, 0, "session time limit"),)
    assert machine.retries == 0
    assert machine.fire(pm.Retry()).effects == (pm.Connect(1),)


def test_the_machine_can_retry_at_once_then_back_off() -> None:
    machine = pm.ProviderMachine("stt:test", immediate_first_retry=True, max_retries=4)
    assert [machine.retry_delay_ms(n) for n in (1, 2, 3, 4)] == [0, 1000, 2000, 4000]
    plain = pm.ProviderMachine("stt:test")
    assert [plain.retry_delay_ms(n) for n in (1, 2, 3)] == [1000, 2000, 4000]


async def test_without_timestamps_times_are_estimated_from_the_audio_fed(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock, timestamps=False)
    await stt.start(listener)
    t = feed(stt, silence(200) + tone(400), 1000)
    await listener.until(lambda: "speech_started" in dict(listener.events))
    feed(stt, silence(400), t)
    await listener.until(lambda: bool(listener.committed))
    (transcript,) = listener.committed
    # as far as the audio had gone when the service spoke: an upper bound
    assert (transcript.text, transcript.start_ms, transcript.end_ms) == ("yes please", 1600, 2000)
    assert transcript.confidence is None
    assert "include_timestamps" not in server.sessions[0].query or (
        server.sessions[0].query["include_timestamps"] == "false"
    )
    await stt.stop()


async def test_word_times_stay_right_across_a_reconnect_and_a_gap(
    fake: tuple[FakeElevenLabs, str],
) -> None:
    server, base_url = fake
    listener, clock = Listener(), VirtualClock()
    stt = recognizer(base_url, clock)
    await stt.start(listener)
    t = feed(stt, silence(400), 0)
    await received(server, 400 * 8)
    server.drop()
    await listener.until(lambda: listener.state() == "reconnecting")
    # the line lost 1 s (no frames from 400 to 1400 ms), then the caller speaks
    feed(stt, silence(100) + tone(300) + silence(400), t + 1000)
    await clock.advance(1000)
    await listener.until(lambda: bool(listener.committed))
    (transcript,) = listener.committed
    assert (transcript.start_ms, transcript.end_ms) == (1500, 1800)
    await stt.stop()
