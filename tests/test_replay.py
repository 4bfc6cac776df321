"""Replay: real recorded calls replay as recorded, in both modes, and changes show.

Each call is recorded the way the scripted end-to-end tests run them (runtime,
conversation machine, phone simulator, caller script, scripted speech, virtual clock)
and then replayed through a fresh runtime with the recorded providers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import anyio
import pytest

from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS
from fsm_voice.cli import main
from fsm_voice.conversation.language.loader import load_machine, load_machine_text
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.eventlog import SqliteEventLog
from fsm_voice.eventlog.fixture import export_fixture
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.offline_stt import DecoderPool
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.replay import (
    Recording,
    ReplayDivergence,
    ReplayInputError,
    assert_replays,
    load_fixture,
    load_from_log,
    replay,
)
from fsm_voice.replay.compare import decisions
from fsm_voice.replay.driver import ReplayClock
from fsm_voice.replay.offline import SAME_UTTERANCE_MS
from fsm_voice.replay.recording import CallerFrames
from fsm_voice.simulator.caller import ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script

ROOT = Path(__file__).resolve().parent.parent
MULAW_SILENCE = b"\xff"
CALLS = {
    "appointment-happy": "appointment",
    "appointment-silent": "appointment",  # noinput escalation, then the fallback
    "appointment-bargein": "appointment",
    "appointment-hangup": "appointment",  # the caller hangs up mid-prompt
    "survey-nomatch": "survey",
    "ivr-balance": "ivr",  # DTMF and a hook
    "ivr-agent": "ivr",  # a transfer
}


async def _record(caller: str, log: MemoryEventLog | SqliteEventLog) -> str:
    from fsm_voice.testing import in_process_call

    spec = load_machine(ROOT / "machines" / f"{CALLS[caller]}.yaml")
    script = load_caller_script(ROOT / "callers" / f"{caller}.yaml")
    agent = conversation_agent(
        spec,
        recognizer=lambda: ScriptedRecognizer(script.lines()),
        synthesizer=ScriptedSynthesizer(),
    )
    async with in_process_call(agent, log=log, custom_parameters={"caller": "+15550123"}) as call:
        await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
        await call.wait_ended()
    call_id = call.runtime.call_id
    log.update_call(call_id, machine=spec.name)  # as `serve` names it
    await log.flush()
    return call_id


@cache
def recorded(caller: str) -> MemoryEventLog:
    log = MemoryEventLog()
    anyio.run(_record, caller, log)
    return log


def changed(machine: str, old: str, new: str) -> MachineSpec:
    path = ROOT / "machines" / f"{machine}.yaml"
    text = path.read_text()
    assert old in text
    return load_machine_text(text.replace(old, new, 1), path)


@pytest.mark.parametrize("caller", list(CALLS))
def test_recorded_calls_replay_as_recorded(caller: str) -> None:
    log = recorded(caller)
    result = assert_replays(log)
    recording = load_from_log(log)
    assert result.ok and result.compared == len(decisions(recording.events)) > 20
    # Beyond the decisions, the replayed log is the recorded one, event for event.
    assert [(e.t_ms, e.source, e.kind, e.data) for e in result.events] == [
        (e.t_ms, e.source, e.kind, e.data) for e in recording.events
    ]


@pytest.mark.parametrize("caller", ["appointment-bargein", "ivr-balance"])
def test_replayed_audio_tracks_are_the_recorded_ones(caller: str) -> None:
    log = recorded(caller)
    (call,) = log.calls()
    result = replay(log)
    # The caller's frames went back in, the agent's sentences came back out, byte for byte.
    caller_track = b"".join(c.payload for c in log.audio(call.call_id, "caller"))
    agent_track = b"".join(c.payload for c in log.audio(call.call_id, "agent"))
    assert result.caller_audio == caller_track and len(caller_track) > 8000
    assert result.agent_audio == agent_track and len(agent_track) > 8000


def test_the_same_call_replays_to_byte_identical_streams() -> None:
    log = recorded("appointment-happy")
    first, second = replay(log), replay(log)
    assert first.stream_json() == second.stream_json()
    assert len(first.stream_json().splitlines()) == len(first.events) > 100


def test_a_changed_prompt_diverges_at_its_say_started() -> None:
    log = recorded("appointment-happy")
    old = "Which day works better?"
    spec = changed("appointment", old, "What day suits you?")
    with pytest.raises(ReplayDivergence) as caught:
        assert_replays(log, machine=spec)
    divergence = caught.value
    recording = load_from_log(log)
    (said,) = [e for e in recording.events if e.kind == "say_started" and old in e.data["text"]]
    assert divergence.seq == said.seq
    assert divergence.expected is not None and divergence.actual is not None
    assert divergence.expected.kind == divergence.actual.kind == "say_started"
    assert old in divergence.expected.data["text"]
    assert "What day suits you?" in divergence.actual.data["text"]
    assert divergence.state == "pick_day"


def test_a_changed_target_state_diverges_at_the_handler() -> None:
    log = recorded("appointment-bargein")
    spec = changed("appointment", "cancel: confirm_cancel", "cancel: ended")
    result = replay(log, machine=spec)
    divergence = result.divergence
    assert divergence is not None and not result.ok
    assert divergence.expected is not None and divergence.actual is not None
    assert divergence.expected.kind == "handler_selected"
    assert divergence.expected.data["goto"] == "confirm_cancel"
    assert divergence.actual.data["goto"] == "ended"
    assert divergence.state == "greet"
    assert divergence.seq == divergence.expected.seq


def test_an_exported_fixture_replays(tmp_path: Path) -> None:
    log = recorded("ivr-balance")
    (call,) = log.calls()
    export_fixture(log, call.call_id, tmp_path / "ivr-balance")
    result = assert_replays(tmp_path / "ivr-balance")  # the machine is found by its name
    assert result.machine == "ivr" and result.origin == str(tmp_path / "ivr-balance")


def test_a_fixture_with_only_events_and_wavs_replays(tmp_path: Path) -> None:
    # Another exporter's layout: no chunk index, a meta.json with just the machine.
    log = recorded("appointment-bargein")
    (call,) = log.calls()
    fixture = tmp_path / "bargein"
    export_fixture(log, call.call_id, fixture)
    (fixture / "audio.jsonl").unlink()
    (fixture / "meta.json").write_text('{"machine": "appointment"}')
    result = assert_replays(fixture)
    assert result.call_id == call.call_id and result.compared > 50
    assert result.caller_audio == b"".join(c.payload for c in log.audio(call.call_id, "caller"))


def test_cli_replays_a_database_and_reports_the_first_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "calls.db"
    with SqliteEventLog(db) as log:
        call_id = anyio.run(_record, "survey-nomatch", log)
    assert main(["replay", "--db", str(db)]) == 0
    assert "ok" in capsys.readouterr().out

    machine = tmp_path / "survey.yaml"
    text = (ROOT / "machines" / "survey.yaml").read_text()
    machine.write_text(text.replace("Sorry, I only understand yes or no.", "Pardon?", 1))
    assert main(["replay", "--db", str(db), "--call", call_id, "--machine", str(machine)]) == 1
    out = capsys.readouterr().out
    assert "DIVERGED" in out and "say_started" in out and "Pardon?" in out

    assert main(["replay", "--db", str(db), "--machine", str(machine), "--json"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    report = json.loads(line)
    assert report["ok"] is False and report["call_id"] == call_id
    assert report["divergence"]["actual"]["data"]["text"] == "Pardon?"
    assert report["divergence"]["expected"]["kind"] == "say_started"


# --- offline mode: pocketsphinx re-transcribes the recorded caller audio ---
# The scripted calls above carry tones, not speech: these use the corpus in replays/,
# recorded with the offline providers. One inline decoder serves them all.

HAPPY = ROOT / "replays" / "appointment-happy"


def _caller_frames(recording: Recording) -> dict[int, bytes]:
    return {
        c.t_ms + FRAME_MS * k: c.payload[k * FRAME_BYTES : (k + 1) * FRAME_BYTES]
        for c in recording.caller
        for k in range(len(c.payload) // FRAME_BYTES)
    }


def _with_caller_audio(recording: Recording, at_ms: int, audio: bytes) -> Recording:
    """The recording with the caller's frames from `at_ms` on replaced by `audio`."""
    end_ms = at_ms + len(audio) // FRAME_BYTES * FRAME_MS
    chunks = []
    for chunk in recording.caller:
        payload = bytearray(chunk.payload)
        for k in range(len(payload) // FRAME_BYTES):
            t_ms = chunk.t_ms + FRAME_MS * k
            if at_ms <= t_ms < end_ms:
                offset = (t_ms - at_ms) // FRAME_MS * FRAME_BYTES
                payload[k * FRAME_BYTES : (k + 1) * FRAME_BYTES] = audio[
                    offset : offset + FRAME_BYTES
                ]
        chunks.append(CallerFrames(chunk.t_ms, chunk.first_frame, bytes(payload)))
    return replace(recording, caller=tuple(chunks))


def test_offline_mode_replays_to_byte_identical_streams() -> None:
    first, second = replay(HAPPY, mode="offline"), replay(HAPPY, mode="offline")
    assert first.ok and first.mode == "offline"
    assert first.stream_json() == second.stream_json()
    heard = [e.data["text"] for e in first.events if e.kind == "transcript_committed"]
    assert heard == ["reschedule", "tuesday", "two o'clock"]


def _utterance(recording: Recording, text: str) -> EventRecord:
    return next(
        e for e in recording.events if e.kind == "transcript_committed" and e.data["text"] == text
    )


def test_offline_mode_hears_what_the_caller_said_not_what_the_log_says() -> None:
    # The caller's "reschedule" is replaced by the "cancel" of another recorded call,
    # spoken at the same moment: the log still says "reschedule", the audio "cancel".
    happy, bargein = load_fixture(HAPPY), load_fixture(ROOT / "replays" / "appointment-bargein")
    said, other = _utterance(happy, "reschedule"), _utterance(bargein, "cancel")
    margin = 300  # the silence around the word goes with it (the endpointer needs it)
    begin, end = int(other.data["start_ms"]) - margin, int(other.data["end_ms"]) + margin
    cancel = b"".join(
        frame for t_ms, frame in sorted(_caller_frames(bargein).items()) if begin <= t_ms < end
    )
    said_at = min(t for t in _caller_frames(happy) if t >= int(said.data["start_ms"]) - margin)
    spliced = _with_caller_audio(happy, said_at, cancel + MULAW_SILENCE * (8800 - len(cancel)))

    assert replay(spliced).ok  # recorded mode answers from the log: it cannot tell
    result = replay(spliced, mode="offline")
    divergence = result.divergence
    assert divergence is not None and divergence.state == "greet"
    assert divergence.expected is not None and divergence.actual is not None
    assert divergence.expected.kind == divergence.actual.kind == "intent_matched"
    assert divergence.expected.data["intent"] == "reschedule"
    assert divergence.actual.data["intent"] == "cancel"


BARGEIN = ROOT / "replays" / "appointment-bargein"


def _transcripts(events: tuple[EventRecord, ...]) -> list[str]:
    return [str(e.data["text"]) for e in events if e.kind == "transcript_committed"]


def _first_of(events: tuple[EventRecord, ...], kind: str) -> EventRecord:
    return next(e for e in events if e.kind == kind)


def test_offline_mode_barges_in_at_the_recorded_time_though_it_hears_it_later() -> None:
    # Recorded: the barge-in at 2835 ms, 4 ms before the prompt's marks echoed. The
    # frame times replay can rebuild put the detection a few ms after the echoes;
    # heard ahead, the re-made barge-in still comes out at its recorded time.
    recording = load_fixture(BARGEIN)
    recorded = _first_of(recording.events, "speech_started")
    echoed = next(e for e in recording.events if e.kind == "mark_echoed" and e.t_ms > 2000)
    assert recorded.t_ms < echoed.t_ms < recorded.t_ms + 10  # the race in the recording
    result = replay(BARGEIN, mode="offline")
    assert result.ok
    remade = _first_of(result.events, "speech_started")
    assert remade.t_ms == recorded.t_ms
    assert abs(remade.data["at_ms"] - recorded.data["at_ms"]) <= SAME_UTTERANCE_MS
    assert _first_of(result.events, "prompt_stopped").t_ms == recorded.t_ms


def test_offline_mode_times_an_utterance_the_recording_lacks_by_its_audio() -> None:
    # Without the recorded recogniser outputs nothing can be matched: the barge-in
    # comes out when the call hears the frame that made it, after the marks echoed,
    # and the call diverges there (replay does not invent times it does not know).
    recording = load_fixture(BARGEIN)
    outputs = ("speech_started", "transcript_committed")
    bare = replace(recording, events=tuple(e for e in recording.events if e.kind not in outputs))
    result = replay(bare, mode="offline")
    remade = _first_of(result.events, "speech_started")
    echoed = next(e for e in recording.events if e.kind == "mark_echoed" and e.t_ms > 2000)
    assert remade.t_ms > echoed.t_ms
    assert result.divergence is not None and result.divergence.expected is not None
    assert result.divergence.expected.kind == "prompt_stopped"


def test_offline_mode_places_utterances_on_the_live_recognisers_timeline() -> None:
    # survey-nomatch's caller audio fell up to 180 ms behind its frame grid (a loaded
    # machine), by delays too small for the live recogniser to pad: its timeline is
    # the grid, and so is replay's (not the chunk arrival times, 100+ ms later). It
    # did pad one real gap, which the 1-second chunks cannot place: that utterance
    # start differs and is matched within the window.
    recording = load_fixture(ROOT / "replays" / "survey-nomatch")
    result = replay(recording, mode="offline")
    starts = [e.data["at_ms"] for e in recording.events if e.kind == "speech_started"]
    remade = [e.data["at_ms"] for e in result.events if e.kind == "speech_started"]
    assert len(remade) == len(starts) == 4
    assert all(abs(a - b) <= 2 for a, b in zip(remade[:2], starts[:2], strict=True))
    assert all(abs(a - b) < SAME_UTTERANCE_MS for a, b in zip(remade, starts, strict=True))
    assert _transcripts(result.events) == _transcripts(recording.events)


def test_offline_mode_with_a_silent_caller_diverges_where_the_caller_spoke() -> None:
    happy = load_fixture(HAPPY)
    audio = b"".join(c.payload for c in happy.caller)
    silent = _with_caller_audio(happy, happy.caller[0].t_ms, MULAW_SILENCE * len(audio))
    divergence = replay(silent, mode="offline").divergence
    assert divergence is not None and divergence.expected is not None
    # The caller's first words cancelled the noinput timer; in silence nothing did.
    assert divergence.expected.kind == "conversation_timer_cancelled"
    assert divergence.expected.data["name"] == "noinput"
    assert divergence.state == "greet"


def test_a_changed_prompt_diverges_in_offline_mode_too() -> None:
    old = "Which day works better?"
    spec = changed("appointment", old, "What day suits you?")
    with pytest.raises(ReplayDivergence) as caught:
        assert_replays(HAPPY, machine=spec, mode="offline")
    divergence = caught.value
    (said,) = [
        e for e in load_fixture(HAPPY).events if e.kind == "say_started" and old in e.data["text"]
    ]
    assert divergence.seq == said.seq and divergence.state == "pick_day"
    assert divergence.actual is not None and divergence.actual.kind == "say_started"
    assert "What day suits you?" in divergence.actual.data["text"]


def test_a_changed_grammar_changes_what_offline_mode_hears() -> None:
    # Without the "two o'clock" hint the grammar has no phrase for what was said.
    old = "hints: [nine o'clock, eleven o'clock, two o'clock, four o'clock]"
    spec = changed("appointment", old, "hints: [nine o'clock, eleven o'clock, four o'clock]")
    result = replay(HAPPY, machine=spec, mode="offline")
    assert result.divergence is not None and result.divergence.state == "pick_time"
    heard = [e.data["text"] for e in result.events if e.kind == "transcript_committed"]
    assert heard[:2] == ["reschedule", "tuesday"] and heard[2] != "two o'clock"


def test_decoding_in_a_process_pool_replays_the_same_as_inline() -> None:
    # The pool answers in real time; the replay clock holds still until it has,
    # so the stream cannot depend on how fast the worker was.
    pool = DecoderPool(workers=1)
    try:
        pooled = replay(ROOT / "replays" / "survey-nomatch", mode="offline", decoder=pool)
    finally:
        pool.shutdown()
    inline = replay(ROOT / "replays" / "survey-nomatch", mode="offline")
    assert pooled.ok and pooled.stream_json() == inline.stream_json()


def test_an_unknown_mode_is_a_clear_error() -> None:
    with pytest.raises(ReplayInputError, match="unknown replay mode 'live'"):
        replay(HAPPY, mode="live")  # type: ignore[arg-type]


def test_cli_replays_in_offline_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--mode", "offline", str(HAPPY)]) == 0
    assert capsys.readouterr().out.startswith("ok ")

    machine = tmp_path / "appointment.yaml"
    text = (ROOT / "machines" / "appointment.yaml").read_text()
    machine.write_text(text.replace("cancel: [cancel, cancel it]", "cancel: [reschedule]", 1))
    args = ["replay", "--mode", "offline", "--json", "--machine", str(machine), str(HAPPY)]
    assert main(args) == 1
    (line,) = capsys.readouterr().out.splitlines()
    report = json.loads(line)
    assert report["ok"] is False and report["mode"] == "offline"
    assert report["divergence"]["state"] == "greet"


def test_offline_mode_without_caller_audio_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = tmp_path / "no-audio"
    fixture.mkdir()
    (fixture / "events.jsonl").write_text((HAPPY / "events.jsonl").read_text())
    (fixture / "meta.json").write_text('{"machine": "appointment"}')
    assert replay(fixture).ok  # recorded mode needs no audio
    with pytest.raises(ReplayInputError, match="no caller audio"):
        replay(fixture, mode="offline")
    assert main(["replay", "--mode", "offline", str(fixture)]) != 0
    assert "no caller audio" in capsys.readouterr().err


async def _run_clock_with_held_work(answers: list[bool], order: list[str]) -> int:
    clock = ReplayClock(0, 0)
    clock.call_later(10, lambda: order.append("timer fired"))

    def busy() -> bool:
        order.append("held")
        return answers.pop(0) if answers else False

    clock.hold_while(busy)
    await clock.run_to(20, lambda: False)
    return clock.now_ms()


def test_the_replay_clock_fires_no_timer_while_work_is_held() -> None:
    order: list[str] = []
    now = anyio.run(_run_clock_with_held_work, [True, True, True], order)
    # Held three times (a decode still out), then free: only then does time move.
    assert order[:4] == ["held", "held", "held", "held"] and "timer fired" in order
    assert order.index("timer fired") == 4 and now == 20
