"""`fsm-voice import DIR`: load a fixture directory written by `fsm-voice export` into
an event log (the module is not `import.py`: that is a keyword)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fsm_voice.commands.options import DEFAULT_DB
from fsm_voice.commands.registry import Command


def import_command(fixture: Path, db: Path) -> int:
    from fsm_voice.eventlog.fixture import add_fixture_call, read_fixture
    from fsm_voice.eventlog.query import open_log

    # Read and check everything before the log is opened: a bad fixture leaves no
    # trace, not even a new empty log file.
    found = read_fixture(fixture)
    with open_log(db, create=True) as log:
        call_id = add_fixture_call(log, found)
    print(f"{fixture} → {db}: call {call_id}")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fixture", type=Path, metavar="DIR")
    parser.add_argument(
        "--db", default=DEFAULT_DB, help="event log to add the call to (default: %(default)s)"
    )


def _run(args: argparse.Namespace) -> int:
    return import_command(args.fixture, Path(args.db))


COMMAND = Command(
    "import",
    help="load a fixture directory written by export into an event log",
    epilog="Example:\n  fsm-voice import replays/appointment-happy/ --db fixtures.db",
    arguments=_arguments,
    run=_run,
)
