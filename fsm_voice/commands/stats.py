"""`fsm-voice stats`: figures across every call of one or more event logs, and the
upgrades refused before they became calls."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.table import Table

from fsm_voice.commands.options import add_dbs, log_paths
from fsm_voice.commands.registry import Command

if TYPE_CHECKING:  # the log (and numpy with it) loads when the command runs
    from fsm_voice.eventlog.stats import LatencyFigures, Stats


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"


def _latency_table(stats: Stats) -> Table:
    table = Table(title="turn latency (speech end → first agent audio)", title_justify="left")
    for name in ("machine", "turns", "p50", "p95", "max"):
        table.add_column(name, justify="left" if name == "machine" else "right")
    rows: list[tuple[str, LatencyFigures]] = sorted(stats.latency_by_machine.items())
    for machine, f in [*rows, ("all", stats.latency)]:
        table.add_row(machine or "-", str(f.turns), _ms(f.p50_ms), _ms(f.p95_ms), _ms(f.max_ms))
    return table


def _state_table(stats: Stats) -> Table:
    table = Table(title="noinput / nomatch / barge-ins by state", title_justify="left")
    for name in ("machine", "state", "noinput", "nomatch", "barge-ins"):
        table.add_column(name, justify="right" if name not in ("machine", "state") else "left")
    places = sorted({(m, s) for m, s, _ in stats.by_state})
    for m, s in places:
        counts = [str(stats.by_state[(m, s, w)]) for w in ("noinput", "nomatch", "bargein")]
        table.add_row(m or "-", s or "-", *counts)
    return table


def _outcome_table(stats: Stats) -> Table:
    table = Table(title=f"{stats.calls} call(s) by outcome", title_justify="left")
    for name in ("machine", "outcome", "final state", "calls"):
        table.add_column(name, justify="right" if name == "calls" else "left")
    for (m, o, s), n in sorted(stats.outcomes.items()):
        table.add_row(m or "-", o or "-", s or "-", str(n))
    return table


def _minute(wall_ms: int) -> str:
    return datetime.fromtimestamp(wall_ms / 1000, UTC).strftime("%Y-%m-%d %H:%MZ")


def _refused_table(stats: Stats) -> Table:
    by_reason = stats.refused_by_reason()
    total = sum(n for n, _, _ in by_reason.values())
    table = Table(title=f"{total} upgrade(s) refused before a call", title_justify="left")
    for name in ("reason", "status", "refused", "first minute", "last minute"):
        table.add_column(name, justify="right" if name in ("status", "refused") else "left")
    for (reason, status), (n, first, last) in sorted(by_reason.items()):
        table.add_row(reason, str(status), str(n), _minute(first), _minute(last))
    return table


def stats(dbs: Sequence[str], as_json: bool) -> int:
    from fsm_voice.commands.output import console
    from fsm_voice.eventlog.multi import LogSet
    from fsm_voice.eventlog.stats import collect_stats

    with LogSet(dbs) as logs:
        figures = collect_stats(logs)
    if as_json:
        print(json.dumps(figures.to_json(), indent=2, sort_keys=True))
        return 0
    out = console()
    out.print(_outcome_table(figures))
    out.print(_latency_table(figures))
    out.print(_state_table(figures))
    out.print(_refused_table(figures))
    reconnects = sum(figures.reconnects.values())
    detail = ", ".join(f"{m or '-'}/{s}: {n}" for (m, s), n in sorted(figures.reconnects.items()))
    out.print(f"provider reconnects: {reconnects}" + (f" ({detail})" if detail else ""))
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_dbs(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object")


def _run(args: argparse.Namespace) -> int:
    return stats(log_paths(args), args.json)


COMMAND = Command(
    "stats",
    help="across calls: turn latency, noinput/nomatch by state, barge-ins, reconnects",
    epilog="Example:\n  fsm-voice stats --db 'logs/*.db'\n  fsm-voice stats --db calls.db --json",
    arguments=_arguments,
    run=_run,
)
