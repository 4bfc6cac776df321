"""Loop detection in the pure machine: (events in) → `loop_detected` and a hangup, or not.

Each loop ends the conversation with `HangupCall("loop_detected")` after a note naming
the state, the event, the handler's line and the count; each kind of progress the
machine declared (caller input, heard audio, a timer, a hook) keeps a long but paced
conversation going.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.language.loader import load_machine_text
from fsm_voice.conversation.loops import MAX_ERRORS_IN_A_ROW, MAX_HANDLER_REPEATS
from fsm_voice.conversation.machine import ConversationMachine

Effects = list[fx.ConversationEffect]

# appointment.yaml before its `give_up` state: the apology fails the way the error did.
APOLOGY_LOOP = """
name: apology_loop
initial: greet
global:
  on: {hangup: ended, error: apologize}
states:
  greet:
    actions:
      - say: "Can you make it?"
      - listen: {intents: {confirm: [yes]}}
    on:
      confirm: ended
      noinput: {say: "Sorry?", reprompt: true}
      nomatch: {reprompt: true}
  apologize:
    actions:
      - say: "Sorry, goodbye."
      - hangup: failed
  ended: {final: true}
"""


def machine(text: str) -> ConversationMachine:
    return ConversationMachine(load_machine_text(text, Path("m.yaml"), check=False))


def noted(out: Effects, kind: str) -> list[dict[str, Any]]:
    return [e.details for e in out if isinstance(e, fx.Note) and e.note_kind == kind]


def hangups(out: Effects) -> list[str]:
    return [e.reason for e in out if isinstance(e, fx.HangupCall)]


def speak(out: Effects) -> fx.Speak:
    return next(e for e in out if isinstance(e, fx.Speak))


def timer(out: Effects, name: str) -> fx.StartTimer:
    return next(e for e in out if isinstance(e, fx.StartTimer) and e.name == name)


def hook(out: Effects) -> fx.CallHook:
    return next(e for e in out if isinstance(e, fx.CallHook))


def tts_failed() -> ev.ProviderFailed:
    return ev.ProviderFailed("elevenlabs", "auth_error")


def test_a_failing_apology_loops_until_the_fifth_error_in_a_row() -> None:
    m = machine(APOLOGY_LOOP)
    playing = speak(m.handle(ev.CallConnected()))
    for errors in range(1, MAX_ERRORS_IN_A_ROW):
        # the prompt failed: `error`, then it finished with nothing heard, and the
        # error handler's apology is the next prompt to fail
        assert noted(m.handle(tts_failed()), "loop_detected") == []
        playing = speak(m.handle(ev.PromptFinished(playing.prompt_id)))
        assert not m.ended and m.state == "apologize", errors
    out = m.handle(tts_failed())
    assert noted(out, "loop_detected") == [
        {"rule": "errors_in_a_row", "state": "apologize", "event": "error", "line": 5, "count": 5}
    ]
    assert hangups(out) == ["loop_detected"] and m.ended
    assert noted(out, "conversation_ended") == [{"state": "apologize", "reason": "loop_detected"}]
    assert noted(out, "handler_selected") == []  # the looping handler did not run again


def test_providers_failing_to_start_count_once_their_prompts_fail() -> None:
    # both providers fail before the call connects; the machine cannot act on it yet
    m = machine(APOLOGY_LOOP)
    m.handle(tts_failed())
    m.handle(ev.ProviderFailed("elevenlabs-stt", "auth_error"))
    playing = speak(m.handle(ev.CallConnected()))
    for _ in range(1, MAX_ERRORS_IN_A_ROW):
        m.handle(tts_failed())
        playing = speak(m.handle(ev.PromptFinished(playing.prompt_id)))
    assert not m.ended  # four errors since the call connected
    (loop,) = noted(m.handle(tts_failed()), "loop_detected")
    assert loop["count"] == MAX_ERRORS_IN_A_ROW


@pytest.mark.parametrize(
    ("heard", "progress", "loops"),
    [
        (False, None, True),
        (True, None, False),  # the caller heard the question: the TTS works
        (False, ev.SpeechStarted(0), False),  # the caller is there, talking
        (False, ev.DigitPressed("5"), False),  # (a key the listen state ignores)
    ],
)
def test_caller_input_and_heard_audio_clear_the_error_count(
    heard: bool, progress: ev.ConversationEvent | None, loops: bool
) -> None:
    # every error (say the STT dropping) goes back to the question
    m = machine(APOLOGY_LOOP.replace("error: apologize", "error: greet"))
    out = m.handle(ev.CallConnected())
    for _ in range(3 * MAX_ERRORS_IN_A_ROW):
        said = speak(out)
        m.handle(ev.PromptFinished(said.prompt_id, (said.text,) if heard else ()))
        if progress is not None:
            m.handle(progress)
        out = m.handle(ev.ProviderFailed("scripted", "dropped"))
        if m.ended:
            break
    assert m.ended == loops
    if loops:
        (loop,) = noted(out, "loop_detected")
        assert (loop["rule"], loop["state"], loop["count"]) == ("errors_in_a_row", "greet", 5)


RETRY_AFTER_A_PAUSE = """
name: retry
initial: lookup
global:
  on: {error: wait}
states:
  lookup:
    actions: [{hook: "hooks:lookup"}]
    on: {found: done_state}
  wait:
    actions: [{timer: {name: again, after_ms: 2000}}]
    on: {again: lookup}
  done_state: {final: true}
"""


def test_an_error_loop_paced_by_a_timer_still_ends() -> None:
    m = machine(RETRY_AFTER_A_PAUSE)
    out = m.handle(ev.CallConnected())
    for _ in range(MAX_ERRORS_IN_A_ROW - 1):
        out = m.handle(ev.HookFailed(hook(out).call_id, "ConnectionError"))
        out = m.handle(ev.TimerFired("again", timer(out, "again").token))
        assert m.state == "lookup" and not m.ended
    out = m.handle(ev.HookFailed(hook(out).call_id, "ConnectionError"))
    (loop,) = noted(out, "loop_detected")
    assert (loop["rule"], loop["state"], loop["count"]) == ("errors_in_a_row", "lookup", 5)
    assert hangups(out) == ["loop_detected"]


POLLING = """
name: polling
initial: poll
states:
  poll:
    actions: [{hook: "hooks:status"}]
    on:
      pending: poll
      ready: finished
  finished: {final: true}
"""


def test_a_hook_polling_again_and_again_is_progress() -> None:
    m = machine(POLLING)
    out = m.handle(ev.CallConnected())
    for _ in range(5 * MAX_HANDLER_REPEATS):
        out = m.handle(ev.HookReturned(hook(out).call_id, "pending"))
    assert m.state == "poll" and not m.ended
    assert noted(out, "loop_detected") == []


def test_noinput_timers_reprompting_forever_are_not_a_loop() -> None:
    # no fallback and nobody on the line: the noinput timer paces the reprompts
    m = machine(APOLOGY_LOOP)
    out = m.handle(ev.CallConnected())
    for _ in range(5 * MAX_HANDLER_REPEATS):
        while not any(isinstance(e, fx.StartTimer) for e in out):
            out = m.handle(ev.PromptFinished(speak(out).prompt_id))  # marks never echoed
        out = m.handle(ev.TimerFired("noinput", timer(out, "noinput").token))
    assert m.state == "greet" and not m.ended


PING_PONG = """
name: ping_pong
initial: ping
variables: {n: 0}
states:
  ping:
    actions: [{set: {n: {expr: "n + 1"}}}]
    on: {done: pong}
  pong:
    actions: [{set: {m: 1}}]
    on:
      done: [{when: "n < LIMIT", goto: ping}, {goto: finished}]
  finished: {final: true}
"""


def test_states_bouncing_with_nothing_to_wait_for_end_at_the_tenth_round() -> None:
    m = machine(PING_PONG.replace("LIMIT", "1000000"))
    out = m.handle(ev.CallConnected())  # one synchronous cascade: it never returns without
    (loop,) = noted(out, "loop_detected")
    assert loop == {
        "rule": "handler_repeated",
        "state": "ping",
        "event": "done",
        "line": 8,
        "count": MAX_HANDLER_REPEATS,
    }
    assert m.variables["n"] == MAX_HANDLER_REPEATS and hangups(out) == ["loop_detected"]


@pytest.mark.parametrize("rounds", [3, MAX_HANDLER_REPEATS - 1])
def test_a_bounded_loop_the_machine_counts_itself_runs_to_its_end(rounds: int) -> None:
    m = machine(PING_PONG.replace("LIMIT", str(rounds)))
    out = m.handle(ev.CallConnected())
    assert noted(out, "loop_detected") == []
    assert m.variables["n"] == rounds and hangups(out) == ["completed"]


def test_digits_pressed_clear_the_handler_count() -> None:
    menu = """
    name: menu
    initial: menu
    states:
      menu:
        actions:
          - say: "Press 1."
          - gather: {num_digits: 1}
        on:
          "1": bye
          digits: {say: "No such option.", reprompt: true}
          noinput: {reprompt: true}
      bye: {actions: [hangup]}
    """
    m = machine(menu)
    playing = speak(m.handle(ev.CallConnected()))
    for _ in range(3 * MAX_HANDLER_REPEATS):
        # the same wrong key stops the menu, and the same handler answers it
        assert fx.StopPrompt(playing.prompt_id, "dtmf") in m.handle(ev.DigitPressed("7"))
        sorry = speak(m.handle(ev.PromptFinished(playing.prompt_id, (), True)))
        playing = speak(m.handle(ev.PromptFinished(sorry.prompt_id)))
    assert m.state == "menu" and not m.ended
