"""The pure conversation machine: events in, effects out, VoiceXML dialog semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.language.loader import load_machine_text
from fsm_voice.conversation.machine import ENDED, ConversationMachine

MACHINE = """
name: test
initial: greet
variables: {patient: Alex, day: ""}
settings: {noinput_timeout_ms: 4000}
global:
  on:
    operator: agent
  fallback: {after: 4, goto: sorry}
states:
  greet:
    actions:
      - say:
          - "Hi {patient}, can you come?"
          - {count: 2, text: "Can you come, yes or no?"}
      - listen:
          intents:
            yes: [yes, that works]
            no: [no]
            day: {regex: '(?P<day>monday|tuesday)'}
            operator: {keywords: [operator]}
            unhandled: [maybe]
    on:
      yes: confirmed
      no: {goto: sorry, when: "patient == 'Alex'"}
      day: {set: {picked: "{day}"}, goto: confirmed}
      noinput:
        - {count: 1, say: "Sorry, I did not hear you.", reprompt: true}
        - {count: 3, goto: sorry}
      nomatch: {reprompt: true}
  confirmed:
    actions:
      - say: "Booked."
    on:
      done: bye
  bye:
    final: true
    actions:
      - hangup: {reason: done}
  sorry:
    actions:
      - say: "Goodbye."
      - hangup: {reason: failed}
  agent:
    actions:
      - transfer: {to: "+15550100"}
  menu:
    bargein: false
    actions:
      - say: "Press one or two, then hash."
      - gather: {num_digits: 3, finish_on_key: "#", inter_digit_timeout_ms: 2000}
    on:
      "1": confirmed
      digits: bye
"""


def machine(text: str = MACHINE, initial: str | None = None) -> ConversationMachine:
    if initial is not None:
        text = text.replace("initial: greet", f"initial: {initial}")
    return ConversationMachine(load_machine_text(text, Path("test.yaml"), check=False))


def kinds(effects: list[fx.ConversationEffect]) -> list[str]:
    return [e.note_kind if isinstance(e, fx.Note) else e.kind for e in effects]


def only(effects: list[fx.ConversationEffect], cls: type[Any]) -> list[Any]:
    return [e for e in effects if isinstance(e, cls)]


def noted(effects: list[fx.ConversationEffect], kind: str) -> list[dict[str, Any]]:
    return [e.details for e in only(effects, fx.Note) if e.note_kind == kind]


def start(m: ConversationMachine) -> list[fx.ConversationEffect]:
    return m.handle(ev.CallConnected({"caller": "+15550123"}))


def finish_prompt(m: ConversationMachine, out: list[fx.ConversationEffect]) -> list[Any]:
    (speak,) = only(out, fx.Speak)
    return m.handle(ev.PromptFinished(speak.prompt_id, (speak.text,)))


def fire_timer(m: ConversationMachine, out: list[fx.ConversationEffect], name: str) -> list[Any]:
    (timer,) = [t for t in only(out, fx.StartTimer) if t.name == name]
    return m.handle(ev.TimerFired(name, timer.token))


def test_entry_speaks_and_listens_before_any_timer() -> None:
    m = machine()
    out = start(m)
    assert m.state == "greet"
    assert noted(out, "state_entered") == [
        {"machine": "conversation", "state": "greet", "from": "__start__", "on": "__start__"}
    ]
    (listening,) = only(out, fx.StartListening)
    assert set(listening.phrases) == {"yes", "that works", "no", "operator", "maybe"}
    assert listening.free_form  # keywords and regexes need more than the phrase list
    (speak,) = only(out, fx.Speak)
    assert speak.text == "Hi Alex, can you come?" and speak.bargein
    # the noinput timer must not run while the caller still hears the question
    assert only(out, fx.StartTimer) == []
    after = finish_prompt(m, out)
    assert [(t.name, t.after_ms) for t in only(after, fx.StartTimer)] == [("noinput", 4000)]


def test_intent_takes_its_transition_and_done_chains_to_final_hangup() -> None:
    m = machine()
    waiting = finish_prompt(m, start(m))
    out = m.handle(ev.TranscriptReceived("Yes.", 0.9))
    assert noted(out, "intent_matched")[0]["intent"] == "yes"
    assert only(out, fx.CancelTimer)[0].name == "noinput"
    assert m.state == "confirmed"
    out = finish_prompt(m, out)
    assert [e.reason for e in only(out, fx.HangupCall)] == ["done"]
    assert m.ended and m.state == ENDED
    assert waiting  # the timer had been started before
    assert m.handle(ev.TranscriptReceived("yes")) == [
        fx.Note("event_ignored", {"event": "utterance_received", "reason": "conversation_ended"})
    ]


def test_noinput_escalates_by_count_with_reprompt_then_goto() -> None:
    m = machine()
    out = finish_prompt(m, start(m))
    # 1st noinput: the count-1 handler says sorry, then reprompts with the attempt-2 prompt
    out = fire_timer(m, out, "noinput")
    assert noted(out, "counter_changed") == [{"counter": "noinput", "value": 1}]
    assert [s.text for s in only(out, fx.Speak)] == ["Sorry, I did not hear you."]
    out = finish_prompt(m, out)
    assert [s.text for s in only(out, fx.Speak)] == ["Can you come, yes or no?"]
    out = finish_prompt(m, out)
    # 2nd noinput: still the count-1 handler (highest count ≤ 2)
    out = fire_timer(m, out, "noinput")
    assert noted(out, "handler_selected")[0]["count"] == 1
    out = finish_prompt(m, out)  # sorry
    out = finish_prompt(m, out)  # reprompt
    # 3rd noinput: the count-3 handler leaves for `sorry`
    out = fire_timer(m, out, "noinput")
    assert noted(out, "handler_selected")[0]["count"] == 3
    assert m.state == "sorry"


def test_nomatch_default_and_unhandled_intent_count_as_nomatch() -> None:
    m = machine()
    out = finish_prompt(m, start(m))
    out = m.handle(ev.TranscriptReceived("banana bread"))
    assert noted(out, "intent_not_matched") == [{"text": "banana bread"}]
    assert noted(out, "counter_changed") == [{"counter": "nomatch", "value": 1}]
    assert [s.text for s in only(out, fx.Speak)] == ["Can you come, yes or no?"]  # reprompt
    out = finish_prompt(m, out)
    out = m.handle(ev.TranscriptReceived("maybe"))  # an intent with no handler
    assert noted(out, "intent_unhandled") == [{"intent": "unhandled"}]
    assert noted(out, "counter_changed") == [{"counter": "nomatch", "value": 2}]


def test_global_fallback_caps_failures_across_noinput_and_nomatch() -> None:
    m = machine()
    out = finish_prompt(m, start(m))
    for text in ("banana", "apple", "pear"):
        out = m.handle(ev.TranscriptReceived(text))
        out = finish_prompt(m, out)
    out = fire_timer(m, out, "noinput")  # 4th failure: the fallback wins over count-1
    assert noted(out, "fallback_taken") == [{"after": 4, "goto": "sorry"}]
    assert m.state == "sorry"


def test_condition_regex_slots_and_set() -> None:
    m = machine()
    finish_prompt(m, start(m))
    out = m.handle(ev.TranscriptReceived("how about tuesday"))
    assert noted(out, "intent_matched")[0]["slots"] == {"day": "tuesday"}
    assert noted(out, "variables_set") == [{"values": {"picked": "tuesday"}}]
    assert m.state == "confirmed"
    m2 = machine(MACHINE.replace("patient: Alex", "patient: Sam"))
    finish_prompt(m2, start(m2))
    out = m2.handle(ev.TranscriptReceived("no"))  # the `when` is false: no handler
    assert m2.state == "greet"
    assert noted(out, "counter_changed") == [{"counter": "nomatch", "value": 1}]


def test_global_handler_from_any_state() -> None:
    m = machine()
    finish_prompt(m, start(m))
    out = m.handle(ev.TranscriptReceived("operator please"))
    assert m.state == ENDED
    (transfer,) = only(out, fx.TransferCall)
    assert transfer.to == "+15550100"
    assert noted(out, "state_entered")[0]["state"] == "agent"


def test_bargein_stops_the_prompt_and_the_answer_counts() -> None:
    m = machine()
    out = start(m)
    (speak,) = only(out, fx.Speak)
    out = m.handle(ev.SpeechStarted(700))
    assert only(out, fx.StopPrompt) == [fx.StopPrompt(speak.prompt_id, "barge_in")]
    out = m.handle(ev.PromptFinished(speak.prompt_id, (), interrupted=True))
    out = m.handle(ev.TranscriptReceived("yes"))
    assert m.state == "confirmed"


def test_no_bargein_ignores_speech_and_digits_during_the_prompt() -> None:
    m = machine(initial="menu")
    out = start(m)
    (speak,) = only(out, fx.Speak)
    assert not speak.bargein
    assert only(m.handle(ev.SpeechStarted(100)), fx.StopPrompt) == []
    out = m.handle(ev.TranscriptReceived("one"))
    assert noted(out, "utterance_ignored")[0]["reason"] == "prompt_without_bargein"


def test_gather_finish_key_num_digits_interdigit_and_digit_named_handler() -> None:
    m = machine(initial="menu")
    out = finish_prompt(m, start(m))
    assert [t.name for t in only(out, fx.StartTimer)] == ["noinput"]
    out = m.handle(ev.DigitPressed("1"))
    assert [t.name for t in only(out, fx.StartTimer)] == ["interdigit"]
    out = m.handle(ev.DigitPressed("#"))
    assert noted(out, "digits_collected") == [{"digits": "1", "variable": "digits"}]
    assert m.state == "confirmed"  # the handler named "1" wins over `digits`

    m = machine(initial="menu")
    finish_prompt(m, start(m))
    for digit in "427":
        out = m.handle(ev.DigitPressed(digit))
    assert m.variables["digits"] == "427"  # num_digits=3 completes without a key
    assert [n["state"] for n in noted(out, "state_entered")] == ["bye"]
    assert noted(out, "conversation_ended") == [{"state": "bye", "reason": "done"}]

    m = machine(initial="menu")
    finish_prompt(m, start(m))
    out = m.handle(ev.DigitPressed("4"))
    out = fire_timer(m, out, "interdigit")
    assert m.variables["digits"] == "4"


def test_stale_timer_is_ignored() -> None:
    m = machine()
    out = finish_prompt(m, start(m))
    (timer,) = only(out, fx.StartTimer)
    m.handle(ev.TranscriptReceived("banana"))  # nomatch → reprompt cancels the timer
    out = m.handle(ev.TimerFired("noinput", timer.token))
    assert noted(out, "timer_ignored") == [{"name": "noinput", "reason": "stale"}]
    assert m.noinput_count == 0


def test_caller_hangup_ends_the_conversation() -> None:
    m = machine()
    start(m)
    out = m.handle(ev.CallerHungUp("stop"))
    assert m.ended
    assert kinds(out)[-1] == "conversation_ended"
    assert only(out, fx.StopListening)


HOOKED = """
name: hooked
initial: lookup
states:
  lookup:
    actions:
      - hook: {target: "nowhere:fn", timeout_ms: 1000}
      - say: "Hello {name}."
    on:
      vip: vip
      done: end
  vip:
    final: true
    actions: [{say: "VIP {name}."}]
  end:
    final: true
"""


@pytest.mark.parametrize(("event", "state"), [(None, "end"), ("vip", "vip")])
def test_hook_blocks_the_cursor_and_its_event_is_taken(event: str | None, state: str) -> None:
    m = ConversationMachine(load_machine_text(HOOKED, Path("h.yaml"), check=False))
    out = start(m)
    (hook,) = only(out, fx.CallHook)
    assert only(out, fx.Speak) == []  # blocked on the hook
    out = m.handle(ev.HookReturned(hook.call_id, event, {"name": "Kim"}))
    (speak,) = only(out, fx.Speak)
    assert speak.text == ("Hello Kim." if event is None else "VIP Kim.")
    out = finish_prompt(m, out)
    if event is None:  # `done` after the say leads to `end`, a final state
        assert [n["state"] for n in noted(out, "state_entered")] == ["end"]
    assert m.ended and m.state == ENDED  # the final state hung up after its prompt
    assert noted(out, "conversation_ended") == [{"state": state, "reason": "completed"}]


def test_hook_failure_is_an_error_event_and_default_error_hangs_up() -> None:
    m = ConversationMachine(load_machine_text(HOOKED, Path("h.yaml"), check=False))
    (hook,) = only(start(m), fx.CallHook)
    out = m.handle(ev.HookFailed(hook.call_id, "boom"))
    assert [h.reason for h in only(out, fx.HangupCall)] == ["error"]


def test_speech_outside_the_grammar_is_a_nomatch_and_noise_is_not() -> None:
    m = machine()
    out = finish_prompt(m, start(m))
    out = m.handle(ev.TranscriptReceived("", rejected=True))
    assert noted(out, "intent_not_matched") == [{"text": "", "reason": "outside_grammar"}]
    assert noted(out, "counter_changed") == [{"counter": "nomatch", "value": 1}]
    out = finish_prompt(m, out)  # the reprompt
    out = m.handle(ev.TranscriptReceived("", start_ms=1000, end_ms=1120))  # a click
    assert noted(out, "utterance_ignored")[0]["reason"] == "empty"
    assert m.nomatch_count == 1 and m.noinput_count == 0
    assert [t.name for t in only(out, fx.StartTimer)] == ["noinput"]  # listening again
    out = m.handle(ev.TranscriptReceived("", start_ms=2000, end_ms=2900))  # speech, no words
    assert noted(out, "intent_not_matched") == [{"text": "", "reason": "no_words"}]
    assert m.nomatch_count == 2
