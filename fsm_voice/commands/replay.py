"""`fsm-voice replay`: replay recorded calls and report the first differing decision.

Sources: fixture directories (PATH...), and/or calls in event logs (`--db FILE` or a
glob, repeatable, as the query commands take them; `--call ID` repeatable; without
`--call`, every call in them). `--mode offline` re-transcribes the caller audio with
pocketsphinx instead of replaying transcripts. Exit 0 when every call replays as
recorded, 1 when any diverges (or cannot be replayed).

A refused stream is no call to replay: an upgrade refused before accept (older logs
hold a `calls` row with an `upgrade_rejected` event for each) or a `start` closed with
1008 (a `stream_rejected` event: no token, a bad, expired or used one, a second stream
for the CallSid). Each is reported as `refused`, with its reason, and fails nothing.

`--inject KIND@MS` (repeatable) injects faults (see `fsm_voice.replay.faults`): the
faulted run differs from the recording by design, so it is reported, not failed;
`--save-as DIR` exports it as a new fixture, which replays like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fsm_voice.commands.registry import Command
from fsm_voice.errors import FsmVoiceError

if TYPE_CHECKING:  # the replayer (machines, providers, the call runtime) loads to run
    from fsm_voice.replay.faults import Fault
    from fsm_voice.replay.recording import Recording
    from fsm_voice.replay.replayer import Mode, ReplayResult

__all__ = ["COMMAND", "REFUSED_KINDS", "refusal", "run_replay"]

# A recording holding one of these never was a call: nothing in it to replay.
REFUSED_KINDS = frozenset({"upgrade_rejected", "stream_rejected"})
# fsm_voice.replay.replayer.MODES, spelled here so that building the parser does not
# load the replayer (tests/test_cli_registry.py checks the two agree).
MODES: Final = ("recorded", "offline")

EPILOG = """Example:
  fsm-voice replay replays/*/
  fsm-voice replay --db calls.db --call FV0123... --machine machines/appointment.yaml
  fsm-voice replay --db 'logs/*.db' --json
  fsm-voice replay replays/appointment-happy --json
  fsm-voice replay replays/appointment-happy --inject stt_drop@9500 --save-as /tmp/stt-drop
  fsm-voice replay --mode offline replays/*/"""


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="fixture directory")
    parser.add_argument(
        "--db",
        action="append",
        metavar="PATH",
        help="an event log file or glob to replay calls from (repeatable)",
    )
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
    parser.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="KIND@MS",
        help="inject a fault at MS into the call (repeatable): stt_drop, twilio_drop,"
        " mark_lost, duplicate_stream, hangup_in_prompt",
    )
    parser.add_argument("--save-as", metavar="DIR", help="export the replayed call as a fixture")


def _recordings(args: argparse.Namespace) -> list[Recording]:
    from fsm_voice.replay.recording import load_fixture

    found = [load_fixture(Path(p)) for p in args.paths]
    if args.db:
        found += _from_logs(args.db, args.call)
    if not found:
        raise FsmVoiceError("nothing to replay: give fixture directories or --db")
    return found


def _from_logs(patterns: list[str], wanted: list[str] | None) -> list[Recording]:
    """Every call of every log (or the `wanted` ones, wherever each is), in order."""
    from fsm_voice.eventlog.multi import expand_paths
    from fsm_voice.eventlog.query import open_log
    from fsm_voice.replay.recording import load_from_log

    found: list[Recording] = []
    missing = list(wanted or [])
    for path in expand_paths(patterns):
        log = open_log(path)
        try:
            ids = [c.call_id for c in log.calls()]
            if wanted is not None:
                ids = [call_id for call_id in wanted if log.call(call_id) is not None]
                missing = [call_id for call_id in missing if call_id not in ids]
            found += [load_from_log(log, call_id) for call_id in ids]
        finally:
            log.close()
    if missing:
        raise FsmVoiceError(f"no call {', '.join(missing)} in {', '.join(patterns)}")
    return found


def refusal(recording: Recording) -> str | None:
    """Why this recording's stream was refused (it never was a call), or None."""
    for event in recording.events:
        if event.kind in REFUSED_KINDS:
            return str(event.data.get("reason") or event.kind)
    return None


def _as_json(result: ReplayResult) -> dict[str, Any]:
    divergence = result.divergence
    return {
        "call_id": result.call_id,
        "origin": result.origin,
        "machine": result.machine,
        "mode": result.mode,
        "ok": result.ok,
        "status": result.status,
        "compared": result.compared,
        "divergence": divergence.to_dict() if divergence is not None else None,
        "notes": list(result.notes),
    }


def run_replay(args: argparse.Namespace) -> int:
    import anyio

    from fsm_voice.eventlog.fixture import export_fixture
    from fsm_voice.replay.faults import parse_fault

    faults = [parse_fault(text) for text in args.inject]
    recordings = _recordings(args)
    if args.save_as and len(recordings) != 1:
        raise FsmVoiceError(f"--save-as takes one call, not {len(recordings)}")
    ok = True
    for recording in recordings:
        reason = refusal(recording)
        if reason is not None:
            _report_refused(recording, reason, args.json)
            continue
        result = anyio.run(_replay, recording, args.machine, args.mode, faults)
        if args.save_as:
            assert result.log is not None
            export_fixture(result.log, result.call_id, Path(args.save_as))
        if faults:  # differing from the recording is the point; the run itself is the result
            _report_faulted(result, faults, args)
            continue
        ok = ok and result.ok
        if args.json:
            print(json.dumps(_as_json(result), sort_keys=True, ensure_ascii=False))
        elif result.divergence is not None:
            print(f"DIVERGED  {result.origin}\n{result.divergence.describe()}")
        elif result.cut_off:  # the log stops early (a crash): as far as it goes, as recorded
            print(f"cut_off   {result.origin}: {result.compared} decisions as recorded")
        else:
            print(f"ok        {result.origin}: {result.compared} decisions as recorded")
        if not args.json:
            for note in result.notes:
                print(f"  note: {note}")
    sys.stdout.flush()
    return 0 if ok else 1


def _report_refused(recording: Recording, reason: str, as_json: bool) -> None:
    if as_json:
        summary = {
            "call_id": recording.call_id,
            "origin": recording.origin,
            "status": "refused",
            "reason": reason,
            "ok": True,  # nothing ran, so nothing diverged
        }
        print(json.dumps(summary, sort_keys=True, ensure_ascii=False))
    else:
        print(f"refused   {recording.origin}: {reason} (never a call: nothing to replay)")


def _report_faulted(result: ReplayResult, faults: list[Fault], args: argparse.Namespace) -> None:
    injected = [e.data for e in result.events if e.kind == "fault_injected"]
    ended = next((e.data for e in result.events if e.kind == "conversation_ended"), {})
    call = result.log.call(result.call_id) if result.log is not None else None
    summary = {
        "call_id": result.call_id,
        "origin": result.origin,
        "faults": [str(f) for f in faults],
        "injected": injected,
        "end_reason": call.end_reason if call is not None else None,
        "end_state": ended.get("state"),
        "as_recorded_until": result.divergence.seq if result.divergence is not None else None,
        "saved_as": args.save_as,
    }
    if args.json:
        print(json.dumps(summary, sort_keys=True, ensure_ascii=False))
        return
    print(f"faulted   {result.origin}: {', '.join(summary['faults'])}")
    for data in injected:
        print(f"  injected {json.dumps(data, sort_keys=True, ensure_ascii=False)}")
    print(f"  call ended: {summary['end_reason']}, conversation in {summary['end_state']}")
    if args.save_as:
        print(f"  saved as {args.save_as} (replay it: fsm-voice replay {args.save_as})")


async def _replay(
    recording: Recording, machine: str | None, mode: Mode, faults: list[Fault]
) -> ReplayResult:
    from fsm_voice.replay.replayer import replay_call

    return await replay_call(recording, machine=machine, mode=mode, faults=faults)


COMMAND = Command(
    "replay",
    help="replay recorded calls and compare what the machines decide",
    epilog=EPILOG,
    arguments=_arguments,
    run=run_replay,
)
