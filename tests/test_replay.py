"""Replay in recorded mode: real recorded calls replay as recorded, and changes show.

Each call is recorded the way the scripted end-to-end tests run them (runtime,
conversation machine, phone simulator, caller script, scripted speech, virtual clock)
and then replayed through a fresh runtime with the recorded providers.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import anyio
import pytest

from fsm_voice.cli import main
from fsm_voice.conversation.loader import load_machine, load_machine_text
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.conversation.spec import MachineSpec
from fsm_voice.eventlog import SqliteEventLog
from fsm_voice.eventlog.fixture import export_fixture
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.replay import (
    ReplayDivergence,
    assert_replays,
    load_from_log,
    replay,
)
from fsm_voice.replay.compare import decisions
from fsm_voice.simulator.caller import ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script

ROOT = Path(__file__).resolve().parent.parent
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
