"""`fsm-voice`: serve calls, dial them with the phone simulator, run the demo, benchmark.

Each command is one module of `fsm_voice.commands` (its parser and its run function);
`fsm_voice.commands.registry` lists them. This module only builds the top parser,
runs the chosen command, and turns an `FsmVoiceError` into a message and exit 1.
Every command documents an example in its help; the database path defaults to
$FSM_VOICE_DB or ./calls.db.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fsm_voice.commands.options import DEFAULT_DB
from fsm_voice.commands.registry import add_commands
from fsm_voice.errors import FsmVoiceError

__all__ = ["DEFAULT_DB", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsm-voice",
        description="A runtime for phone-call voice agents (Twilio Media Streams).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except FsmVoiceError as e:
        print(f"fsm-voice {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
