"""The query commands' arguments: calls, events, audio, stats, export, import.

Kept apart from `fsm_voice.cli` so the read side of the log is one concept. Every
read command takes `--db` several times or a glob (one file per server process)
and reads them as one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_RAW = argparse.RawDescriptionHelpFormatter
COMMANDS = ("calls", "events", "audio", "stats", "export", "import")


def _add_dbs(parser: argparse.ArgumentParser, default_db: str) -> None:
    parser.add_argument(
        "--db",
        action="append",
        metavar="PATH",
        help=f"event log file or glob, repeatable (default: {default_db})",
    )
    parser.set_defaults(default_db=default_db)


def _add_formats(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="a JSON array")
    group.add_argument("--nl", action="store_true", help="JSON lines, one object per line")


def add_query_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], db: str) -> None:
    calls = sub.add_parser(
        "calls",
        help="one row per call: machine, final state, outcome, turns, failures",
        epilog="Example:\n  fsm-voice calls --db calls.db\n  fsm-voice calls --db 'logs/*.db' --nl",
        formatter_class=_RAW,
    )
    _add_dbs(calls, db)
    _add_formats(calls)

    events = sub.add_parser(
        "events",
        help="a call's timeline (CALL_ID may be a unique prefix)",
        epilog="Example:\n  fsm-voice events FV6753 --db calls.db --source conversation",
        formatter_class=_RAW,
    )
    events.add_argument("call_id", metavar="CALL_ID")
    _add_dbs(events, db)
    events.add_argument("--kind", help="only this kind, e.g. transcript_committed")
    events.add_argument("--source", help="only this source, e.g. stt")
    _add_formats(events)

    audio = sub.add_parser(
        "audio",
        help="a call's audio as heard on the line (caller, agent or both) as a WAV",
        epilog="Example:\n  fsm-voice audio FV6753 --db calls.db --track mixed --stereo "
        "--out call.wav",
        formatter_class=_RAW,
    )
    audio.add_argument("call_id", metavar="CALL_ID")
    _add_dbs(audio, db)
    audio.add_argument("--track", choices=("caller", "agent", "mixed"), default="mixed")
    audio.add_argument("--stereo", action="store_true", help="mixed: caller left, agent right")
    audio.add_argument("--out", type=Path, required=True, help="the WAV file to write")

    stats = sub.add_parser(
        "stats",
        help="across calls: turn latency, noinput/nomatch by state, barge-ins, reconnects",
        epilog="Example:\n  fsm-voice stats --db 'logs/*.db'\n"
        "  fsm-voice stats --db calls.db --json",
        formatter_class=_RAW,
    )
    _add_dbs(stats, db)
    stats.add_argument("--json", action="store_true", help="one JSON object")

    export = sub.add_parser(
        "export",
        help="write a call as a replay fixture directory (events.jsonl, WAVs, meta.json)",
        epilog="Example:\n  fsm-voice export FV6753 --db calls.db --out replays/appointment-happy/",
        formatter_class=_RAW,
    )
    export.add_argument("call_id", metavar="CALL_ID")
    _add_dbs(export, db)
    export.add_argument("--out", type=Path, required=True, help="the fixture directory")

    load = sub.add_parser(
        "import",
        help="load a fixture directory written by export into an event log",
        epilog="Example:\n  fsm-voice import replays/appointment-happy/ --db fixtures.db",
        formatter_class=_RAW,
    )
    load.add_argument("fixture", type=Path, metavar="DIR")
    load.add_argument(
        "--db", default=db, help="event log to add the call to (default: %(default)s)"
    )


def run_query_command(args: argparse.Namespace) -> int:
    from fsm_voice.commands.output import output_format

    command = args.command
    if command == "import":
        from fsm_voice.commands.export import import_command

        return import_command(args.fixture, Path(args.db))
    dbs: list[str] = args.db or [args.default_db]
    if command == "calls":
        from fsm_voice.commands.calls import calls

        return calls(dbs, output_format(args.json, args.nl))
    if command == "events":
        from fsm_voice.commands.events import events

        fmt = output_format(args.json, args.nl)
        return events(dbs, args.call_id, args.kind, args.source, fmt)
    if command == "stats":
        from fsm_voice.commands.stats import stats

        return stats(dbs, args.json)
    if command == "audio":
        from fsm_voice.commands.audio import audio

        return audio(dbs, args.call_id, args.track, args.stereo, args.out)
    if command == "export":
        from fsm_voice.commands.export import export_command

        return export_command(dbs, args.call_id, args.out)
    raise AssertionError(command)
