"""`fsm-voice calls`: one row per call across one or more event logs."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from fsm_voice.commands.output import Format, console, print_json
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.summary import CallSummary, call_summaries
from fsm_voice.eventlog.timeline import seconds


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[CallSummary]) -> Table:
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
    with LogSet(dbs) as logs:
        rows = call_summaries(logs)
    if fmt == "table":
        console().print(_table(rows))
    else:
        print_json((r.to_json() for r in rows), fmt)
    return 0
