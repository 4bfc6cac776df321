"""Regenerate the replay corpus in replays/ (run: `make corpus`).

Every caller script in callers/ (except the example) is run against its machine the
way `fsm-voice demo` runs one: a real server on 127.0.0.1, the phone simulator, the
offline providers, real time. Each call is exported as a fixture directory
replays/<script>/. Run it again when a machine, a caller script or the logged kinds
change on purpose; then review the diff and commit it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import anyio

from fsm_voice.commands.demo import run_demo_call
from fsm_voice.commands.machines import build_providers
from fsm_voice.conversation.loader import load_machine
from fsm_voice.eventlog.fixture import export_fixture
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.simulator.caller_script import load_caller_script

ROOT = Path(__file__).resolve().parent.parent


async def main() -> int:
    scripts = sorted(p for p in (ROOT / "callers").glob("*.yaml") if p.stem != "example")
    kit = await build_providers("offline")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(Path(tmp) / "corpus.db")
        limiter = anyio.CapacityLimiter(4)  # real-time calls: don't starve two cores

        async def one(path: Path) -> None:
            script = load_caller_script(path)
            spec = load_machine(ROOT / "machines" / f"{script.machine}.yaml")
            async with limiter:
                result, end_state, call_id = await run_demo_call(spec, script, kit, log)
            if result.failure or end_state != script.expect.end_state:
                failures.append(f"{script.name}: {result.failure or end_state}")
                return
            out = ROOT / "replays" / script.name
            shutil.rmtree(out, ignore_errors=True)
            export_fixture(log, call_id, out)
            print(f"{script.name}: {end_state} -> {out.relative_to(ROOT)}", flush=True)

        try:
            async with anyio.create_task_group() as tg:
                for path in scripts:
                    tg.start_soon(one, path)
        finally:
            await kit.stop()
            log.close()
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
