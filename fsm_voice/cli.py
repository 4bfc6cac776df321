"""`fsm-voice`: serve calls, dial them with the phone simulator, run the demo, benchmark.

Every command documents an example in its help; the database path defaults to
$FSM_VOICE_DB or ./calls.db.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fsm_voice.errors import FsmVoiceError

DEFAULT_DB = os.environ.get("FSM_VOICE_DB", "calls.db")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsm-voice",
        description="A runtime for phone-call voice agents (Twilio Media Streams).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="serve the /voice Media Streams WebSocket",
        epilog="Example:\n  fsm-voice serve --port 8080 --db calls.db --machine echo\n"
        "  TWILIO_AUTH_TOKEN=… fsm-voice serve --public-url wss://voice.example.com/voice "
        "--mask-phone-numbers --max-calls 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("VOICE_SERVER_PORT", 8080)))
    serve.add_argument("--db", default=DEFAULT_DB, help="event log (default: %(default)s)")
    serve.add_argument(
        "--machine", default="echo", help="a machines/*.yaml file, or echo (default: echo)"
    )
    serve.add_argument(
        "--providers",
        default="offline",
        choices=("offline", "scripted", "elevenlabs", "azure"),
        help="speech providers for a machine file (cloud ones read their keys from the env)",
    )
    serve.add_argument(
        "--stt-secondary",
        choices=("offline", "scripted", "elevenlabs", "azure"),
        help="a second recogniser on the same audio, logged for comparison (secondary_*"
        " events), never driving the call",
    )
    serve.add_argument("--fd", type=int, help="serve on an inherited listening socket (systemd)")
    from fsm_voice.commands.serve import add_security_arguments

    add_security_arguments(serve, os.environ)
    serve.add_argument(
        "--twilio",
        action="store_true",
        help="also answer Twilio's webhooks: /twiml (inbound calls), /status, /amd "
        "(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER; webhooks live at "
        "the https twin of --public-url)",
    )
    from fsm_voice.commands.simulate import add_simulate_command

    add_simulate_command(sub)
    from fsm_voice.commands.call import add_call_command

    demo = sub.add_parser(
        "demo",
        help="a whole call, offline, end to end",
        epilog="Example:\n  fsm-voice demo --db demo.db\n"
        "  fsm-voice demo --machine machines/ivr.yaml --caller callers/ivr-menu.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--db", default=DEFAULT_DB)
    demo.add_argument("--machine", type=Path, default=Path("machines/appointment.yaml"))
    demo.add_argument("--caller", type=Path, help="caller script (default: callers/ for it)")
    demo.add_argument("--providers", default="offline", choices=("offline", "scripted"))

    check = sub.add_parser(
        "check",
        help="validate conversation machine files (exit 1 on errors)",
        epilog="Example:\n  fsm-voice check machines/appointment.yaml machines/ivr.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("machines", nargs="+", type=Path, metavar="MACHINE")

    diagram = sub.add_parser(
        "diagram",
        help="draw a conversation machine as a Mermaid state diagram",
        epilog="Example:\n  fsm-voice diagram machines/appointment.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diagram.add_argument("machine", type=Path, metavar="MACHINE")
    diagram.add_argument("--out", type=Path, help="write to this file instead of stdout")

    bench = sub.add_parser(
        "bench",
        help="benchmarks (print their figures)",
        epilog="Example:\n  fsm-voice bench calls --calls 300 --seconds 20\n"
        "  fsm-voice bench calls --ramp 100,200,300,400 --seconds 10\n"
        "  fsm-voice bench turns --rounds 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    calls = bench_sub.add_parser("calls", help="concurrent echo calls over 127.0.0.1")
    calls.add_argument("--calls", type=int, default=300)
    calls.add_argument("--seconds", type=float, default=20.0)
    calls.add_argument("--ramp", help="comma-separated call counts to try in turn")
    calls.add_argument("--db", help="event log (default: a temporary file)")
    calls.add_argument("--mark-every", type=int, default=10, help="echo: frames per mark")
    turns = bench_sub.add_parser(
        "turns", help="turn latency and STT accuracy of the demo's calls (offline providers)"
    )
    turns.add_argument("--rounds", type=int, default=1, help="times to run each caller script")
    turns.add_argument("--script", action="append", help="caller script name (repeatable)")

    add_call_command(sub, DEFAULT_DB)

    from fsm_voice.commands.query_cli import add_query_commands

    add_query_commands(sub, DEFAULT_DB)

    from fsm_voice.commands.replay import add_replay_command

    add_replay_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except FsmVoiceError as e:
        print(f"fsm-voice {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from fsm_voice.commands.call import twilio_service_from_args
        from fsm_voice.commands.serve import serve, server_settings

        security, limits = server_settings(args)
        twilio = twilio_service_from_args(args, security) if args.twilio else None
        return serve(
            args.host,
            args.port,
            Path(args.db),
            args.machine,
            args.fd,
            args.providers,
            security=security,
            limits=limits,
            twilio=twilio,
            stt_secondary=args.stt_secondary,
        )
    if args.command == "call":
        from fsm_voice.commands.call import run_call_command

        return run_call_command(args)
    if args.command == "simulate":
        from fsm_voice.commands.simulate import simulate

        return simulate(args)
    if args.command == "demo":
        from fsm_voice.commands.demo import demo

        return demo(Path(args.db), args.machine, args.caller, args.providers)
    if args.command == "check":
        from fsm_voice.commands.check import check

        return check(args.machines)
    if args.command == "diagram":
        from fsm_voice.commands.diagram import diagram

        return diagram(args.machine, args.out)
    if args.command == "bench" and args.bench == "turns":
        from fsm_voice.bench.turns import DEFAULT_SCRIPTS, bench_turns

        scripts = tuple(args.script) if args.script else DEFAULT_SCRIPTS
        return bench_turns(Path.cwd(), scripts, args.rounds)
    if args.command == "bench" and args.bench == "calls":
        from fsm_voice.bench.calls import bench_calls

        ramp = [int(n) for n in args.ramp.split(",")] if args.ramp else [args.calls]
        return bench_calls(ramp, args.seconds, args.db, args.mark_every)
    from fsm_voice.commands.query_cli import COMMANDS, run_query_command

    if args.command in COMMANDS:
        return run_query_command(args)
    if args.command == "replay":
        from fsm_voice.commands.replay import run_replay

        return run_replay(args)
    raise AssertionError(args)


if __name__ == "__main__":
    sys.exit(main())
