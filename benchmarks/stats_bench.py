"""How long `fsm-voice stats` takes over a big log: 10,000 synthetic calls.

Each call is written through the real `SqliteEventLog` writer with the events a
conversation call logs (transport, call machine, marks, provider states, prompts,
transcripts, intents, noinput/nomatch counters, barge-ins with their `clear`,
provider reconnects, the end): about 100 events per call, 1 M rows. Audio chunks
are left out — `stats` never reads the audio table. Then it times `fsm-voice stats`
as a user runs it (a fresh process reading the file cold is close: the file is
larger than the figures it needs).

Run: .venv/bin/python benchmarks/stats_bench.py [--calls 10000] [--db /tmp/stats.db]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
from pathlib import Path
from typing import Any

from fsm_voice.cli import main as cli_main
from fsm_voice.clock import perf_ms
from fsm_voice.eventlog import CallRecord, EventRecord, SqliteEventLog

T0 = 1_767_225_600_000
MACHINES = {
    "appointment": ["greet", "pick_day", "pick_time", "confirm_cancel"],
    "ivr": ["menu", "account", "lookup"],
    "survey": ["q1", "q2", "q3", "thanks"],
}


class CallWriter:
    """Appends one synthetic call's events with increasing seq and time."""

    def __init__(self, log: SqliteEventLog, call_id: str, start_ms: int) -> None:
        self.log, self.call_id, self.start_ms = log, call_id, start_ms
        self.seq = 0
        self.t_ms = 0

    def add(self, source: Any, kind: str, data: dict[str, Any], after_ms: int = 0) -> None:
        self.t_ms += after_ms
        self.log.append(
            EventRecord(
                self.call_id, self.seq, self.t_ms, self.start_ms + self.t_ms, source, kind, data
            )
        )
        self.seq += 1


def prompt(w: CallWriter, rng: random.Random, pid: str, sentences: int, barge: bool) -> None:
    w.add("conversation", "say_started", {"prompt_id": pid, "text": "Hello " * 8, "bargein": True})
    w.add("tts", "first_audio_sent", {"prompt_id": pid}, rng.randint(150, 400))
    for n in range(sentences):
        mark = {"mark_id": n, "name": f"{pid}.{n}"}
        w.add("runtime", "agent_audio_queued", {})
        w.add("call", "state_entered", {"from": "listening", "on": "x", "state": "speaking"})
        w.add("runtime", "mark_requested", mark | {"timeout_ms": 30000})
        w.add("call", "state_entered", {"from": "speaking", "on": "x", "state": "awaiting_mark"})
        w.add("call", "mark_queued", mark)
        w.add("call", "timer_started", {"ms": 30000, "name": f"mark:{n}"})
        w.add("transport", "mark_sent", mark, 1)
    if barge:
        w.add("stt", "speech_started", {"at_ms": w.t_ms + 900}, 900)
        w.add("conversation", "prompt_stopped", {"prompt_id": pid, "reason": "bargein"})
        w.add("runtime", "outbound_dropped", {"frames": 80, "marks": 1})
        w.add("transport", "clear_sent", {}, 1)
    for n in range(sentences):
        name = f"{pid}.{n}"
        w.add("transport", "mark_echoed", {"name": name}, 0 if barge else rng.randint(800, 2500))
        outcome = "cleared" if barge else "played"
        w.add("call", "timer_cancelled", {"name": f"mark:{n}"})
        w.add("call", "mark_released", {"mark_id": n, "name": name, "outcome": outcome})
    w.add("call", "state_entered", {"from": "awaiting_mark", "on": "x", "state": "listening"})
    heard = [] if barge else ["Hello."] * sentences
    w.add(
        "conversation", "prompt_finished", {"prompt_id": pid, "heard": heard, "interrupted": barge}
    )


def one_call(log: SqliteEventLog, rng: random.Random, n: int) -> None:
    machine = rng.choice(sorted(MACHINES))
    call_id = f"FV{n:08d}"
    start = T0 + n * 7_000
    log.open_call(CallRecord(call_id, start, call_sid=f"CA{n:032d}", machine=machine))
    w = CallWriter(log, call_id, start)
    for kind in ("socket_opened", "connected", "stream_started", "agent_started"):
        w.add("transport", kind, {"stream_sid": f"MZ{n}"}, 1)
    w.add(
        "call",
        "state_entered",
        {"from": "connecting", "on": "stream_started", "state": "listening"},
    )
    w.add("stt", "provider_state_entered", {"state": "connecting", "detail": "offline"})
    w.add("stt", "provider_state_entered", {"state": "streaming", "detail": "offline"}, 5)
    w.add("conversation", "conversation_started", {"variables": {"caller": "+15550100"}})
    previous, prompts = "__start__", 0
    for state in MACHINES[machine][: rng.randint(1, len(MACHINES[machine]))]:
        w.add("conversation", "state_entered", {"state": state, "previous": previous, "event": "x"})
        previous = state
        w.add("conversation", "listening_started", {"grammar": state, "phrases": ["yes", "no"]})
        for attempt in range(rng.choice([1, 1, 1, 2, 3])):
            prompts += 1
            prompt(w, rng, f"p{prompts}", rng.randint(1, 3), barge=rng.random() < 0.1)
            if rng.random() < 0.02:
                w.add("stt", "provider_state_entered", {"state": "reconnecting", "detail": "drop"})
                w.add("stt", "provider_state_entered", {"state": "streaming", "detail": "ok"}, 300)
            if attempt and rng.random() < 0.4:
                w.add(
                    "conversation",
                    "counter_changed",
                    {"counter": "noinput", "value": attempt},
                    5000,
                )
                continue
            w.add(
                "conversation", "conversation_timer_started", {"after_ms": 5000, "name": "noinput"}
            )
            end_ms = w.t_ms + rng.randint(600, 1500)
            text = rng.choice(["yes", "tuesday", "two o'clock", "banana"])
            w.add("stt", "speech_started", {"at_ms": end_ms - 600}, end_ms - 600 - w.t_ms)
            w.add("conversation", "conversation_timer_cancelled", {"name": "noinput"})
            for _ in range(3):
                w.add("stt", "transcript_partial", {"text": text[:3]}, 100)
            transcript = {
                "text": text,
                "confidence": 0.9,
                "start_ms": end_ms - 600,
                "end_ms": end_ms,
                "alternatives": [],
            }
            w.add("stt", "transcript_committed", transcript, 600 + rng.randint(150, 900))
            if text == "banana":
                w.add("conversation", "intent_not_matched", {"text": text})
                w.add(
                    "conversation", "counter_changed", {"counter": "nomatch", "value": attempt + 1}
                )
            else:
                w.add(
                    "conversation",
                    "intent_matched",
                    {"intent": text, "text": text, "how": "phrase"},
                )
                break
    end = rng.choice(["done", "done", "done", "apologize"])
    w.add("conversation", "conversation_ended", {"state": end, "reason": end})
    w.add("call", "call_ended", {"reason": f"conversation:{end}"}, 2)
    log.update_call(
        call_id,
        ended_wall_ms=start + w.t_ms,
        duration_ms=w.t_ms,
        end_reason=f"conversation:{end}",
        outcome="completed",
        final_state="ended",
    )


def generate(path: Path, calls: int, seed: int = 4) -> int:
    rng = random.Random(seed)
    with SqliteEventLog(path) as log:
        for n in range(calls):
            one_call(log, rng, n)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="keep the generated log here")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "stats.db"
        if not path.exists():
            start = perf_ms()
            generate(path, args.calls)
            print(f"generated {args.calls:,} calls in {(perf_ms() - start) / 1000:.1f} s")
        print(f"{path}: {path.stat().st_size / 1e6:.0f} MB")
        times = []
        for _ in range(args.runs):
            out = io.StringIO()
            start = perf_ms()
            with contextlib.redirect_stdout(out):
                code = cli_main(["stats", "--db", str(path)])
            times.append(perf_ms() - start)
            assert code == 0, out.getvalue()
        print(out.getvalue())
        print(
            f"fsm-voice stats over {args.calls:,} calls: " + ", ".join(f"{t:.0f} ms" for t in times)
        )


if __name__ == "__main__":
    main()
