"""Every example machine end to end with the real offline providers, over real sockets.

Each caller script dials its own uvicorn server on 127.0.0.1 (the demo's own call
path), speaks lines synthesised by piper and is heard through pocketsphinx; all the
scripts run four at a time, so the suite pays for two long calls, not the sum. These are
real-time calls: they check outcomes and facts in the log, never timings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from fsm_voice.agents.machines import Providers, build_providers
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.replayer import replay_call
from fsm_voice.simulator.caller import CallerResult
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.simulator.demo_call import run_demo_call

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = (
    "appointment-happy",
    "appointment-bargein",
    "appointment-silent",
    "appointment-hangup",
    "ivr-balance",
    "ivr-agent",
    "survey-happy",
    "survey-nomatch",
)
pytestmark = [pytest.mark.anyio, pytest.mark.real_server, pytest.mark.slow]

Outcome = tuple[CallerResult, str | None, list[EventRecord]]


def quick(spec: MachineSpec) -> MachineSpec:
    """The machine with a shorter noinput timeout, so the silent caller is quick."""
    return dataclasses.replace(
        spec, settings=dataclasses.replace(spec.settings, noinput_timeout_ms=4000)
    )


_RESULTS: dict[str, Outcome] = {}
VERSIONS: dict[str, tuple[str | None, str]] = {}  # (logged, the machine file's)
CALLS: dict[str, tuple[str, MachineSpec]] = {}
LOG: list[MemoryEventLog] = []


@pytest.fixture
async def outcomes() -> dict[str, Outcome]:
    """All the calls, run together once (in the first test that asks); the results
    are plain data, so later tests read them from the cache."""
    if _RESULTS:
        return _RESULTS
    kit: Providers = await build_providers("offline")
    log = LOG[0] if LOG else MemoryEventLog()
    LOG[:] = [log]

    # Four at a time: real-time calls on two cores must not starve each other.
    limiter = anyio.CapacityLimiter(4)

    async def one(name: str) -> None:
        script = load_caller_script(ROOT / "callers" / f"{name}.yaml")
        spec = quick(load_machine(ROOT / "machines" / f"{script.machine}.yaml"))
        async with limiter:
            result, end_state, call_id = await run_demo_call(spec, script, kit, log)
        _RESULTS[name] = (result, end_state, list(log.events(call_id)))
        record = log.call(call_id)
        VERSIONS[name] = (record.machine_version if record else None, spec.version)
        CALLS[name] = (call_id, spec)

    try:
        async with anyio.create_task_group() as tg:
            for name in SCRIPTS:
                tg.start_soon(one, name)
    finally:
        await kit.stop()
    return _RESULTS


def conv(events: list[EventRecord], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.source == "conversation" and e.kind == kind]


@pytest.mark.parametrize("name", SCRIPTS)
async def test_each_script_reaches_its_expected_end_state(
    outcomes: dict[str, Outcome], name: str
) -> None:
    result, end_state, events = outcomes[name]
    script = load_caller_script(ROOT / "callers" / f"{name}.yaml")
    heard = [e.data["text"] for e in events if e.kind == "transcript_committed"]
    assert end_state == script.expect.end_state, (result.failure, heard)
    assert result.failure is None, result.failure


async def test_happy_path_heard_every_line_right(outcomes: dict[str, Outcome]) -> None:
    _, _, events = outcomes["appointment-happy"]
    heard = [e.data["text"] for e in events if e.kind == "transcript_committed"]
    assert heard == ["reschedule", "tuesday", "two o'clock"]
    assert conv(events, "sms_requested")[0]["body"].endswith("tuesday at two o'clock.")


async def test_bargein_clears_and_logs_what_the_caller_heard(outcomes: dict[str, Outcome]) -> None:
    _, _, events = outcomes["appointment-bargein"]
    assert conv(events, "prompt_stopped")[0]["reason"] == "barge_in"
    assert any(e.kind == "clear_sent" for e in events)
    # The greeting is the first prompt cut. (The caller's "yes" may cut a later one too:
    # the script speaks once the agent's audio pauses, which a busy machine can make.)
    interrupted = [d for d in conv(events, "prompt_finished") if d["interrupted"]]
    greeting = conv(events, "say_started")[0]["prompt_id"]
    assert interrupted[0]["prompt_id"] == greeting
    # 2 s into a 9 s greeting: its first sentence had not finished playing
    assert interrupted[0]["heard"] == []


async def test_silence_escalates_to_the_fallback(outcomes: dict[str, Outcome]) -> None:
    _, _, events = outcomes["appointment-silent"]
    assert [d["value"] for d in conv(events, "counter_changed")] == [1, 2, 3]
    assert conv(events, "fallback_taken")[0]["goto"] == "apologize"


async def test_nomatch_escalates_with_the_count_two_prompt(outcomes: dict[str, Outcome]) -> None:
    _, _, events = outcomes["survey-nomatch"]
    counters = [(d["counter"], d["value"]) for d in conv(events, "counter_changed")]
    assert counters == [("nomatch", 1), ("nomatch", 2)]
    said = [d["text"] for d in conv(events, "say_started")]
    assert "Please say just the word yes, or the word no." in said


async def test_dtmf_capture_with_pound(outcomes: dict[str, Outcome]) -> None:
    _, _, events = outcomes["ivr-balance"]
    digits = [d["digits"] for d in conv(events, "digits_collected")]
    assert digits == ["2", "123456"]


async def test_hangup_mid_prompt(outcomes: dict[str, Outcome]) -> None:
    result, _, events = outcomes["appointment-hangup"]
    assert result.hung_up_ms is not None
    assert conv(events, "caller_hung_up")
    assert all(not d["heard"] for d in conv(events, "prompt_finished"))


async def test_the_call_row_names_the_machine_version(outcomes: dict[str, Outcome]) -> None:
    for name in SCRIPTS:
        logged, expected = VERSIONS[name]
        assert logged == expected and len(expected) == 12, name


@pytest.mark.parametrize("name", SCRIPTS)
async def test_each_real_time_recording_replays_as_recorded(
    outcomes: dict[str, Outcome], name: str
) -> None:
    """A call recorded on the real clock, with real speech, replays (recorded mode) to
    the same decisions: the log holds everything the machines decided from."""
    call_id, spec = CALLS[name]
    result = await replay_call(LOG[0], call_id=call_id, machine=spec)
    assert result.divergence is None, result.divergence.describe()
    # (a hang-up one second in decides little; how little depends on the TTS's pace)
    assert result.compared > 10


@pytest.mark.parametrize("name", SCRIPTS)
async def test_each_real_time_recording_replays_offline(
    outcomes: dict[str, Outcome], name: str
) -> None:
    """The same calls re-transcribed by pocketsphinx from their recorded audio (offline
    mode): the recogniser hears the frames where the live one did, so it decides alike."""
    call_id, spec = CALLS[name]
    result = await replay_call(LOG[0], call_id=call_id, machine=spec, mode="offline")
    assert result.divergence is None, result.divergence.describe()
    assert result.compared > 10 and result.notes == ()
