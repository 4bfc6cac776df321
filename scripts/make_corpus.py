"""Regenerate the replay corpus in replays/ (run: `make corpus`).

Every caller script in callers/ (except the example) is run against its machine the
way `fsm-voice demo` runs one: a real server on 127.0.0.1, the phone simulator, the
offline providers, real time. Each call is exported as a fixture directory
replays/<script>/. Run it again when a machine, a caller script or the logged kinds
change on purpose; then review the diff and commit it.

Faulted calls (`FAULTED`) run a script the same way with faults injected into the
runtime (fsm_voice.replay.faults): e.g. the recogniser's connection drops while the
caller speaks, reconnects, and the call still completes. Each is exported as
replays/<name>/ and replays like the others.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import anyio

from fsm_voice.agents.machines import Providers, build_providers
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.fixture import export_fixture
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.replay.faults import Fault, FaultInjector
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.simulator.caller import CallerResult, ScriptedCaller
from fsm_voice.simulator.caller_script import CallerScript, load_caller_script
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.demo_call import run_demo_call
from fsm_voice.simulator.phone import PhoneSimulator

ROOT = Path(__file__).resolve().parent.parent

# name -> (caller script, faults). The drop lands while the caller says "reschedule"
# (about 9.1-10.0 s into appointment-happy): that speech waits in the buffer.
FAULTED: dict[str, tuple[str, tuple[Fault, ...]]] = {
    "appointment-stt-reconnect": ("appointment-happy", (Fault("stt_drop", 9_400),)),
}


async def main(only: list[str]) -> int:
    """Record every fixture, or only those named (`make_corpus.py NAME...`)."""
    scripts = sorted(p for p in (ROOT / "callers").glob("*.yaml") if p.stem != "example")
    runs: list[tuple[str, Path, tuple[Fault, ...]]] = [(p.stem, p, ()) for p in scripts]
    runs += [(name, ROOT / "callers" / f"{s}.yaml", f) for name, (s, f) in FAULTED.items()]
    runs = [run for run in runs if not only or run[0] in only]
    kit = await build_providers("offline")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(Path(tmp) / "corpus.db")
        limiter = anyio.CapacityLimiter(4)  # real-time calls: don't starve two cores

        async def one(name: str, path: Path, faults: tuple[Fault, ...]) -> None:
            script = load_caller_script(path)
            spec = load_machine(ROOT / "machines" / f"{script.machine}.yaml")
            async with limiter:
                if faults:
                    result, end_state, call_id = await faulted_call(spec, script, kit, log, faults)
                else:
                    result, end_state, call_id = await run_demo_call(spec, script, kit, log)
            if result.failure or end_state != script.expect.end_state:
                failures.append(f"{name}: {result.failure or end_state}")
                return
            out = ROOT / "replays" / name
            shutil.rmtree(out, ignore_errors=True)
            export_fixture(log, call_id, out)
            print(f"{name}: {end_state} -> {out.relative_to(ROOT)}", flush=True)

        try:
            async with anyio.create_task_group() as tg:
                for name, path, faults in runs:
                    tg.start_soon(one, name, path, faults)
        finally:
            await kit.stop()
            log.close()
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


async def faulted_call(
    spec: MachineSpec,
    script: CallerScript,
    kit: Providers,
    log: EventLog,
    faults: tuple[Fault, ...],
) -> tuple[CallerResult, str | None, str]:
    """`run_demo_call` with the runtime's faults injected at their call times."""
    clock = SystemClock()
    injector = FaultInjector.live(faults)
    agent = injector.agent(
        conversation_agent(
            spec,
            recognizer=injector.recognizer(kit.recognizer),
            synthesizer=kit.synthesizer,
            telephony=kit.telephony,
        )
    )
    app = create_app(
        log, agent=agent, machine_name=spec.name, machine_version=spec.version, clock=clock
    )
    params = {"caller": "+15550100", "called": "+15550199", "machine": spec.name}
    async with serve_in_background(app) as server, dial(server.url) as socket:
        async with PhoneSimulator(socket, clock, RandomIds(), custom_parameters=params) as sim:
            result = await ScriptedCaller(sim, script, kit.caller_voice, clock).run()
            if not result.hung_up_ms and result.close_code is None:
                await sim.hangup()
        await app.state.voice.wait_finished(1)
    await log.flush()
    call_id = app.state.voice.finished[0]
    ended = log.events(call_id, kind="conversation_ended")
    return result, str(ended[-1].data["state"]) if ended else None, call_id


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1:]))
