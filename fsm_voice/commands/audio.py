"""`fsm-voice audio CALL_ID`: a call's audio as it was heard on the line, as a WAV."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fsm_voice.commands.options import add_dbs, log_paths
from fsm_voice.commands.registry import Command


def audio(dbs: Sequence[str], call_id: str, track: str, stereo: bool, out: Path) -> int:
    from fsm_voice.eventlog.multi import LogSet
    from fsm_voice.eventlog.playback import call_wav

    with LogSet(dbs) as logs:
        call_id = logs.resolve(call_id)
        data = call_wav(logs, call_id, track, stereo)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    layout = "stereo (caller left, agent right)" if stereo and track == "mixed" else track
    print(f"{out}: {call_id} {layout}, {len(data):,} bytes")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call_id", metavar="CALL_ID")
    add_dbs(parser)
    parser.add_argument("--track", choices=("caller", "agent", "mixed"), default="mixed")
    parser.add_argument("--stereo", action="store_true", help="mixed: caller left, agent right")
    parser.add_argument("--out", type=Path, required=True, help="the WAV file to write")


def _run(args: argparse.Namespace) -> int:
    return audio(log_paths(args), args.call_id, args.track, args.stereo, args.out)


COMMAND = Command(
    "audio",
    help="a call's audio as heard on the line (caller, agent or both) as a WAV",
    epilog="Example:\n  fsm-voice audio FV6753 --db calls.db --track mixed --stereo --out call.wav",
    arguments=_arguments,
    run=_run,
)
