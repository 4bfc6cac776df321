"""Every example machine, end to end on the virtual clock with the scripted providers.

The runtime, the conversation machine, the phone simulator and the caller scripts
are the real ones; only speech is scripted: the caller's lines are tones of a
speech-like length and the recogniser hears the script's n-th line for the n-th
utterance. A 60-second call runs in well under a second and the same inputs give
the same log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.conversation.telephony import SimulatedTelephony
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import Transcript
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.providers.tee import TeeRecognizer
from fsm_voice.simulator.caller import CallerResult, ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script, parse_caller_script
from fsm_voice.testing import in_process_call

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.anyio


async def run_call(
    machine: str | Path, caller: str, heard: Sequence[str] | None = None
) -> tuple[CallerResult, list[EventRecord], SimulatedTelephony]:
    path = machine if isinstance(machine, Path) else ROOT / "machines" / f"{machine}.yaml"
    spec = load_machine(path)
    synthesizer = ScriptedSynthesizer()
    script = (
        load_caller_script(ROOT / "callers" / f"{caller}.yaml")
        if "\n" not in caller
        else parse_caller_script(caller, "inline.yaml")
    )
    lines = list(heard) if heard is not None else script.lines()
    telephony = SimulatedTelephony()
    agent = conversation_agent(
        spec,
        recognizer=lambda: ScriptedRecognizer(lines),
        synthesizer=synthesizer,
        telephony=telephony,
    )
    log = MemoryEventLog()
    async with in_process_call(agent, log=log, custom_parameters={"caller": "+15550123"}) as call:
        caller_run = ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock)
        result = await caller_run.run()
        await call.wait_ended()
    (record,) = log.calls()
    return result, list(log.events(record.call_id)), telephony


def conv(events: list[EventRecord], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.source == "conversation" and e.kind == kind]


def path(events: list[EventRecord]) -> list[str]:
    return [d["state"] for d in conv(events, "state_entered")]


def end_state(events: list[EventRecord]) -> str:
    (ended,) = conv(events, "conversation_ended")
    return str(ended["state"])


async def test_appointment_happy_path_reschedules_and_texts() -> None:
    result, events, telephony = await run_call("appointment", "appointment-happy")
    assert result.ok, result.failure
    assert path(events) == ["greet", "pick_day", "pick_time", "rescheduled"]
    assert [d["intent"] for d in conv(events, "intent_matched")] == [
        "reschedule",
        "weekday",
        "slot_time",
    ]
    assert end_state(events) == "rescheduled"
    assert telephony.sms == [
        ("+15550123", "Riverside Clinic: your appointment is now tuesday at two o'clock.")
    ]
    # every prompt was heard in full: its sentences' marks were all echoed
    for finished in conv(events, "prompt_finished"):
        assert not finished["interrupted"] and finished["heard"]


async def test_noinput_timer_starts_only_after_the_prompt_played() -> None:
    _, events, _ = await run_call("appointment", "appointment-happy")
    said = next(e for e in events if e.kind == "say_started")
    finished = next(e for e in events if e.kind == "prompt_finished")
    timer = next(e for e in events if e.kind == "conversation_timer_started")
    echoed = [e for e in events if e.kind == "mark_echoed" and e.t_ms <= finished.t_ms]
    assert said.t_ms < echoed[-1].t_ms <= finished.t_ms <= timer.t_ms
    # the greeting lasts several seconds: the timer did not start when it was queued
    assert timer.t_ms - said.t_ms > 3000


async def test_silence_escalates_noinput_then_the_fallback_apologises() -> None:
    result, events, _ = await run_call("appointment", "appointment-silent")
    counters = conv(events, "counter_changed")
    assert counters == [
        {"counter": "noinput", "value": 1},
        {"counter": "noinput", "value": 2},
        {"counter": "noinput", "value": 3},
    ]
    said = [d["text"] for d in conv(events, "say_started")]
    assert "Sorry, I didn't hear anything." in said and "I still can't hear you." in said
    assert conv(events, "fallback_taken") == [{"after": 3, "goto": "apologize"}]
    assert end_state(events) == "apologize"
    assert result.close_code is not None  # the agent hung up on the caller
    assert result.ok, result.failure  # ... during a silence: how this script should end


async def test_nomatch_escalates_with_count_selected_prompts() -> None:
    script = """
name: survey-nomatch
machine: survey
expect: {end_state: thanks}
steps:
  - wait_prompt: {timeout_ms: 30000}
  - say: "purple"
  - wait_prompt: {}
  - say: "elephant"
  - wait_prompt: {}
  - say: "yes"
  - wait_prompt: {}
  - say: "five"
  - wait_prompt: {}
"""
    result, events, telephony = await run_call("survey", script)
    assert result.ok, result.failure
    assert conv(events, "counter_changed") == [
        {"counter": "nomatch", "value": 1},
        {"counter": "nomatch", "value": 2},
    ]
    said = [d["text"] for d in conv(events, "say_started")]
    first = said.index("Sorry, I only understand yes or no.")
    assert said[first + 1] == "Just yes or no: was your problem solved?"  # attempt 2
    assert "Please say just the word yes, or the word no." in said  # the count-2 handler
    assert path(events) == ["intro", "q_solved", "q_rating", "thanks"]
    assert telephony.sms[0][1] == "Acme survey: problem solved: yes. Rating: five out of five."


async def test_bargein_clears_playback_and_logs_what_was_heard() -> None:
    result, events, _ = await run_call("appointment", "appointment-bargein")
    assert result.ok, result.failure
    stopped = conv(events, "prompt_stopped")
    assert len(stopped) == 1 and stopped[0]["reason"] == "barge_in"
    assert any(e.kind == "clear_sent" for e in events)
    interrupted = [d for d in conv(events, "prompt_finished") if d["interrupted"]]
    assert len(interrupted) == 1
    greeting = conv(events, "say_started")[0]["text"]
    # The caller spoke 2 s in: the first sentence (about 4 s) had not finished.
    assert interrupted[0]["heard"] == []
    assert greeting.startswith("Hi Alex")
    assert path(events) == ["greet", "confirm_cancel", "cancelled"]


async def test_bargein_after_the_first_sentence_hears_exactly_it() -> None:
    script = """
name: late-bargein
machine: appointment
steps:
  - say: {text: "cancel", barge_in_after_ms: 6500, timeout_ms: 30000}
  - wait_prompt: {}
  - say: "yes"
  - wait_prompt: {}
"""
    result, events, _ = await run_call("appointment", script)
    assert result.ok, result.failure
    (interrupted,) = [d for d in conv(events, "prompt_finished") if d["interrupted"]]
    assert interrupted["heard"] == [
        "Hi Alex, this is Riverside Clinic calling about your appointment on Monday "
        "at nine o'clock."
    ]


async def test_ivr_dtmf_capture_with_pound_and_a_hook() -> None:
    result, events, _ = await run_call("ivr", "ivr-balance")
    assert result.ok, result.failure
    digits = conv(events, "digits_collected")
    assert digits == [
        {"digits": "2", "variable": "digits"},
        {"digits": "123456", "variable": "account_number"},
    ]
    assert path(events) == ["menu", "account", "lookup", "tell_balance"]
    assert conv(events, "hook_returned")[0]["event"] == "found"
    said = conv(events, "say_started")[-1]["text"]
    assert said == "The balance on account 123456 is 42 dollars and 50 cents. Goodbye."


async def test_ivr_wrong_key_then_transfer() -> None:
    result, events, telephony = await run_call("ivr", "ivr-agent")
    assert conv(events, "digits_collected")[0]["digits"] == "7"
    assert "Sorry, 7 is not an option." in [d["text"] for d in conv(events, "say_started")]
    assert telephony.transfers == ["+15550100100"]
    assert end_state(events) == "agent"
    assert result.close_code is not None  # the transfer ended the media stream


async def test_caller_hangs_up_mid_prompt() -> None:
    result, events, _ = await run_call("appointment", "appointment-hangup")
    assert result.hung_up_ms is not None
    assert path(events) == ["greet", "ended"]
    assert conv(events, "caller_hung_up")
    assert end_state(events) == "ended"  # the global hangup handler went there
    # the prompt never finished playing: nothing of it is logged as heard
    finished = conv(events, "prompt_finished")
    assert all(not d["heard"] for d in finished)


async def test_survey_happy_path_and_the_same_log_every_run() -> None:
    first = await run_call("survey", "survey-happy")
    second = await run_call("survey", "survey-happy")
    assert end_state(first[1]) == "thanks"

    def essence(events: list[EventRecord]) -> list[tuple[int, str, str, Any]]:
        return [(e.t_ms, e.source, e.kind, e.data) for e in events if e.kind != "stream_started"]

    assert essence(first[1]) == essence(second[1])


PLAY_AND_TIMER = """
name: chime
initial: chime
states:
  chime:
    actions:
      - play: chime.wav
      - timer: {name: nudge, after_ms: 1500}
      - listen: {intents: {ok: [okay]}, timeout_ms: 9000}
    on:
      nudge: {say: "Still there?"}
      ok: bye
  bye:
    actions:
      - say: "Bye."
      - hangup: done
"""


async def test_play_a_wav_and_a_named_timer(tmp_path: Path) -> None:
    from fsm_voice.audio.wav import write_wav_mulaw

    chime = bytes(range(0, 160)) * 25  # 500 ms of distinctive μ-law
    write_wav_mulaw(tmp_path / "chime.wav", chime)
    (tmp_path / "chime.yaml").write_text(PLAY_AND_TIMER)
    script = """
name: chime-caller
machine: chime
steps:
  - wait_prompt: {}
  - wait_prompt: {}
  - say: "okay"
  - wait_prompt: {}
"""
    result, events, _ = await run_call(tmp_path / "chime.yaml", script)
    assert result.ok, result.failure
    assert conv(events, "play_started")[0]["path"] == "chime.wav"
    # the caller heard the file's bytes first, exactly
    assert result.prompts[0].played_bytes == len(chime)
    fired = [d for d in conv(events, "conversation_timer_fired") if d["name"] == "nudge"]
    assert len(fired) == 1
    said = [d["text"] for d in conv(events, "say_started")]
    assert said == ["Still there?", "Bye."]
    assert path(events) == ["chime", "bye"]


SMS_THEN_HANGUP = """
name: texter
initial: bye
states:
  bye:
    actions:
      - say: "We will text you."
      - sms: {to: "+15550123", body: "Your code is 42."}
      - hangup: done
"""


async def test_an_sms_in_flight_is_not_lost_when_the_call_ends(tmp_path: Path) -> None:
    from fsm_voice.clock import VirtualClock

    clock = VirtualClock()

    class SlowCarrier(SimulatedTelephony):
        async def send_sms(self, to: str, body: str) -> dict[str, Any]:
            await clock.sleep(2000)  # the carrier's API takes its time
            return await super().send_sms(to, body)

    (tmp_path / "texter.yaml").write_text(SMS_THEN_HANGUP)
    carrier = SlowCarrier()
    agent = conversation_agent(
        load_machine(tmp_path / "texter.yaml"),
        recognizer=lambda: ScriptedRecognizer([]),
        synthesizer=ScriptedSynthesizer(),
        telephony=carrier,
    )
    log = MemoryEventLog()
    async with in_process_call(agent, log=log, clock=clock) as call:
        await call.wait_ended()
    (record,) = log.calls()
    events = list(log.events(record.call_id))
    assert carrier.sms == [("+15550123", "Your code is 42.")]
    completed = [e for e in events if e.kind == "action_completed"]
    hangup = next(e for e in events if e.kind == "hangup_requested" and e.source == "runtime")
    assert completed and completed[0].data["result"]["status"] == "simulated"
    assert completed[0].seq < hangup.seq  # the hangup waited for the carrier


async def test_a_transcript_the_recogniser_drops_as_echo_is_logged_not_heard() -> None:
    """A recogniser's deliberate drop (`on_discarded`, e.g. the cloud STTs' echo window)
    explains in the log why the machine heard nothing."""

    class EchoDropping(ScriptedRecognizer):
        async def start(self, listener: Any) -> None:
            await super().start(listener)
            listener.on_discarded(Transcript("thank you for calling", None, 900, 1400), "echo")

    agent = conversation_agent(
        load_machine(ROOT / "machines" / "appointment.yaml"),
        recognizer=lambda: EchoDropping(["reschedule"]),
        synthesizer=ScriptedSynthesizer(),
        telephony=SimulatedTelephony(),
    )
    log = MemoryEventLog()
    async with in_process_call(agent, log=log) as call:
        await call.sim.hangup()
        await call.wait_ended()
    (record,) = log.calls()
    events = list(log.events(record.call_id))
    dropped = [e.data for e in events if e.kind == "transcript_discarded"]
    assert dropped == [
        {"text": "thank you for calling", "reason": "echo", "start_ms": 900, "end_ms": 1400}
    ]
    assert not [e for e in events if e.kind in ("intent_matched", "intent_not_matched")]


async def test_a_secondary_recogniser_is_logged_for_comparison_and_never_drives_the_call() -> None:
    """`serve --stt-secondary`: the tee's secondary hears the same caller audio; its
    results land in the call's log as `secondary_*`, a failure of it changes nothing."""
    script = load_caller_script(ROOT / "callers" / "appointment-happy.yaml")

    class BrokenSecondary(ScriptedRecognizer):
        def set_grammar(self, grammar: Any) -> None:
            raise RuntimeError("secondary lost its socket")

    for secondary, expect_failed in (
        (ScriptedRecognizer(["cancel", "monday", "noon"]), False),
        (BrokenSecondary([]), True),
    ):
        agent = conversation_agent(
            load_machine(ROOT / "machines" / "appointment.yaml"),
            recognizer=lambda s=secondary: TeeRecognizer(ScriptedRecognizer(script.lines()), s),
            synthesizer=ScriptedSynthesizer(),
            telephony=SimulatedTelephony(),
        )
        log = MemoryEventLog()
        async with in_process_call(agent, log=log, custom_parameters={"caller": "+1555"}) as call:
            await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
            await call.wait_ended()
        (record,) = log.calls()
        events = list(log.events(record.call_id))
        assert end_state(events) == "rescheduled"  # the primary drove the call
        heard = [e.data["text"] for e in events if e.kind == "secondary_transcript_committed"]
        failed = [e.data for e in events if e.kind == "secondary_failed"]
        if expect_failed:
            assert heard == [] and failed and "lost its socket" in failed[0]["error"]
        else:
            assert heard == ["cancel", "monday", "noon"] and not failed
