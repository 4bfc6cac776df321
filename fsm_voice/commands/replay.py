"""`fsm-voice replay`: replay recorded calls and report the first differing decision.

Sources: fixture directories (PATH...), and/or calls in an event log (`--db FILE`,
with `--call ID` repeatable; without `--call`, every call in it). `--mode offline`
re-transcribes the caller audio with pocketsphinx instead of replaying transcripts.
Exit 0 when every call replays as recorded, 1 when any diverges (or cannot be replayed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from fsm_voice.errors import FsmVoiceError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.query import open_log
from fsm_voice.replay.recording import Recording, load_fixture, load_from_log
from fsm_voice.replay.replayer import MODES, Mode, ReplayResult, replay_call

__all__ = ["add_replay_command", "run_replay"]

EPILOG = """Example:
  fsm-voice replay replays/*/
  fsm-voice replay --db calls.db --call FV0123... --machine machines/appointment.yaml
  fsm-voice replay replays/appointment-happy --json
  fsm-voice replay --mode offline replays/*/"""


def add_replay_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="replay recorded calls and compare what the machines decide",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="fixture directory")
    parser.add_argument("--db", help="an event log to replay calls from")
    parser.add_argument("--call", action="append", help="call id in --db (repeatable)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="recorded",
        help="recorded: providers answer from the log (default); "
        "offline: pocketsphinx re-transcribes the caller audio",
    )
    parser.add_argument("--machine", help="replay against this machine file instead")
    parser.add_argument("--json", action="store_true", help="one JSON object per call")


def _recordings(args: argparse.Namespace) -> list[Recording]:
    found = [load_fixture(Path(p)) for p in args.paths]
    if args.db:
        log: EventLog = open_log(args.db)
        ids = args.call or [c.call_id for c in log.calls()]
        found += [load_from_log(log, call_id) for call_id in ids]
    if not found:
        raise FsmVoiceError("nothing to replay: give fixture directories or --db")
    return found


def _as_json(result: ReplayResult) -> dict[str, Any]:
    divergence = result.divergence
    return {
        "call_id": result.call_id,
        "origin": result.origin,
        "machine": result.machine,
        "mode": result.mode,
        "ok": result.ok,
        "compared": result.compared,
        "divergence": divergence.to_dict() if divergence is not None else None,
    }


def run_replay(args: argparse.Namespace) -> int:
    recordings = _recordings(args)
    ok = True
    for recording in recordings:
        result = anyio.run(_replay, recording, args.machine, args.mode)
        ok = ok and result.ok
        if args.json:
            print(json.dumps(_as_json(result), sort_keys=True, ensure_ascii=False))
        elif result.divergence is None:
            print(f"ok        {result.origin}: {result.compared} decisions as recorded")
        else:
            print(f"DIVERGED  {result.origin}\n{result.divergence.describe()}")
    sys.stdout.flush()
    return 0 if ok else 1


async def _replay(recording: Recording, machine: str | None, mode: Mode) -> ReplayResult:
    return await replay_call(recording, machine=machine, mode=mode)
