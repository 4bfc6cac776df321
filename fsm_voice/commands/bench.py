"""`fsm-voice bench calls|turns`: the benchmarks, which print their figures.

A group: `bench` has no work of its own; `calls` (concurrent echo calls over
127.0.0.1, `fsm_voice.bench.calls`) and `turns` (turn latency and STT accuracy of the
demo's calls, `fsm_voice.bench.turns`) are its subcommands, each loaded when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fsm_voice.commands.registry import Command

__all__ = ["COMMAND"]


def _calls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ramp", help="comma-separated call counts to try in turn")
    parser.add_argument("--db", help="event log (default: a temporary file)")
    parser.add_argument("--mark-every", type=int, default=10, help="echo: frames per mark")


def _run_calls(args: argparse.Namespace) -> int:
    from fsm_voice.bench.calls import bench_calls

    ramp = [int(n) for n in args.ramp.split(",")] if args.ramp else [args.calls]
    return bench_calls(ramp, args.seconds, args.db, args.mark_every)


def _turns_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=1, help="times to run each caller script")
    parser.add_argument("--script", action="append", help="caller script name (repeatable)")


def _run_turns(args: argparse.Namespace) -> int:
    from fsm_voice.bench.turns import DEFAULT_SCRIPTS, bench_turns

    scripts = tuple(args.script) if args.script else DEFAULT_SCRIPTS
    return bench_turns(Path.cwd(), scripts, args.rounds)


COMMAND = Command(
    "bench",
    help="benchmarks (print their figures)",
    epilog="Example:\n  fsm-voice bench calls --calls 300 --seconds 20\n"
    "  fsm-voice bench calls --ramp 100,200,300,400 --seconds 10\n"
    "  fsm-voice bench turns --rounds 3",
    metavar="BENCH",
    subcommands=(
        Command(
            "calls",
            help="concurrent echo calls over 127.0.0.1",
            arguments=_calls_arguments,
            run=_run_calls,
        ),
        Command(
            "turns",
            help="turn latency and STT accuracy of the demo's calls (offline providers)",
            arguments=_turns_arguments,
            run=_run_turns,
        ),
    ),
)
