"""Fault injection: each fault is handled the way the runtime promises, and the
faulted run, exported as a fixture, replays with no divergence.

The base call is appointment-happy recorded on the virtual clock (scripted speech),
so every time below is read from that recording, not guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from fsm_voice.cli import main
from fsm_voice.clock import RandomIds, SystemClock, VirtualClock
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import MARK_WATCHDOG_MARGIN_MS, conversation_agent
from fsm_voice.eventlog import SqliteEventLog
from fsm_voice.eventlog.fixture import export_fixture
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import Transcript
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.replay import (
    Recording,
    ReplayInputError,
    ReplayResult,
    load_fixture,
    load_from_log,
    replay,
)
from fsm_voice.replay.fault_replay import DUPLICATE_SUFFIX, recorded_backoffs
from fsm_voice.replay.faults import (
    DroppableRecognizer,
    Fault,
    FaultInjector,
    parse_fault,
)
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator
from tests.recorded_calls import ROOT, record_calls

FRAME = 160


@pytest.fixture(scope="module")
def happy_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("faults") / "calls.db"
    return db, record_calls(db, ("appointment-happy",))["appointment-happy"]


@pytest.fixture(scope="module")
def happy(happy_db: tuple[Path, str]) -> Recording:
    db, call_id = happy_db
    with SqliteEventLog(db) as log:
        return load_from_log(log, call_id)


def _first(events: Sequence[EventRecord], kind: str, **data: object) -> EventRecord:
    return next(
        e for e in events if e.kind == kind and all(e.data.get(k) == v for k, v in data.items())
    )


def _stt_moved(e: EventRecord) -> bool:
    """The recogniser's machine changed state (read as v2: `state_entered`, source stt)."""
    return e.source == "stt" and e.kind == "state_entered"


def _kinds(events: Sequence[EventRecord], *kinds: str) -> list[str]:
    return [e.kind for e in events if e.kind in kinds]


def _faults(events: Sequence[EventRecord]) -> list[tuple[int, dict[str, object]]]:
    return [(e.t_ms, e.data) for e in events if e.kind == "fault_injected"]


def _facts(events: Sequence[EventRecord]) -> list[tuple[object, ...]]:
    return [(e.seq, e.t_ms, e.source, e.kind, e.data) for e in events]


def _end_state(events: Sequence[EventRecord]) -> str:
    return str(_first(events, "conversation_ended").data["state"])


def _replays_as_fixture(result: ReplayResult, tmp_path: Path, call_id: str | None = None) -> None:
    """Export the faulted run; replaying it matches, twice to the byte."""
    assert result.log is not None
    out = tmp_path / "faulted"
    export_fixture(result.log, call_id or result.call_id, out)
    again = replay(out)
    assert again.divergence is None, again.divergence.describe()
    assert again.compared > 0
    assert replay(out).stream_json() == again.stream_json()
    # The fault comes back from the log: the replay logs it again, at its time.
    faulted = result.log.events(call_id or result.call_id)
    assert _faults(again.events) == _faults(faulted)
    # And so does everything else: the replay is the faulted run, event for event.
    assert _facts(again.events) == _facts(faulted)


# --- the fault spec ---


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("stt_drop@4000", Fault("stt_drop", 4000)),
        (" mark_lost @ 250ms ", Fault("mark_lost", 250)),
        ("hangup_in_prompt@0", Fault("hangup_in_prompt", 0)),
    ],
)
def test_a_fault_is_written_kind_at_ms(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault
    assert parse_fault(str(fault)) == fault


@pytest.mark.parametrize(
    ("text", "says"),
    [("socket_fire@10", "unknown kind"), ("stt_drop", "KIND@MS"), ("stt_drop@-5", "KIND@MS")],
)
def test_a_bad_fault_is_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(ReplayInputError, match=says):
        parse_fault(text)


def test_a_fault_outside_the_call_is_refused(happy: Recording) -> None:
    end = happy.duration_ms
    last_echo = max(e.t_ms for e in happy.events if e.kind == "mark_echoed")
    last_prompt_end = max(e.t_ms for e in happy.events if e.kind == "prompt_finished")
    with pytest.raises(ReplayInputError, match="live from"):
        replay(happy, faults=[Fault("twilio_drop", end + 1)])
    with pytest.raises(ReplayInputError, match="no mark is echoed"):
        replay(happy, faults=[Fault("mark_lost", last_echo + 1)])
    with pytest.raises(ReplayInputError, match="no prompt plays"):
        replay(happy, faults=[Fault("hangup_in_prompt", last_prompt_end)])


def test_live_calls_take_only_the_runtimes_own_faults() -> None:
    assert FaultInjector.live([Fault("stt_drop", 10)]).injections[0].t_ms == 10
    with pytest.raises(ReplayInputError, match="twilio_drop@5"):
        FaultInjector.live([Fault("twilio_drop", 5)])


# --- each kind: handled, logged, and the faulted run replays ---


def test_stt_drop_reconnects_and_loses_nothing_the_caller_said(
    happy: Recording, tmp_path: Path
) -> None:
    said = _first(happy.events, "transcript_committed")  # "reschedule"
    drop_ms = said.t_ms - 100  # the recogniser is about to commit it
    result = replay(happy, faults=[Fault("stt_drop", drop_ms)])
    events = result.events

    injected = _first(events, "fault_injected")
    assert (injected.t_ms, injected.data["fault"]) == (drop_ms, "stt_drop")
    states = [(e.t_ms, e.data["state"]) for e in events if _stt_moved(e)]
    # The provider machine's path for a lost socket: backoff 1 s (jitter 0.5 → ±0).
    assert states[2:5] == [
        (drop_ms, "reconnecting"),
        (drop_ms + 1000, "connecting"),
        (drop_ms + 1000, "streaming"),
    ]
    error = _first(events, "provider_error")
    assert error.data["fatal"] is False and error.t_ms == drop_ms
    # What the recogniser heard during the gap is reported after the reconnect.
    texts = [e.data["text"] for e in events if e.kind == "transcript_committed"]
    assert texts == [e.data["text"] for e in happy.events if e.kind == "transcript_committed"]
    assert _first(events, "transcript_committed").t_ms == drop_ms + 1000
    assert _end_state(events) == _end_state(happy.events) == "rescheduled"
    _replays_as_fixture(result, tmp_path)


def test_twilio_drop_ends_the_call_cleanly(happy: Recording, tmp_path: Path) -> None:
    drop_ms = _first(happy.events, "transcript_committed").t_ms + 500
    result = replay(happy, faults=[Fault("twilio_drop", drop_ms)])
    events = result.events
    closed = _first(events, "socket_closed")
    assert (closed.t_ms, closed.data["code"]) == (drop_ms, 1006)
    assert _first(events, "call_ended").data["reason"] == "socket_dropped"
    assert _first(events, "conversation_ended").t_ms == drop_ms
    assert _kinds(events, "fault_injected", "socket_closed", "call_ended")[:2] == [
        "fault_injected",
        "socket_closed",
    ]
    assert result.log is not None
    call = result.log.call(result.call_id)
    assert call is not None and call.end_reason == "socket_dropped"
    assert call.outcome == "completed"
    _replays_as_fixture(result, tmp_path)


def test_a_lost_mark_is_released_by_the_watchdog(happy: Recording, tmp_path: Path) -> None:
    echo = _first(happy.events, "mark_echoed")
    name = echo.data["name"]
    requested = _first(happy.events, "mark_requested", name=name)
    result = replay(happy, faults=[Fault("mark_lost", echo.t_ms)])
    events = result.events

    assert _first(events, "fault_injected").data["mark"] == name
    released = _first(events, "mark_released", name=name)
    assert released.data["outcome"] == "timeout"
    assert released.t_ms == requested.t_ms + requested.data["timeout_ms"]
    prompt = name.split(".")[0]
    finished = _first(events, "prompt_finished", prompt_id=prompt)
    assert finished.t_ms >= released.t_ms  # the prompt waited for its watchdog, no longer
    assert _end_state(events) == "rescheduled"  # and the conversation went on to its end
    _replays_as_fixture(result, tmp_path)


def test_a_lost_mark_then_a_barge_in_keeps_the_conversation(
    happy: Recording, tmp_path: Path
) -> None:
    # The caller speaks into a prompt whose first mark was lost: the barge-in clears
    # the prompt with one mark released and one pending. (This once ended the call.)
    third_prompt_echo = [e for e in happy.events if e.kind == "mark_echoed"][5]
    result = replay(happy, faults=[Fault("mark_lost", third_prompt_echo.t_ms)])
    assert "agent_finished" not in result.stream_json()
    assert _end_state(result.events) == "rescheduled"
    _replays_as_fixture(result, tmp_path)


def test_every_prompt_mark_has_a_watchdog_as_long_as_its_audio(happy: Recording) -> None:
    queued: dict[str, int] = {}
    for event in happy.events:
        if event.kind == "sentence_synthesized":
            prompt = event.data["prompt_id"]
            queued[prompt] = queued.get(prompt, 0) + event.data["bytes"]
        if event.kind == "mark_requested":
            prompt = event.data["name"].split(".")[0]
            expected = queued[prompt] // 8 + MARK_WATCHDOG_MARGIN_MS
            assert event.data["timeout_ms"] == expected


def test_a_duplicate_stream_is_refused_and_the_call_goes_on(
    happy: Recording, tmp_path: Path
) -> None:
    at_ms = _first(happy.events, "first_audio_sent").t_ms + 100
    result = replay(happy, faults=[Fault("duplicate_stream", at_ms)])
    # The original decides exactly as recorded: the duplicate changed nothing for it.
    assert result.divergence is None, result.divergence.describe()
    assert _first(result.events, "fault_injected").t_ms == at_ms

    assert result.log is not None
    duplicate_id = result.call_id + DUPLICATE_SUFFIX
    duplicate = result.log.events(duplicate_id)
    refused = _first(duplicate, "duplicate_stream_refused")
    assert refused.data == {
        "call_sid": happy.events[3].data["call_sid"],
        "live_call": happy.call_id,
    }
    assert _first(duplicate, "call_ended").data["reason"] == "duplicate_stream"
    assert not [e for e in duplicate if e.source == "conversation"]
    _replays_as_fixture(result, tmp_path)
    # The refused call replays too: its log says which call held the CallSid.
    _replays_as_fixture(result, tmp_path / "dup", duplicate_id)


def test_a_hangup_in_a_prompt_ends_the_call_cleanly(happy: Recording, tmp_path: Path) -> None:
    second = [e for e in happy.events if e.kind == "first_audio_sent"][1]
    result = replay(happy, faults=[Fault("hangup_in_prompt", second.t_ms - 1)])
    events = result.events
    injected = _first(events, "fault_injected")
    assert injected.data["prompt_id"] == second.data["prompt_id"]
    hung_up = _first(events, "caller_hung_up")
    assert hung_up.data["reason"] == "caller_hangup"
    finished = _first(events, "prompt_finished", prompt_id=second.data["prompt_id"])
    assert finished.t_ms == hung_up.t_ms and finished.data["heard"] == []
    released = [e.data["outcome"] for e in events if e.kind == "mark_released"]
    assert released[-1] == "call_ended"
    assert _end_state(events) == "ended"
    _replays_as_fixture(result, tmp_path)


def test_several_faults_in_one_call(happy: Recording, tmp_path: Path) -> None:
    said = _first(happy.events, "transcript_committed")
    last = [e for e in happy.events if e.kind == "mark_echoed"][-2]
    faults = [Fault("stt_drop", said.t_ms - 100), Fault("mark_lost", last.t_ms)]
    result = replay(happy, faults=faults)
    assert [e.data["fault"] for e in result.events if e.kind == "fault_injected"] == [
        "stt_drop",
        "mark_lost",
    ]
    _replays_as_fixture(result, tmp_path)


# --- the seam: a recogniser connection that drops ---


class _Heard:
    """The recogniser's listener as the runtime's would be: it writes down calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_speech_started(self, t_ms: int) -> None:
        self.calls.append(("speech", t_ms))

    def on_recognizing(self, text: str) -> None:
        self.calls.append(("partial", text))

    def on_committed(self, transcript: Transcript) -> None:
        self.calls.append(("committed", (transcript.text, transcript.start_ms)))

    def on_error(self, reason: str, fatal: bool) -> None:
        self.calls.append(("error", (reason, fatal)))

    def on_state(self, state: str, detail: str) -> None:
        self.calls.append(("state", state))


_LOUD = b"\x00" * FRAME  # μ-law 0x00: full scale, speech to an energy endpointer
_QUIET = b"\xff" * FRAME


async def _feed(link: DroppableRecognizer, clock: VirtualClock, frames: list[bytes]) -> None:
    for frame in frames:
        link.feed(frame, clock.now_ms())
        await clock.advance(20)


@pytest.mark.anyio
async def test_speech_during_the_gap_is_buffered_and_recognised_after() -> None:
    clock = VirtualClock()
    heard = _Heard()
    link = DroppableRecognizer(ScriptedRecognizer(["hello"], endpoint_ms=100), clock)
    await link.start(heard)
    link.drop("socket reset")
    assert link.machine.state == "reconnecting"
    await _feed(link, clock, [_LOUD] * 10 + [_QUIET] * 10)  # 400 ms, all in the gap
    assert ("committed", ("hello", 0)) not in heard.calls
    await clock.advance(1000)  # the backoff: reconnect, then the buffered frames
    assert heard.calls == [
        ("state", "connecting"),
        ("state", "streaming"),
        ("state", "reconnecting"),
        ("error", ("socket reset", False)),
        ("state", "connecting"),
        ("state", "streaming"),
        ("speech", 0),
        ("committed", ("hello", 0)),
    ]
    await link.stop()


@pytest.mark.anyio
async def test_the_gap_buffer_is_bounded_and_says_what_it_lost() -> None:
    clock = VirtualClock()
    heard = _Heard()
    link = DroppableRecognizer(ScriptedRecognizer(), clock, max_buffered_frames=5)
    await link.start(heard)
    link.drop()
    await _feed(link, clock, [_QUIET] * 8)
    await clock.advance(1000)
    assert ("error", ("3 caller frames lost while reconnecting", False)) in heard.calls
    assert link.machine.is_streaming


# --- the command line ---


def test_cli_injects_saves_and_replays_the_faulted_run(
    happy: Recording,
    happy_db: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "happy"
    with SqliteEventLog(happy_db[0]) as log:
        export_fixture(log, happy_db[1], source)
    drop = _first(happy.events, "transcript_committed").t_ms + 300
    out = tmp_path / "dropped"
    args = ["replay", str(source), "--inject", f"twilio_drop@{drop}", "--save-as", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "faulted" in printed and "socket_dropped" in printed
    assert main(["replay", str(out)]) == 0
    assert "decisions as recorded" in capsys.readouterr().out
    assert main(["replay", str(source), "--inject", "nonsense@1"]) == 1
    assert "unknown kind" in capsys.readouterr().err


# --- the corpus's provider reconnect, recorded live with the offline providers ---


def test_the_corpus_has_a_provider_reconnect_that_completes() -> None:
    fixture = ROOT / "replays" / "appointment-stt-reconnect"
    result = replay(fixture)
    assert result.divergence is None, result.divergence.describe()
    events = result.events
    drop = _first(events, "fault_injected")
    assert drop.data["fault"] == "stt_drop"
    after = [e for e in events if e.t_ms >= drop.t_ms]
    states = [e.data["state"] for e in after if _stt_moved(e)]
    assert states[:3] == ["reconnecting", "connecting", "streaming"]
    reconnected = _first(after, "state_entered", machine="stt", state="streaming")
    first_heard = _first(after, "transcript_committed")
    # Speech from the gap, recognised once the connection was back.
    assert first_heard.data["text"] == "reschedule"
    assert first_heard.data["end_ms"] < reconnected.t_ms <= first_heard.t_ms
    assert _end_state(events) == "rescheduled"


def _link_story(events: Sequence[EventRecord]) -> list[tuple[int, str, object]]:
    """The recogniser's connection after the call began: (t_ms, kind, state or fatal)."""
    began = _first(events, "conversation_started").seq
    return [
        (e.t_ms, e.kind, e.data.get("state", e.data.get("fatal")))
        for e in events
        if e.seq > began and (_stt_moved(e) or e.kind == "provider_error")
    ]


def test_offline_mode_drops_the_real_recogniser_again_as_recorded() -> None:
    # Offline mode's recogniser is real: the logged drop is re-enacted on it, with
    # the recorded backoff, and what the caller said in the gap is heard after.
    fixture = ROOT / "replays" / "appointment-stt-reconnect"
    recording = load_fixture(fixture)
    result = replay(fixture, mode="offline")
    assert result.divergence is None, result.divergence.describe()
    assert _link_story(result.events) == _link_story(recording.events)
    drop = _first(result.events, "fault_injected")
    reconnected = _first(
        result.events, "state_entered", machine="stt", state="streaming", detail="reconnected"
    )
    heard = _first(result.events, "transcript_committed")
    assert heard.data["text"] == "reschedule" and drop.t_ms < reconnected.t_ms <= heard.t_ms
    assert _first(result.events, "speech_started").t_ms >= reconnected.t_ms  # held till then
    assert result.stream_json() == replay(fixture, mode="offline").stream_json()


def test_recorded_backoffs_are_read_from_the_provider_states() -> None:
    recording = load_fixture(ROOT / "replays" / "appointment-stt-reconnect")
    assert recorded_backoffs(recording.events) == [1001]
    assert recorded_backoffs(load_fixture(ROOT / "replays" / "appointment-happy").events) == []


# --- a duplicate stream on a real server ---


SID = "CAsame"


@pytest.mark.anyio
async def test_a_real_server_refuses_a_second_stream_for_a_live_call_sid(tmp_path: Path) -> None:
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    agent = conversation_agent(
        spec, recognizer=lambda: ScriptedRecognizer(), synthesizer=ScriptedSynthesizer()
    )
    clock = SystemClock()
    with SqliteEventLog(tmp_path / "calls.db") as log:
        app = create_app(log, agent=agent, machine_name=spec.name, clock=clock)
        async with serve_in_background(app) as server:
            async with dial(server.url) as first_socket:
                first = PhoneSimulator(first_socket, clock, RandomIds(), call_sid=SID)
                async with first:
                    await first.wait_played_bytes(1)  # its conversation is speaking
                    async with dial(server.url) as second_socket:
                        second = PhoneSimulator(
                            second_socket, clock, RandomIds(), call_sid="CAsame"
                        )
                        async with second:
                            assert await second.wait_closed() == 1000  # hung up by us
                    await app.state.voice.wait_finished(1)
                    assert first.close_code is None  # the first call goes on
                    await first.send_silence(100)
            await app.state.voice.wait_finished(2)
        refused_id, original_id = app.state.voice.finished
        await log.flush()
        refused = log.events(refused_id)
        assert _first(refused, "duplicate_stream_refused").data == {
            "call_sid": SID,
            "live_call": original_id,
        }
        assert not [e for e in refused if e.source == "conversation"]
        refused_call = log.call(refused_id)
        assert refused_call is not None and refused_call.end_reason == "duplicate_stream"
        original = log.events(original_id)
        assert _first(original, "conversation_started")
        assert _first(original, "call_ended").data["reason"] == "caller_hangup"
