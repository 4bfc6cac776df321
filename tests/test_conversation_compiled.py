"""The conversation machine's expressions are parsed once, and its moves are its own.

`when:` conditions and `set: {x: {expr: ...}}` are parsed when the machine is loaded
and kept, parsed, in the spec; evaluating them does not parse again. Without a
transitions table the machine still refuses what it refused before: a handler chosen
before the call connected moves nowhere, and the call starts once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.language import expr
from fsm_voice.conversation.language.loader import MachineError, load_machine_text
from fsm_voice.conversation.language.spec import Handler, Set, Source
from fsm_voice.conversation.machine import ConversationMachine

COUNTING = """
name: counting
initial: ask
variables: {tries: 0}
states:
  ask:
    actions:
      - set: {tries: {expr: "tries + 1"}}
      - listen: {intents: {yes: [yes]}}
    on:
      yes:
        - {when: "tries >= 100", goto: done}
        - {when: "tries < 100 and lower(last_utterance) == 'yes'"}
      nomatch: {reprompt: true}
  done:
    final: true
    actions:
      - hangup: {reason: done}
"""


def notes(effects: list[fx.ConversationEffect], kind: str) -> list[dict[str, Any]]:
    return [e.details for e in effects if isinstance(e, fx.Note) and e.note_kind == kind]


def test_each_expression_is_parsed_once_when_loaded_not_when_evaluated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    parse = expr._parse

    def counting_parse(text: str) -> Any:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(expr, "_parse", counting_parse)
    m = ConversationMachine(load_machine_text(COUNTING, Path("counting.yaml"), check=False))
    assert sorted(parsed) == sorted(
        ["tries + 1", "tries >= 100", "tries < 100 and lower(last_utterance) == 'yes'"]
    )
    m.handle(ev.CallConnected({}))
    for _ in range(20):  # each answer evaluates both conditions; a nomatch re-runs the set
        m.handle(ev.TranscriptReceived("yes", end_ms=500))
        m.handle(ev.TranscriptReceived("banana", end_ms=500))
    assert m.variables["tries"] == 21  # the set ran again on every reprompt
    assert len(parsed) == 3


def test_a_bad_condition_is_still_reported_at_load_with_its_line() -> None:
    bad = COUNTING.replace("tries >= 100", "tries.real >= 100")
    with pytest.raises(MachineError) as raised:
        load_machine_text(bad, Path("counting.yaml"), check=False)
    assert "counting.yaml:12" in str(raised.value)
    assert "attribute access not allowed" in str(raised.value)


def test_a_spec_built_in_code_parses_its_expressions_when_built() -> None:
    handler = Handler("yes", None, when="tries > 1")
    assert handler.condition is not None and handler.condition.names == {"tries"}
    action = Set({"n": "tries * 2"}, frozenset({"n"}), Source("x.yaml", 1))
    assert action.compiled["n"].evaluate({"tries": 3}) == 6
    with pytest.raises(expr.ExprError):
        Handler("yes", None, when="tries.real")


GLOBAL_BEFORE_START = """
name: early
initial: greet
global:
  on:
    amd_machine: voicemail
    hangup: goodbye
states:
  greet:
    actions:
      - say: "Hello."
  voicemail:
    actions:
      - hangup: {reason: voicemail}
  goodbye:
    actions:
      - hangup: {reason: bye}
"""


def early() -> ConversationMachine:
    return ConversationMachine(load_machine_text(GLOBAL_BEFORE_START, Path("e.yaml"), check=False))


def test_a_global_handler_chosen_before_the_call_connected_moves_nowhere() -> None:
    m = early()
    out = m.handle(ev.AnsweringMachineDetected("machine_start"))
    assert notes(out, "transition_rejected") == [
        {"trigger": "on:amd_machine", "state": "__start__"}
    ]
    assert m.state == "__start__" and not m.ended
    out = m.handle(ev.CallConnected({}))
    assert notes(out, "state_entered") == [
        {"machine": "conversation", "state": "greet", "from": "__start__", "on": "__start__"}
    ]


def test_the_call_starts_once() -> None:
    m = early()
    m.handle(ev.CallConnected({}))
    out = m.handle(ev.CallConnected({}))
    assert notes(out, "transition_rejected") == [{"trigger": "on:__start__", "state": "greet"}]
    assert m.state == "greet"


@pytest.mark.parametrize(("connected", "ended_in"), [(False, "__start__"), (True, "goodbye")])
def test_hanging_up_moves_to_the_hangup_handlers_state_only_after_the_start(
    connected: bool, ended_in: str
) -> None:
    m = early()
    if connected:
        m.handle(ev.CallConnected({}))
    out = m.handle(ev.CallerHungUp("caller"))
    (ended,) = notes(out, "conversation_ended")
    assert ended == {"state": ended_in, "reason": "caller"}
    assert m.state == "__ended__"
