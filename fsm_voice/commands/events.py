"""`fsm-voice events CALL_ID`: one call's timeline."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fsm_voice.commands.options import add_dbs, add_formats, log_paths
from fsm_voice.commands.registry import Command

if TYPE_CHECKING:  # the log and rich load when the command runs
    from fsm_voice.commands.output import Format

# Colours by source, so the conversation's decisions stand out from transport noise.
_STYLE = {"conversation": "bold", "stt": "magenta", "tts": "green", "transport": "dim"}


def events(
    dbs: Sequence[str], call_id: str, kind: str | None, source: str | None, fmt: Format
) -> int:
    from rich.markup import escape
    from rich.table import Table

    from fsm_voice.commands.output import console, print_json
    from fsm_voice.eventlog.multi import LogSet
    from fsm_voice.eventlog.timeline import describe, seconds, timeline_json

    with LogSet(dbs) as logs:
        call_id = logs.resolve(call_id)
        records = logs.events(call_id, kind=kind, source=source)
    if fmt != "table":
        print_json((timeline_json(e) for e in records), fmt)
        return 0
    table = Table(title=f"{call_id}: {len(records)} event(s)", title_justify="left", box=None)
    table.add_column("t (s)", justify="right", no_wrap=True)
    table.add_column("seq", justify="right", style="dim", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("details", overflow="fold")
    for e in records:
        style = _STYLE.get(e.source, "")
        details = escape(describe(e))
        table.add_row(seconds(e.t_ms), str(e.seq), e.source, e.kind, details, style=style)
    console().print(table)
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call_id", metavar="CALL_ID")
    add_dbs(parser)
    parser.add_argument("--kind", help="only this kind, e.g. transcript_committed")
    parser.add_argument("--source", help="only this source, e.g. stt")
    add_formats(parser)


def _run(args: argparse.Namespace) -> int:
    from fsm_voice.commands.output import output_format

    fmt = output_format(args.json, args.nl)
    return events(log_paths(args), args.call_id, args.kind, args.source, fmt)


COMMAND = Command(
    "events",
    help="a call's timeline (CALL_ID may be a unique prefix)",
    epilog="Example:\n  fsm-voice events FV6753 --db calls.db --source conversation",
    arguments=_arguments,
    run=_run,
)
