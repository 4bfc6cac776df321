"""Replay speed as a multiple of real time, in both modes.

recorded mode: every example caller script (scripted speech, virtual clock) and a
five-minute call (a caller who asks to hear the menu again and again) are recorded
into memory, then each is replayed several times; prints call length / replay wall
time, the best of the rounds.

offline mode: every fixture in replays/ (real speech, recorded with the offline
providers), re-transcribed by pocketsphinx; the model loads before timing starts.

    .venv/bin/python benchmarks/replay_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_replay import CALLS, recorded  # noqa: E402

from fsm_voice.clock import perf_ms  # noqa: E402
from fsm_voice.conversation.language.loader import load_machine_text  # noqa: E402
from fsm_voice.conversation.language.spec import MachineSpec  # noqa: E402
from fsm_voice.conversation.runner import conversation_agent  # noqa: E402
from fsm_voice.eventlog.memory import MemoryEventLog  # noqa: E402
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer  # noqa: E402
from fsm_voice.replay import (  # noqa: E402
    Recording,
    ReplayResult,
    load_fixture,
    load_from_log,
    replay_call,
)
from fsm_voice.replay.offline import inline_decoder, prepare  # noqa: E402
from fsm_voice.simulator.caller import ScriptedCaller  # noqa: E402
from fsm_voice.simulator.caller_script import parse_caller_script  # noqa: E402
from fsm_voice.testing import in_process_call  # noqa: E402

MENU = """
name: menu
initial: ask
settings: {noinput_timeout_ms: 8000}
global:
  on: {hangup: ended}
  fallback: {after: 3, goto: bye}
states:
  ask:
    actions:
      - say: "Say again to hear the menu once more, or goodbye to end the call."
      - listen: {intents: {again: [again], bye: [goodbye]}}
    on:
      again: ask
      bye: bye
      noinput: {say: "Are you still there?", reprompt: true}
      nomatch: {say: "Please say again, or goodbye.", reprompt: true}
  bye:
    actions:
      - say: "Goodbye."
      - hangup: completed
  ended:
    final: true
"""
ROUND = """
  - wait_prompt: {timeout_ms: 20000}
  - silence: 4000
  - say: "again"
"""
LONG_CALL_S = 300


def menu() -> MachineSpec:
    return load_machine_text(MENU, ROOT / "machines" / "menu.yaml")


async def record_long_call() -> MemoryEventLog:
    """About five minutes of call: the menu, a pause, "again", 32 times over."""
    spec = menu()
    bye = '  - wait_prompt: {timeout_ms: 20000}\n  - say: "goodbye"\n'
    steps = ROUND * 32 + bye + "  - wait_prompt: {timeout_ms: 20000}\n"
    text = f"name: long\nmachine: menu\nexpect: {{end_state: bye}}\nsteps:{steps}"
    script = parse_caller_script(text)
    agent = conversation_agent(
        spec,
        recognizer=lambda: ScriptedRecognizer(script.lines()),
        synthesizer=ScriptedSynthesizer(),
    )
    log = MemoryEventLog()
    async with in_process_call(agent, log=log) as call:
        await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
        await call.wait_ended()
    log.update_call(call.runtime.call_id, machine=spec.name)
    return log


Replayer = Callable[[Recording], Awaitable[ReplayResult]]


async def bench(title: str, recordings: dict[str, Recording], rounds: int, run: Replayer) -> None:
    total_call = total_wall = 0.0
    print(f"\n{title}\n{'call':24} {'length':>8} {'replay':>9} {'× real time':>12}")
    for name, recording in recordings.items():
        best = float("inf")
        for _ in range(rounds):
            start = perf_ms()
            result = await run(recording)
            best = min(best, perf_ms() - start)
            assert result.ok, result.divergence
        length = recording.duration_ms
        total_call += length
        total_wall += best
        print(f"{name:24} {length / 1000:7.1f}s {best:7.1f}ms {length / best:11.0f}×")
    print(
        f"{'all':24} {total_call / 1000:7.1f}s {total_wall:7.1f}ms {total_call / total_wall:11.0f}×"
    )


async def recorded_mode(recording: Recording) -> ReplayResult:
    machine = menu() if recording.machine == "menu" else None
    return await replay_call(recording, machine=machine)


async def offline_mode(recording: Recording) -> ReplayResult:
    return await replay_call(recording, mode="offline")


async def main(recordings: dict[str, Recording], rounds: int) -> None:
    long_call = load_from_log(await record_long_call())
    assert long_call.duration_ms >= LONG_CALL_S * 1000 * 0.9, long_call.duration_ms
    await bench("recorded mode", {"five-minute call": long_call}, rounds, recorded_mode)
    await bench("recorded mode, example calls", recordings, rounds, recorded_mode)
    await prepare(inline_decoder())
    fixtures = {p.name: load_fixture(p) for p in sorted((ROOT / "replays").iterdir())}
    await bench("offline mode, replays/", fixtures, max(1, rounds // 2), offline_mode)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    examples = {caller: load_from_log(recorded(caller)) for caller in CALLS}
    anyio.run(main, examples, parser.parse_args().rounds)
