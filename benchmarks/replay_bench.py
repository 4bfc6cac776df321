"""Replay speed in recorded mode, as a multiple of real time.

Records every example caller script (scripted speech, virtual clock) into memory,
then replays each call several times and prints call length / replay wall time.

    .venv/bin/python benchmarks/replay_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_replay import CALLS, recorded  # noqa: E402

from fsm_voice.clock import perf_ms  # noqa: E402
from fsm_voice.replay import Recording, load_from_log, replay_call  # noqa: E402


async def bench(recordings: dict[str, Recording], rounds: int) -> None:
    total_call = total_wall = 0.0
    print(f"{'call':24} {'length':>8} {'replay':>9} {'× real time':>12}")
    for caller, recording in recordings.items():
        best = float("inf")
        for _ in range(rounds):
            start = perf_ms()
            result = await replay_call(recording)
            best = min(best, perf_ms() - start)
            assert result.ok, result.divergence
        length = recording.duration_ms
        total_call += length
        total_wall += best
        print(f"{caller:24} {length / 1000:7.1f}s {best:7.1f}ms {length / best:11.0f}×")
    print(
        f"{'all':24} {total_call / 1000:7.1f}s {total_wall:7.1f}ms {total_call / total_wall:11.0f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    recordings = {caller: load_from_log(recorded(caller)) for caller in CALLS}
    anyio.run(bench, recordings, args.rounds)


if __name__ == "__main__":
    main()
