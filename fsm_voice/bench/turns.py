"""`fsm-voice bench turns`: turn latency and recognition accuracy of the demo's calls.

Runs caller scripts one after another (so calls don't compete for the two cores)
through the demo's own path: a real server on 127.0.0.1, the phone simulator, the
offline providers. Turn latency is measured at the caller: the end of its voiced
speech → the first agent audio that reaches it. The log splits each turn into its
parts: the endpointer's wait + decoding (speech end → transcript) and synthesis
(transcript → first audio queued).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from fsm_voice.agents.machines import build_providers
from fsm_voice.conversation.intents import normalise
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.shipped import Kind, resolve_caller, resolve_machine
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.simulator.demo_call import run_demo_call

DEFAULT_SCRIPTS = (
    "appointment-happy",
    "appointment-bargein",
    "survey-happy",
    "survey-nomatch",
)


@dataclass
class TurnFigures:
    caller_ms: list[int] = field(default_factory=list)  # voiced end → agent audio heard
    recognise_ms: list[int] = field(default_factory=list)  # speech end → transcript
    synthesise_ms: list[int] = field(default_factory=list)  # transcript → first audio sent
    words_said: int = 0
    words_right: int = 0
    failures: list[str] = field(default_factory=list)


def _pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def _server_parts(events: list[EventRecord], figures: TurnFigures) -> None:
    pending: int | None = None
    for event in events:
        if event.kind == "transcript_committed" and event.data.get("text"):
            figures.recognise_ms.append(event.t_ms - int(event.data["end_ms"]))
            pending = event.t_ms
        elif event.kind == "first_audio_sent" and pending is not None:
            figures.synthesise_ms.append(event.t_ms - pending)
            pending = None


def _accuracy(said: list[str], heard: list[str], figures: TurnFigures) -> None:
    """Word accuracy by position: the n-th in-grammar line said against the n-th
    non-empty transcript (lines outside the grammar are meant to be rejected)."""
    for line, text in zip(said, heard, strict=False):
        words = normalise(line).split()
        got = normalise(text).split()
        figures.words_said += len(words)
        figures.words_right += sum(1 for a, b in zip(words, got, strict=False) if a == b)


def _local_or_shipped(root: Path, kind: Kind, name: str) -> Path:
    """`root/<kind>/<name>.yaml` when there is one (a clone), else the shipped file."""
    local = root / kind / f"{name}.yaml"
    if local.is_file():
        return local
    return resolve_machine(name) if kind == "machines" else resolve_caller(name)


async def _bench(root: Path, scripts: tuple[str, ...], rounds: int) -> TurnFigures:
    kit = await build_providers("offline")
    figures = TurnFigures()
    try:
        for _ in range(rounds):
            for name in scripts:
                script = load_caller_script(_local_or_shipped(root, "callers", name))
                spec = load_machine(_local_or_shipped(root, "machines", script.machine))
                log = MemoryEventLog()
                result, end_state, call_id = await run_demo_call(spec, script, kit, log)
                if result.failure or end_state != script.expect.end_state:
                    figures.failures.append(f"{name}: {result.failure or end_state}")
                events = list(log.events(call_id))
                figures.caller_ms.extend(result.turn_latencies_ms())
                _server_parts(events, figures)
                heard = [str(e.data["text"]) for e in events if e.kind == "transcript_committed"]
                # Lines the machine's grammars expect; the others are said to be rejected.
                grammar = {
                    str(p)
                    for e in events
                    if e.kind == "listening_started"
                    for p in e.data.get("phrases", ())
                }
                in_grammar = [line.text for line in result.lines if normalise(line.text) in grammar]
                _accuracy(in_grammar, [h for h in heard if h], figures)
    finally:
        await kit.stop()
    return figures


def bench_turns(root: Path, scripts: tuple[str, ...] = DEFAULT_SCRIPTS, rounds: int = 1) -> int:
    figures = anyio.run(_bench, root, scripts, rounds)
    print(f"calls: {len(scripts) * rounds} ({', '.join(scripts)}) × {rounds}")
    for label, values in (
        ("turn latency at the caller", figures.caller_ms),
        ("  speech end → transcript", figures.recognise_ms),
        ("  transcript → first audio", figures.synthesise_ms),
    ):
        print(
            f"{label:<28} p50 {_pct(values, 0.5):6.0f} ms  p95 {_pct(values, 0.95):6.0f} ms  "
            f"max {max(values, default=0):5d} ms  (n={len(values)}, "
            f"mean {statistics.fmean(values) if values else float('nan'):.0f})"
        )
    if figures.words_said:
        accuracy = figures.words_right / figures.words_said
        print(f"STT word accuracy of the caller lines: {accuracy:.1%} of {figures.words_said}")
    for failure in figures.failures:
        print(f"FAILED {failure}")
    return 1 if figures.failures else 0
