"""Options several commands share: the event log(s) they read, and how they print.

Every read command takes `--db` several times or a glob (one file per server process)
and reads them as one. The database path defaults to $FSM_VOICE_DB or ./calls.db.
"""

from __future__ import annotations

import argparse
import os
from typing import Final

DEFAULT_DB: Final = os.environ.get("FSM_VOICE_DB", "calls.db")


def add_dbs(parser: argparse.ArgumentParser) -> None:
    """`--db`, repeatable, each a file or a glob (`log_paths` reads them)."""
    parser.add_argument(
        "--db",
        action="append",
        metavar="PATH",
        help=f"event log file or glob, repeatable (default: {DEFAULT_DB})",
    )
    parser.set_defaults(default_db=DEFAULT_DB)


def log_paths(args: argparse.Namespace) -> list[str]:
    """The logs `add_dbs`' `--db` names (the default one when none is given)."""
    given: list[str] | None = args.db
    return given or [args.default_db]


def add_formats(parser: argparse.ArgumentParser) -> None:
    """`--json` or `--nl` (see `fsm_voice.commands.output`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="a JSON array")
    group.add_argument("--nl", action="store_true", help="JSON lines, one object per line")
