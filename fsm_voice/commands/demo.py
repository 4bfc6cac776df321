"""`fsm-voice demo`: a whole phone conversation, offline, end to end.

A real uvicorn server on 127.0.0.1 (a free port) runs a conversation machine
(machines/appointment.yaml by default); the phone simulator dials it over a real
WebSocket and follows a caller script (callers/*.yaml), speaking lines synthesised
by the offline TTS; the agent hears them through the offline STT. Real audio both
ways, every event in the SQLite log. Exit 0 only if the call reached the script's
expected end state.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fsm_voice.commands.options import DEFAULT_DB
from fsm_voice.commands.registry import Command
from fsm_voice.errors import ConfigError

# The server, the providers and the simulator load when the demo runs, not when
# `fsm-voice` builds its parser.
if TYPE_CHECKING:
    from fsm_voice.commands.demo_view import ConversationView
    from fsm_voice.conversation.language.spec import MachineSpec
    from fsm_voice.simulator.caller import CallerResult
    from fsm_voice.simulator.caller_script import CallerScript

__all__ = ["demo"]


def demo(db: Path, machine: Path, caller: Path | None, providers: str) -> int:
    import anyio

    from fsm_voice.conversation.language.loader import load_machine
    from fsm_voice.shipped import resolve_caller, resolve_machine
    from fsm_voice.simulator.caller_script import find_caller_script, load_caller_script

    try:
        spec = load_machine(resolve_machine(machine))
        script = load_caller_script(resolve_caller(caller) if caller else find_caller_script(spec))
    except ConfigError as error:
        print(f"fsm-voice demo: {error}")
        return 1
    return anyio.run(_demo, db, spec, script, providers)


async def _demo(db: Path, spec: MachineSpec, script: CallerScript, providers: str) -> int:
    from fsm_voice.agents.machines import build_providers
    from fsm_voice.commands.demo_view import ConversationView
    from fsm_voice.eventlog.observed import ObservedEventLog
    from fsm_voice.eventlog.sqlite import SqliteEventLog
    from fsm_voice.simulator.demo_call import run_demo_call

    view = ConversationView()
    view.console.print(
        f"[bold]fsm-voice demo[/bold]: machine [bold]{spec.name}[/bold] ({spec.path}), "
        f"caller script [bold]{script.name}[/bold], providers {providers}"
    )
    with view.console.status("loading the speech models…"):
        kit = await build_providers(providers, script.lines())
    log = SqliteEventLog(db)
    try:
        result, end_state, call_id = await run_demo_call(
            spec, script, kit, ObservedEventLog(log, view.on_event), view
        )
    finally:
        await kit.stop()
        log.close()
    return _report(view, script, result, end_state, call_id, db)


def _report(
    view: ConversationView,
    script: CallerScript,
    result: CallerResult,
    end_state: str | None,
    call_id: str,
    db: Path,
) -> int:
    import statistics

    from rich.markup import escape

    console = view.console
    latencies = result.turn_latencies_ms()
    if latencies:
        p50 = statistics.median(latencies)
        console.print(
            f"turn latency (caller's end of speech → agent audio): p50 {p50:.0f} ms, "
            f"max {max(latencies)} ms over {len(latencies)} turns"
        )
    console.print(f"\nlog: {db}   call: {call_id}   query and replay it:")
    for command in (
        f"fsm-voice events {call_id} --db {db}",
        f"fsm-voice audio {call_id} --db {db} --track mixed --stereo --out {script.name}.wav",
        f"fsm-voice replay --db {db} --call {call_id}",
        f"fsm-voice export {call_id} --db {db} --out replays/{script.name}/",
        f"sqlite3 {db} \"select t_ms, source, kind from events where call_id='{call_id}'\"",
    ):
        console.print(f"  {escape(command)}", soft_wrap=True)
    expected = script.expect.end_state
    if result.failure:
        console.print(
            f"[bold red]demo FAILED[/bold red]: the caller script stopped: {result.failure}"
        )
        return 1
    if expected is not None and end_state != expected:
        console.print(
            f"[bold red]demo FAILED[/bold red]: the call ended in state {end_state!r}, "
            f"but {script.name} expects {expected!r}"
        )
        return 1
    console.print(f"[bold green]demo ok[/bold green]: the call reached {end_state!r}")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--machine", type=Path, default=Path("machines/appointment.yaml"))
    parser.add_argument("--caller", type=Path, help="caller script (default: callers/ for it)")
    parser.add_argument("--providers", default="offline", choices=("offline", "scripted"))


def _run(args: argparse.Namespace) -> int:
    return demo(Path(args.db), args.machine, args.caller, args.providers)


COMMAND = Command(
    "demo",
    help="a whole call, offline, end to end",
    epilog="Example:\n  fsm-voice demo --db demo.db\n"
    "  fsm-voice demo --machine machines/ivr.yaml --caller callers/ivr-menu.yaml",
    arguments=_arguments,
    run=_run,
)
