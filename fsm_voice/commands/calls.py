"""`fsm-voice calls`: one row per call across one or more event logs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fsm_voice.commands.options import add_dbs, add_formats, log_paths
from fsm_voice.commands.registry import Command

if TYPE_CHECKING:  # the log and rich load when the command runs
    from rich.table import Table

    from fsm_voice.commands.output import Format
    from fsm_voice.eventlog.summary import CallSummary


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[CallSummary]) -> Table:
    from rich.table import Table

    from fsm_voice.eventlog.timeline import seconds

    table = Table(title=f"{len(rows)} call(s)", title_justify="left")
    for name in ("call", "started (UTC)", "duration", "machine", "final state", "outcome"):
        table.add_column(name, no_wrap=True)
    table.add_column("end reason")
    for name in ("turns", "noinput", "nomatch", "barge-ins"):
        table.add_column(name, justify="right")
    for r in rows:
        duration = "-" if r.duration_ms is None else f"{seconds(r.duration_ms)} s"
        table.add_row(
            r.call_id,
            r.started_at.replace("T", " ").removesuffix("Z"),
            duration,
            _text(r.machine),
            _text(r.final_state),
            _text(r.outcome),
            _text(r.end_reason),
            str(r.turns),
            str(r.noinput),
            str(r.nomatch),
            str(r.bargeins),
        )
    return table


def calls(dbs: Sequence[str], fmt: Format) -> int:
    from fsm_voice.commands.output import console, print_json
    from fsm_voice.eventlog.multi import LogSet
    from fsm_voice.eventlog.summary import call_summaries

    with LogSet(dbs) as logs:
        rows = call_summaries(logs)
    if fmt == "table":
        console().print(_table(rows))
    else:
        print_json((r.to_json() for r in rows), fmt)
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_dbs(parser)
    add_formats(parser)


def _run(args: argparse.Namespace) -> int:
    from fsm_voice.commands.output import output_format

    return calls(log_paths(args), output_format(args.json, args.nl))


COMMAND = Command(
    "calls",
    help="one row per call: machine, final state, outcome, turns, failures",
    epilog="Example:\n  fsm-voice calls --db calls.db\n  fsm-voice calls --db 'logs/*.db' --nl",
    arguments=_arguments,
    run=_run,
)
