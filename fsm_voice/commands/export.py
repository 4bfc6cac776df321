"""`fsm-voice export CALL_ID --out DIR` and `fsm-voice import DIR`: replay fixtures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fsm_voice.eventlog.fixture import add_fixture_call, export_fixture, read_fixture
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.query import open_log


def export_command(dbs: Sequence[str], call_id: str, out: Path) -> int:
    with LogSet(dbs) as logs:
        call_id = logs.resolve(call_id)
        files = export_fixture(logs, call_id, out)
    print(f"{call_id} → {out}/")
    for path in files:
        print(f"  {path.name:<13} {path.stat().st_size:>9,} bytes")
    return 0


def import_command(fixture: Path, db: Path) -> int:
    # Read and check everything before the log is opened: a bad fixture leaves no
    # trace, not even a new empty log file.
    found = read_fixture(fixture)
    with open_log(db, create=True) as log:
        call_id = add_fixture_call(log, found)
    print(f"{fixture} → {db}: call {call_id}")
    return 0
