"""Semantic checks and `fsm-voice check`: each problem named with file, line and state."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fsm_voice.cli import main
from fsm_voice.conversation.language.loader import load_machine_report

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "machines").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path) -> list[str]:
    return [str(p) for p in load_machine_report(path)[1]]


def test_there_are_at_least_three_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {"appointment", "ivr", "survey"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_machine_checks_clean(path: Path) -> None:
    spec, found = load_machine_report(path)
    assert spec is not None
    assert found == []  # not even warnings: the examples are templates


# Each semantic problem: (YAML, the exact line it must produce).
SEMANTIC = {
    "unknown_target": (
        """
        initial: greet
        states:
          greet:
            actions:
              - listen: {intents: {confirm: [yes]}}
            on:
              confirm: confrimed
              noinput: bye
              nomatch: bye
          confirmed: {final: true}
          bye: {actions: [hangup]}
        """,
        "{f}:7: state 'greet': unknown target state 'confrimed' (did you mean 'confirmed'?)",
    ),
    "unknown_initial": (
        """
        initial: start
        states:
          begin: {final: true}
        """,
        "{f}:1: initial state 'start' is not a state",
    ),
    "unknown_fallback_target": (
        """
        initial: a
        global:
          fallback: {after: 2, goto: agnet}
        states:
          a: {final: true}
          agent: {actions: [{transfer: "+15550100"}]}
        """,
        "{f}:3: fallback: unknown target state 'agnet' (did you mean 'agent'?)",
    ),
    "no_way_out": (
        """
        initial: a
        states:
          a:
            actions: [{say: "Hello"}]
        """,
        "{f}:3: state 'a': no way out: no handlers ('on:'), not final, and no hangup or transfer",
    ),
    "no_way_to_end": (
        """
        initial: a
        states:
          a:
            actions: [{say: "Ping"}]
            on: {done: b}
          b:
            actions: [{say: "Pong"}]
            on: {done: a}
        """,
        "{f}:1: no way to end: no state reachable from the initial state is final "
        "(final: true, hangup or transfer)",
    ),
    "undefined_variable": (
        """
        initial: a
        variables: {patient: Alex}
        states:
          a:
            actions:
              - say: "Hi {pateint}"
              - hangup
        """,
        "{f}:6: state 'a': undefined variable 'pateint' in 'Hi {pateint}' "
        "(did you mean 'patient'?)",
    ),
    "undefined_variable_in_condition": (
        """
        initial: a
        states:
          a:
            actions: [gather]
            on:
              digits: {when: "int(pin) == 1234", goto: b}
              noinput: b
          b: {final: true}
        """,
        "{f}:6: state 'a': undefined variable 'pin' in 'int(pin) == 1234'",
    ),
    "unknown_event": (
        """
        initial: a
        states:
          a:
            actions:
              - listen: {intents: {confirm: [yes], cancel: [no]}}
            on:
              confrim: b
              cancel: b
              noinput: b
              nomatch: b
          b: {final: true}
        """,
        "{f}:7: state 'a': unknown event 'confrim' (did you mean 'confirm'?)",
    ),
    "unknown_hook_module": (
        """
        initial: a
        states:
          a:
            actions:
              - hook: no_such_hooks_module:lookup
            on: {found: b}
          b: {final: true}
        """,
        "{f}:5: state 'a': hook module 'no_such_hooks_module' not found (searched {d})",
    ),
    "missing_play_file": (
        """
        initial: a
        states:
          a:
            actions:
              - play: sounds/welcome.wav
              - hangup
        """,
        "{f}:5: state 'a': play: no such file 'sounds/welcome.wav' (relative to {d})",
    ),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_semantic_errors_name_file_line_and_state(tmp_path: Path, case: str) -> None:
    text, expected = SEMANTIC[case]
    path = write(tmp_path, text, f"{case}.yaml")
    expected = expected.replace("{f}", str(path)).replace("{d}", str(tmp_path.resolve()))
    assert expected in problems(path)
    assert main(["check", str(path)]) == 1


def test_hooks_are_found_next_to_the_machine_and_their_returns_are_variables(
    tmp_path: Path,
) -> None:
    (tmp_path / "clinic_hooks_ok.py").write_text("def lookup(ctx):\n    return 'found'\n")
    path = write(
        tmp_path,
        """
        initial: a
        states:
          a:
            actions:
              - hook: {target: "clinic_hooks_ok:lookup", returns: [slot_time]}
              - hook: "clinic_hooks_ok:missing"
            on: {found: b}
          b:
            actions: [{say: "Booked at {slot_time}."}, hangup]
        """,
    )
    assert problems(path) == [
        f"{path}:6: state 'a': hook 'clinic_hooks_ok:missing': module 'clinic_hooks_ok' "
        "has no function 'missing'"
    ]


def test_a_hook_module_that_fails_to_import_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "broken_hooks_mod.py").write_text("raise RuntimeError('no database')\n")
    path = write(
        tmp_path,
        """
        initial: a
        states:
          a:
            actions: [{hook: "broken_hooks_mod:f"}]
            on: {done: b}
          b: {final: true}
        """,
    )
    assert problems(path) == [
        f"{path}:4: warning: state 'a': hook module 'broken_hooks_mod' fails to import "
        "(RuntimeError: no database)"
    ]


def test_variables_come_from_slots_groups_gather_set_and_builtins(tmp_path: Path) -> None:
    (tmp_path / "welcome.wav").write_bytes(b"RIFF")
    path = write(
        tmp_path,
        """
        initial: a
        global:
          fallback: {after: 3, goto: b}
        states:
          a:
            actions:
              - play: welcome.wav
              - listen:
                  intents:
                    day: {phrases: [monday], slot: picked}
                    money: {regex: '(?P<amount>\\d+) dollars'}
            on:
              day: {set: {total: {expr: "len(picked) + 1"}}, goto: c}
              money: {when: "int(amount) > 3 and attempt < 2", goto: c}
          c:
            actions: [{gather: {variable: pin}}]
            on: {digits: b}
          b:
            actions:
              - say: "{picked} {amount} {total} {pin} {caller} {last_utterance} {nomatch_count}"
              - sms: {to: "{called}", body: "{call_id}"}
              - hangup
        """,
    )
    assert problems(path) == []


def test_warnings_name_the_state_and_alone_exit_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
        initial: ask
        states:
          ask:
            actions:
              - listen: {intents: {agree: [yes, sure], accept: [sure]}}
            on:
              agree: done
              accept: done
              nomatch: [{goto: done}, {goto: ask}]
          orphan: {final: true}
          done: {final: true}
        """,
    )
    assert problems(path) == [
        f"{path}:3: warning: state 'ask': no 'noinput' handler "
        "(nor a global one or a fallback): reprompts forever",
        f"{path}:5: warning: state 'ask': phrase 'sure' is in intents 'agree' and 'accept'",
        f"{path}:9: warning: state 'ask': on nomatch: never runs (an earlier handler always "
        "matches first)",
        f"{path}:10: warning: state 'orphan': unreachable from 'ask'",
    ]
    capsys.readouterr()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{path}: ok (0 errors, 4 warnings)"
    assert len(out) == 5


def test_check_prints_every_problem_and_a_summary_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(
        tmp_path,
        """
        initial: a
        states:
          a:
            actions: [{say: "Hi {nobody}"}]
            on: {done: nowhere}
        """,
        "bad.yaml",
    )
    good = EXAMPLES[0]
    assert main(["check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{good}: ok (0 errors, 0 warnings)",
        f"{bad}:1: no way to end: no state reachable from the initial state is final "
        "(final: true, hangup or transfer)",
        f"{bad}:4: state 'a': undefined variable 'nobody' in 'Hi {{nobody}}'",
        f"{bad}:5: state 'a': unknown target state 'nowhere'",
        f"{bad}: FAILED (3 errors, 0 warnings)",
    ]
    assert main(["check", *map(str, EXAMPLES)]) == 0
