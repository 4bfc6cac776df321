"""Real calls recorded into SQLite event logs, for the query and export tests.

Each call is the example machine run end to end in process on the virtual clock
(runtime, conversation machine, phone simulator, caller script; scripted speech), as
in test_conversation_scripted.py, but written to a `SqliteEventLog` the way `serve`
does. The scripts are chosen for what the queries count: a happy path, a barge-in,
a silent caller (noinput), out-of-grammar answers (nomatch), DTMF, a hang-up.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from fsm_voice.clock import CountingIds, VirtualClock
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.conversation.telephony import SimulatedTelephony
from fsm_voice.eventlog import SqliteEventLog
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.simulator.caller import ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.testing import in_process_call

ROOT = Path(__file__).resolve().parent.parent
# appointment-happy last: "the latest call" in the README's queries has a conversation.
SCRIPTS = (
    "appointment-hangup",
    "appointment-bargein",
    "appointment-silent",
    "survey-nomatch",
    "ivr-balance",
    "appointment-happy",
)
WALL_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; each call a minute later


async def _record(log: SqliteEventLog, name: str, ids: CountingIds, wall_ms: int) -> str:
    script = load_caller_script(ROOT / "callers" / f"{name}.yaml")
    spec = load_machine(ROOT / "machines" / f"{script.machine}.yaml")
    lines = script.lines()
    agent = conversation_agent(
        spec,
        recognizer=lambda: ScriptedRecognizer(lines),
        synthesizer=ScriptedSynthesizer(),
        telephony=SimulatedTelephony(),
    )
    clock = VirtualClock(wall_start_ms=wall_ms)
    params = {"caller": "+15550123"}
    async with in_process_call(
        agent, clock=clock, log=log, ids=ids, custom_parameters=params
    ) as call:
        await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
        await call.wait_ended()
    await call.runtime.finished.wait()
    log.update_call(call.runtime.call_id, machine=spec.name)  # as `serve` names it
    return call.runtime.call_id


def record_calls(path: Path, scripts: tuple[str, ...] = SCRIPTS, first: int = 0) -> dict[str, str]:
    """Record `scripts` into the log at `path`; returns {script name: call id}."""

    async def run() -> dict[str, str]:
        ids = CountingIds(seed=first)
        for _ in range(first * 100):  # distinct ids when several files are recorded
            ids.new_id("skip")
        found: dict[str, str] = {}
        with SqliteEventLog(path) as log:
            for n, name in enumerate(scripts):
                wall = WALL_START_MS + (first + n) * 60_000
                found[name] = await _record(log, name, ids, wall)
        return found

    return anyio.run(run, backend="asyncio")
