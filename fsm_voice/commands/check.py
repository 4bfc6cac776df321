"""`fsm-voice check MACHINE...`: print every problem of each machine file.

Exit 1 if any file has an error; warnings alone exit 0 (they are worth reading, but a
machine with them runs).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fsm_voice.commands.registry import Command
from fsm_voice.errors import ConfigError

__all__ = ["COMMAND", "check"]


def check(paths: Sequence[Path]) -> int:
    from fsm_voice.conversation.language.loader import load_machine_report
    from fsm_voice.shipped import resolve_machine

    failed = False
    for argument in paths:
        try:
            path = resolve_machine(argument)
        except ConfigError as error:
            print(f"{argument}: FAILED ({error})")
            failed = True
            continue
        _, problems = load_machine_report(path)
        for problem in problems:
            print(problem)
        errors = sum(p.severity == "error" for p in problems)
        warnings = len(problems) - errors
        verdict = "FAILED" if errors else "ok"
        print(f"{path}: {verdict} ({_plural(errors, 'error')}, {_plural(warnings, 'warning')})")
        failed = failed or errors > 0
    return 1 if failed else 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("machines", nargs="+", type=Path, metavar="MACHINE")


def _run(args: argparse.Namespace) -> int:
    return check(args.machines)


COMMAND = Command(
    "check",
    help="validate conversation machine files (exit 1 on errors)",
    epilog="Example:\n  fsm-voice check machines/appointment.yaml machines/ivr.yaml",
    arguments=_arguments,
    run=_run,
)
