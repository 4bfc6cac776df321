"""`fsm-voice diagram MACHINE [--out FILE]`: a machine as a Mermaid state diagram.

The diagram is drawn even when the machine has semantic errors (an unknown target
shows up as a stray state), because seeing the graph is often how one finds them;
a file that does not parse at all is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fsm_voice.commands.registry import Command

__all__ = ["COMMAND", "diagram"]


def diagram(machine: Path, out: Path | None) -> int:
    from fsm_voice.conversation.language.diagram import to_mermaid
    from fsm_voice.conversation.language.loader import load_machine
    from fsm_voice.shipped import resolve_machine

    text = to_mermaid(load_machine(resolve_machine(machine), check=False))
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        print(f"wrote {out}")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("machine", type=Path, metavar="MACHINE")
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")


def _run(args: argparse.Namespace) -> int:
    return diagram(args.machine, args.out)


COMMAND = Command(
    "diagram",
    help="draw a conversation machine as a Mermaid state diagram",
    epilog="Example:\n  fsm-voice diagram machines/appointment.yaml",
    arguments=_arguments,
    run=_run,
)
