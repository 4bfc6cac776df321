"""A call whose TTS always fails ends, fast, with its `calls` row closed.

The finding this reproduces: `serve --providers elevenlabs` without a key took calls,
and every one looped — the prompt failed, `error`, a goodbye that failed, `error` …
— writing tens of thousands of events a second while the caller heard silence.
The providers here are the real ElevenLabs adapters: without a key (no network at
all, as in the finding) on the virtual clock, and over real sockets against the
local fake answering every request with 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.eventlog.observed import ObservedEventLog
from fsm_voice.eventlog.records import CallRecord, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.providers import create_recognizer, create_synthesizer
from fsm_voice.providers.elevenlabs_stt import ElevenLabsRecognizer
from fsm_voice.providers.elevenlabs_tts import ElevenLabsSynthesizer
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.testing import in_process_call
from tests.fake_elevenlabs import FakeElevenLabs

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.anyio

# A looping call ends within a few rounds: a few dozen events, not tens of thousands.
MAX_EVENTS = 150

# machines/appointment.yaml as it was: its apology has no `error` handler of its own.
LOOPING = """
name: looping
initial: greet
variables: {clinic: Riverside Clinic}
global:
  on: {hangup: ended, error: apologize}
states:
  greet:
    actions:
      - say: "Hi, this is {clinic}. Can you make it? Say yes or no."
      - listen: {intents: {confirm: [yes], cancel: [no]}}
    on:
      confirm: ended
      cancel: ended
      noinput: {reprompt: true}
      nomatch: {reprompt: true}
  apologize:
    actions:
      - say: "Sorry, I'm having trouble. Please call {clinic} back. Goodbye."
      - hangup: failed
  ended: {final: true}
"""


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    with SqliteEventLog(tmp_path / "calls.db") as opened:
        yield opened


async def call_without_a_key(
    path: Path, log: SqliteEventLog
) -> tuple[CallRecord, list[EventRecord]]:
    """One call on the ElevenLabs pair with no ELEVENLABS_API_KEY, on the virtual clock."""
    agent = conversation_agent(
        load_machine(path),
        recognizer=lambda: ElevenLabsRecognizer(environ={}),
        synthesizer=ElevenLabsSynthesizer(environ={}),
    )
    async with in_process_call(agent, log=ObservedEventLog(log, _runaway)) as call:
        await call.wait_ended()
    await log.flush()
    (record,) = log.calls()
    return record, list(log.events(record.call_id))


def _runaway(event: EventRecord) -> None:
    # Without loop detection the call never ends (nor yields to a cancel): stop it
    # with a failure instead of hanging the suite.
    if event.seq > 100 * MAX_EVENTS:
        raise AssertionError(f"a runaway call: {event.seq} events and counting")


def conv(events: list[EventRecord], kind: str) -> list[dict[str, object]]:
    return [e.data for e in events if e.source == "conversation" and e.kind == kind]


async def test_a_machine_whose_apology_fails_too_ends_as_loop_detected(
    tmp_path: Path, log: SqliteEventLog
) -> None:
    path = tmp_path / "looping.yaml"
    path.write_text(LOOPING)
    record, events = await call_without_a_key(path, log)
    assert record.end_reason == "conversation:loop_detected"
    assert record.ended_wall_ms is not None and record.final_state == "ended"  # row closed
    assert len(events) < MAX_EVENTS
    (loop,) = conv(events, "loop_detected")
    assert (loop["rule"], loop["state"], loop["event"]) == ("errors_in_a_row", "apologize", "error")
    assert loop["line"] == 6 and loop["count"] == 5
    assert conv(events, "conversation_ended") == [{"state": "apologize", "reason": "loop_detected"}]
    # every prompt failed: nothing was ever sent to the caller
    assert not [e for e in events if e.kind == "first_audio_sent"]


@pytest.mark.parametrize(
    ("machine", "end_reason", "last_state"),
    [
        ("appointment", "conversation:failed", "give_up"),
        ("survey", "conversation:incomplete", "give_up"),
        ("ivr", "conversation:transferred", "agent_now"),
    ],
)
async def test_the_shipped_machines_end_a_call_they_cannot_speak_in_at_once(
    log: SqliteEventLog, machine: str, end_reason: str, last_state: str
) -> None:
    record, events = await call_without_a_key(ROOT / "machines" / f"{machine}.yaml", log)
    assert record.end_reason == end_reason and record.ended_wall_ms is not None
    assert conv(events, "conversation_ended")[0]["state"] == last_state
    assert conv(events, "loop_detected") == [] and len(events) < MAX_EVENTS


@pytest.mark.real_server
@pytest.mark.slow
async def test_serving_the_elevenlabs_pair_with_a_rejected_key_ends_the_call(
    tmp_path: Path, log: SqliteEventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The providers `serve --providers elevenlabs` makes from the environment, with a
    key the service refuses (401)."""
    path = tmp_path / "looping.yaml"
    path.write_text(LOOPING)
    fake = FakeElevenLabs()
    async with fake.serve() as base_url:
        monkeypatch.setenv("ELEVENLABS_API_KEY", "revoked-key")
        monkeypatch.setenv("ELEVENLABS_BASE_URL", base_url)
        tts = create_synthesizer("elevenlabs")
        agent = conversation_agent(
            load_machine(path),
            recognizer=lambda: create_recognizer("elevenlabs"),
            synthesizer=tts,
        )
        app = create_app(ObservedEventLog(log, _runaway), agent=agent, machine_name="looping")
        try:
            async with serve_in_background(app) as server, dial(server.url) as socket:
                async with PhoneSimulator(socket, SystemClock(), RandomIds()) as sim:
                    assert await sim.wait_closed() == 1000  # the agent hung up
                await app.state.voice.wait_finished(1)
        finally:
            await tts.stop()
    await log.flush()
    (record,) = log.calls()
    events = list(log.events(record.call_id))
    assert record.end_reason == "conversation:loop_detected" and record.ended_wall_ms
    assert len(events) < MAX_EVENTS
    assert conv(events, "loop_detected")[0]["state"] == "apologize"
    # the service was asked once and said 401; the adapter failed every later sentence
    assert fake.tts_requests and all(r.api_key == "revoked-key" for r in fake.tts_requests)
    assert sim.received_audio_bytes == 0
