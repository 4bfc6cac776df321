"""Real calls through `fsm-voice serve`, made on a busy machine, replay as recorded.

Starts `fsm-voice serve` (offline providers, the appointment machine) on 127.0.0.1
beside a CPU hog (one busy process per core), and dials it with the phone simulator:
callers who barge in or hang up early in the first sentence (the cases that once did
not replay), and callers who go through the whole conversation. Then every call in the
server's log is replayed in recorded mode and in offline mode (pocketsphinx
re-transcribing the recorded caller audio). Prints one line per mode and a JSON
summary; exits 1 if any call diverged.

    .venv/bin/python benchmarks/replay_under_load.py [--calls 30] [--parallel 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio

from fsm_voice.agents.machines import Providers, build_providers
from fsm_voice.clock import RandomIds, SystemClock, perf_ms
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.replay import load_from_log, replay_call
from fsm_voice.replay.offline import inline_decoder, prepare
from fsm_voice.simulator.caller import ScriptedCaller
from fsm_voice.simulator.caller_script import CallerScript, parse_caller_script
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator

ROOT = Path(__file__).resolve().parent.parent


def caller_scripts(calls: int) -> list[tuple[str, CallerScript]]:
    """Early barge-ins and hang-ups across the first sentence, and whole conversations."""
    scripts: list[tuple[str, CallerScript]] = []
    for n in range(calls):
        kind = n % 3
        at_ms = 250 + (n * 137) % 1500  # spread over the greeting's first sentence
        if kind == 0:
            name = f"bargein@{at_ms}"
            text = f"""
name: {name}
machine: appointment
steps:
  - say: {{text: "cancel", barge_in_after_ms: {at_ms}, timeout_ms: 30000}}
  - wait_prompt: {{timeout_ms: 20000}}
  - say: "yes"
  - wait_prompt: {{timeout_ms: 20000}}
"""
        elif kind == 1:
            name = f"hangup@{at_ms}"
            text = f"""
name: {name}
machine: appointment
steps:
  - hangup: {{after_ms: {at_ms}, timeout_ms: 30000}}
"""
        else:
            name = "happy"
            text = (ROOT / "callers" / "appointment-happy.yaml").read_text()
        scripts.append((name, parse_caller_script(text, f"<{name}>")))
    return scripts


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """One busy process per core for as long as the block runs."""
    spin = "import signal; signal.alarm(900)\nwhile True: pass"
    hogs = [
        subprocess.Popen([sys.executable, "-c", spin]) for _ in range(len(os.sched_getaffinity(0)))
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@contextlib.contextmanager
def server(db: Path) -> Iterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    command = [sys.executable, "-m", "fsm_voice.cli", "serve", "--fd", str(listener.fileno())]
    command += ["--db", str(db), "--machine", str(ROOT / "machines" / "appointment.yaml")]
    command += ["--providers", "offline"]
    process = subprocess.Popen(command, pass_fds=[listener.fileno()], stdout=subprocess.DEVNULL)
    listener.close()
    try:
        yield f"ws://127.0.0.1:{port}/voice"
    finally:
        process.terminate()
        process.wait(timeout=60)


async def one_call(url: str, script: CallerScript, kit: Providers) -> str | None:
    clock = SystemClock()
    params = {"caller": "+15550100", "called": "+15550199", "machine": "appointment"}
    async with dial(url) as ws:
        sim = PhoneSimulator(ws, clock, RandomIds(), custom_parameters=params)
        async with sim:
            caller = ScriptedCaller(sim, script, kit.caller_voice, clock, agent_marks=True)
            result = await caller.run()
            if not result.hung_up_ms and result.close_code is None:
                await sim.hangup()
    return result.failure


async def make_calls(url: str, calls: int, parallel: int) -> list[str | None]:
    scripts = caller_scripts(calls)
    kit = await build_providers("offline", [line for _, s in scripts for line in s.lines()])
    limiter = anyio.CapacityLimiter(parallel)
    failures: list[str | None] = []

    async def call(script: CallerScript) -> None:
        async with limiter:
            failures.append(await one_call(url, script, kit))

    try:
        async with anyio.create_task_group() as tg:
            for _, script in scripts:
                tg.start_soon(call, script)
    finally:
        await kit.stop()
    return failures


async def replay_all(db: Path) -> dict[str, Counter[str]]:
    decoder = inline_decoder()
    await prepare(decoder)
    statuses: dict[str, Counter[str]] = {"recorded": Counter(), "offline": Counter()}
    with SqliteEventLog(db) as log:
        for call in log.calls():
            recording = load_from_log(log, call.call_id)
            for mode in ("recorded", "offline"):
                result = await replay_call(
                    recording,
                    mode=mode,
                    decoder=decoder,  # type: ignore[arg-type]
                )
                statuses[mode][result.status] += 1
                if result.divergence is not None:
                    print(f"{mode:9} {result.divergence.describe()}", file=sys.stderr)
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--no-load", action="store_true", help="no CPU hog")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "calls.db"
        started = perf_ms()
        with contextlib.ExitStack() as stack:
            if not args.no_load:
                stack.enter_context(cpu_hog())
            url = stack.enter_context(server(db))
            failures = anyio.run(make_calls, url, args.calls, args.parallel)
        calls_s = (perf_ms() - started) / 1000
        started = perf_ms()
        statuses = anyio.run(replay_all, db)
        replay_s = (perf_ms() - started) / 1000
    for mode, counts in statuses.items():
        print(f"{mode:9} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    summary = {
        "calls": args.calls,
        "loaded": not args.no_load,
        "caller_script_failures": sum(f is not None for f in failures),
        "recorded": dict(statuses["recorded"]),
        "offline": dict(statuses["offline"]),
        "calls_s": round(calls_s, 1),
        "replay_s": round(replay_s, 1),
    }
    print(json.dumps(summary, sort_keys=True))
    diverged = statuses["recorded"]["diverged"] + statuses["offline"]["diverged"]
    return 1 if diverged else 0


if __name__ == "__main__":
    sys.exit(main())
