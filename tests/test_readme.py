"""The docs describe every command, and the README's two commands exist."""

from __future__ import annotations

import argparse
from pathlib import Path

from fsm_voice.cli import _parser

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_is_documented_in_the_commands_page() -> None:
    # The README's list of commands moved to docs/reference/commands.md.
    commands = (ROOT / "docs" / "reference" / "commands.md").read_text()
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert f"fsm-voice {name}" in commands, name
        assert "Example:" in (sub.epilog or ""), name


def test_readme_setup_commands_are_make_targets_and_ci_runs_the_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
