"""`check` warns about `error` handlers that fail the way the error did, in a loop."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fsm_voice.cli import main
from fsm_voice.conversation.language.loader import load_machine_report

ASK = """
  ask:
    actions:
      - say: "Yes or no?"
      - listen: {intents: {agree: [yes]}}
    on: {agree: bye, noinput: bye, nomatch: bye}
  bye: {actions: [hangup]}
"""


def warnings(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n") + ASK)
    spec, found = load_machine_report(path)
    assert spec is not None, found
    return [str(p).replace(f"{path}:", "") for p in found if "on error" in p.message]


def test_a_global_error_handler_that_goes_to_a_prompt_loops(tmp_path: Path) -> None:
    found = warnings(
        tmp_path,
        """
        initial: ask
        global: {on: {error: sorry}}
        states:
          sorry:
            actions: [{say: "Sorry, goodbye."}, {hangup: failed}]
        """,
    )
    assert found == [
        "2: warning: global on error: goes to 'sorry', whose say (line 5) fails again if "
        "the TTS is what failed, and this handler runs again: a loop (the runtime ends the "
        "call as loop_detected). Give 'sorry' an `error` handler that neither speaks nor "
        "calls a hook (to a state that only hangs up or transfers), or bound it with `when`"
    ]


def test_an_error_handler_that_reprompts_or_speaks_itself_loops(tmp_path: Path) -> None:
    found = warnings(
        tmp_path,
        """
        initial: ask
        states:
          q1:
            actions: [{say: "Again?"}, {listen: {intents: {agree: [yes]}}}]
            on: {agree: bye, noinput: bye, nomatch: bye, error: {reprompt: true}}
          q2:
            actions: [{listen: {intents: {agree: [yes]}}}]
            on: {agree: bye, noinput: bye, nomatch: bye, error: {say: "Oops."}}
        """,
    )
    assert [f.split(":")[0] for f in found] == ["5", "8"]
    assert "state 'q1': on error: reprompts, and the say (line 4) fails again" in found[0]
    assert "state 'q2': on error: its say (line 8) fails again" in found[1]


def test_retrying_a_failing_hook_loops_and_each_handler_of_a_cycle_is_named(
    tmp_path: Path,
) -> None:
    (tmp_path / "crm_hooks.py").write_text("def lookup(ctx):\n    return 'found'\n")
    found = warnings(
        tmp_path,
        """
        initial: ask
        states:
          lookup:
            actions: [{hook: "crm_hooks:lookup"}]
            on: {found: bye, error: lookup}
          a:
            actions: [{say: "A."}, hangup]
            on: {error: b}
          b:
            actions: [{say: "B."}, hangup]
            on: {error: a}
        """,
    )
    assert found[0].startswith(
        "5: warning: state 'lookup': on error: goes to 'lookup', whose hook "
        "'crm_hooks:lookup' (line 4) can fail the same way, and this handler runs again"
    )
    assert [f.split(":")[0] for f in found[1:]] == ["8", "11"]
    assert "goes to 'b', whose say (line 10) fails again" in found[1]
    assert "and that leads back here" in found[1]


@pytest.mark.parametrize(
    "fixed",
    [
        # the apology's own failure goes to a state that only hangs up
        """
        initial: ask
        global: {on: {error: sorry}}
        states:
          sorry:
            actions: [{say: "Sorry."}, {hangup: failed}]
            on: {error: quiet}
          quiet: {actions: [{hangup: failed}]}
        """,
        # a condition bounds the retries
        """
        initial: ask
        variables: {tries: 0}
        global: {on: {error: {when: "tries < 2", goto: sorry}}}
        states:
          sorry:
            actions: [{set: {tries: {expr: "tries + 1"}}}, {say: "Sorry."}, hangup]
        """,
        # nothing in the error path can fail the same way: a file and a transfer
        """
        initial: ask
        global: {on: {error: agent}}
        states:
          agent:
            actions: [{play: hold.wav}, {transfer: "+15550100"}]
        """,
    ],
    ids=["own_handler", "when", "no_speech"],
)
def test_error_paths_that_cannot_loop_are_not_warned(tmp_path: Path, fixed: str) -> None:
    (tmp_path / "hold.wav").write_bytes(b"RIFF")
    assert warnings(tmp_path, fixed) == []


def test_the_warning_alone_does_not_fail_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    text = "initial: ask\nglobal: {on: {error: ask}}\nstates:\n"
    path.write_text(text + ASK)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{path}: ok (0 errors, 1 warning)"
    assert "global on error: goes to 'ask', whose say (line 7)" in out[0]
