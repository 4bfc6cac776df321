"""`fsm-voice export CALL_ID --out DIR`: a call as a replay fixture directory
(`fsm-voice import` loads one back)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fsm_voice.commands.options import add_dbs, log_paths
from fsm_voice.commands.registry import Command


def export_command(dbs: Sequence[str], call_id: str, out: Path) -> int:
    from fsm_voice.eventlog.fixture import export_fixture
    from fsm_voice.eventlog.multi import LogSet

    with LogSet(dbs) as logs:
        call_id = logs.resolve(call_id)
        files = export_fixture(logs, call_id, out)
    print(f"{call_id} → {out}/")
    for path in files:
        print(f"  {path.name:<13} {path.stat().st_size:>9,} bytes")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call_id", metavar="CALL_ID")
    add_dbs(parser)
    parser.add_argument("--out", type=Path, required=True, help="the fixture directory")


def _run(args: argparse.Namespace) -> int:
    return export_command(log_paths(args), args.call_id, args.out)


COMMAND = Command(
    "export",
    help="write a call as a replay fixture directory (events.jsonl, WAVs, meta.json)",
    epilog="Example:\n  fsm-voice export FV6753 --db calls.db --out replays/appointment-happy/",
    arguments=_arguments,
    run=_run,
)
