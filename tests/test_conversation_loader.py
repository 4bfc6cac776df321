"""Loading machine files: shorthands, and broken files rejected with file:line:state."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fsm_voice.conversation.language.loader import (
    MachineError,
    load_machine,
    load_machine_report,
    load_machine_text,
)
from fsm_voice.conversation.language.spec import Gather, Hangup, Listen, Say, Set, Sms
from fsm_voice.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path) -> list[str]:
    return [str(p) for p in load_machine_report(path)[1]]


def test_shorthands_load_into_the_typed_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        initial: ask
        states:
          ask:
            actions:
              - say: ["Say yes or no.", "Yes or no?", {count: 4, text: "Last try."}]
              - listen:
                  intents:
                    agree: [yes, on, "no way"]
                    amount: {regex: '(?P<n>\\d+) dollars', keywords: [dollars], slot: said}
                    two: {regex: [a, b]}
            on:
              agree: done
              amount: {goto: done, when: "int(n) > 5", set: {total: {expr: "int(n) * 2"}}}
              two: [{when: "attempt > 1", goto: done}, {say: "Again.", reprompt: true}]
              noinput: {count: 2, goto: done}
              nomatch: {reprompt: true}
          done:
            actions:
              - sms: {body: "Total {total}"}
              - hangup
        """,
    )
    spec = load_machine(path)
    assert spec.name == "m" and spec.initial == "ask"
    ask = spec.states["ask"]
    say, listen = ask.actions
    assert isinstance(say, Say) and isinstance(listen, Listen)
    # A list escalates: plain texts take the next count.
    assert [(p.text, p.count) for p in say.prompts] == [
        ("Say yes or no.", 1),
        ("Yes or no?", 2),
        ("Last try.", 4),
    ]
    agree, amount, two = listen.intents
    assert agree.phrases == ("yes", "on", "no way")  # YAML 1.1 booleans stay words
    assert amount.regexes == ("(?P<n>\\d+) dollars",) and amount.keywords == ("dollars",)
    assert amount.slot == "said" and two.regexes == ("a", "b")
    assert [(h.event, h.goto, h.count) for h in ask.handlers] == [
        ("agree", "done", 1),
        ("amount", "done", 1),
        ("two", "done", 1),
        ("two", None, 1),
        ("noinput", "done", 2),
        ("nomatch", None, 1),
    ]
    amount_handler = ask.handlers[1]
    assert amount_handler.when == "int(n) > 5"
    (set_action,) = amount_handler.actions
    assert isinstance(set_action, Set) and set_action.expressions == {"total"}
    assert ask.handlers[3].reprompt and ask.handlers[3].source is not None
    assert ask.handlers[3].source.line == 14
    done = spec.states["done"]
    sms, hangup = done.actions
    assert isinstance(sms, Sms) and sms.to == "{caller}"
    assert isinstance(hangup, Hangup) and hangup.reason == "completed"
    assert done.final and not ask.final
    assert len(spec.version) == 12 and spec.hooks_path[0] == str(tmp_path.resolve())


def test_version_is_a_content_hash_unless_declared(tmp_path: Path) -> None:
    body = "initial: a\nstates:\n  a: {final: true}\n"
    a = load_machine(write(tmp_path, body, "a.yaml")).version
    b = load_machine(write(tmp_path, body + "# changed\n", "b.yaml")).version
    assert a != b and len(a) == 12
    assert load_machine(write(tmp_path, "version: v7\n" + body, "c.yaml")).version == "v7"


def test_gather_defaults_and_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        initial: a
        settings: {noinput_timeout_ms: 7000, bargein: false}
        states:
          a:
            bargein: true
            actions: [gather]
            on: {digits: b, noinput: b}
          b: {final: true}
        """,
    )
    spec = load_machine(path)
    (gather,) = spec.states["a"].actions
    assert isinstance(gather, Gather)
    assert (gather.finish_on_key, gather.num_digits, gather.variable) == ("#", None, "digits")
    assert spec.settings.noinput_timeout_ms == 7000 and not spec.settings.bargein
    assert spec.states["a"].bargein is True and spec.states["b"].bargein is None


# Each broken file: (YAML, the exact problem line it must produce).
BROKEN = {
    "yaml_syntax": (
        """
        initial: a
        states:
          a: {final: true
        """,
        "{f}:4: YAML syntax: expected ',' or '}', but got '<stream end>'",
    ),
    "unknown_key_with_suggestion": (
        """
        initial: a
        states:
          a:
            bargin: false
            final: true
        """,
        "{f}:4: state 'a': a state: unknown key 'bargin' (did you mean 'bargein'?)",
    ),
    "bad_type": (
        """
        initial: a
        states:
          a:
            actions: [gather]
            on:
              noinput: {count: two, goto: a}
              digits: b
          b: {final: true}
        """,
        "{f}:6: state 'a': count must be a whole number, not 'two'",
    ),
    "bad_regex": (
        """
        initial: a
        states:
          a:
            actions:
              - listen:
                  intents:
                    money: {regex: '(?P<n>\\d+'}
            on: {money: a}
        """,
        "{f}:7: state 'a': intent 'money': bad regex '(?P<n>\\\\d+': "
        "missing ), unterminated subpattern at position 0",
    ),
    "finish_key_is_a_comment": (
        """
        initial: a
        states:
          a:
            actions:
              - gather:
                  finish_on_key: #
            on: {digits: a}
        """,
        "{f}:6: state 'a': finish_on_key is empty: '#' starts a YAML comment, quote it: \"#\"",
    ),
    "duplicate_key": (
        """
        initial: a
        states:
          a: {final: true}
          b: {final: true}
          a: {final: true}
        """,
        "{f}:5: states: duplicate key 'a' (first on line 3)",
    ),
    "action_outside_actions": (
        """
        initial: a
        states:
          a:
            say: "Hello"
            final: true
        """,
        "{f}:4: state 'a': a state: unknown key 'say': an action goes in the list under 'actions:'",
    ),
    "two_actions_in_one_item": (
        """
        initial: a
        states:
          a:
            actions:
              - say: "Hi"
                hangup: done
        """,
        "{f}:5: state 'a': an action has one key, not 2 (say, hangup): start each with '-'",
    ),
    "unknown_action": (
        """
        initial: a
        states:
          a:
            actions:
              - lisen: {intents: {yes: [yes]}}
            final: true
        """,
        "{f}:5: state 'a': unknown action 'lisen' (did you mean 'listen'?)",
    ),
    "bad_expression": (
        """
        initial: a
        states:
          a:
            actions: [gather]
            on:
              digits: {when: "digits.startswith('1')", goto: a}
        """,
        "{f}:6: state 'a': on digits: when: \"digits.startswith('1')\": call "
        "\"digits.startswith('1')\" not allowed (only len(x), int(x), str(x), lower(x))",
    ),
    "missing_initial": (
        """
        states:
          a: {final: true}
        """,
        "{f}:1: missing 'initial'",
    ),
    "bad_template": (
        """
        initial: a
        states:
          a:
            actions:
              - say: "Hi {name.first}"
              - hangup
        """,
        "{f}:5: state 'a': template 'Hi {{name.first}}': {{name.first}} is not a variable name",
    ),
    "intent_named_like_an_event": (
        """
        initial: a
        states:
          a:
            actions:
              - listen:
                  intents:
                    noinput: [nothing]
            final: true
        """,
        "{f}:7: state 'a': intent 'noinput' is a built-in event",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_are_rejected_with_file_line_and_state(tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = write(tmp_path, text, f"{case}.yaml")
    expected = expected.replace("{f}", str(path)).replace("{{", "{").replace("}}", "}")
    assert expected in problems(path)
    with pytest.raises(MachineError) as info:
        load_machine(path)
    assert isinstance(info.value, ConfigError)
    assert expected in str(info.value).splitlines()


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        initial: a
        states:
          a:
            bargein: maybe
            actions:
              - say: {count: 1}
              - gather: {num_digits: 0, input: keys}
            on:
              digits: {goto: b, count: 0}
          b: {final: yes please}
        """,
    )
    f = str(path)
    assert problems(path) == [
        f"{f}:4: state 'a': bargein must be true or false, not 'maybe'",
        f"{f}:6: state 'a': say must be a list, not a mapping",
        f"{f}:7: state 'a': input must be dtmf, speech or both, not 'keys'",
        f"{f}:7: state 'a': num_digits must be at least 1, not 0",
        f"{f}:9: state 'a': count must be at least 1, not 0",
        f"{f}:10: state 'b': final must be true or false, not 'yes please'",
    ]


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}:1: cannot read: No such file or directory"]


def test_text_is_loaded_under_the_name_it_is_given() -> None:
    spec = load_machine_text("initial: a\nstates:\n  a: {final: true}\n", "virtual/x.yaml")
    assert spec.path == "virtual/x.yaml" and spec.states["a"].source.line == 3
    with pytest.raises(MachineError) as info:
        load_machine_text("initial: b\nstates:\n  a: {final: true}\n", "virtual/y.yaml")
    assert str(info.value) == "virtual/y.yaml:1: initial state 'b' is not a state"
