"""How fast the SQLite event log takes small events: append cost and committed rows/s.

Run: .venv/bin/python benchmarks/eventlog_bench.py [--events 200000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fsm_voice.clock import perf_ms
from fsm_voice.eventlog import CallRecord, EventRecord, SqliteEventLog

T0 = 1_767_225_600_000


def run(path: Path, n: int, calls: int) -> None:
    batches: list[int] = []
    with SqliteEventLog(path, on_commit=batches.append) as log:
        for c in range(calls):
            log.open_call(CallRecord(f"call{c}", started_wall_ms=T0))
        log.flush_sync()
        batches.clear()
        events = [
            EventRecord(
                f"call{i % calls}",
                i // calls,
                i * 2,
                T0 + i * 2,
                "transport",
                "media_received",
                {"track": "inbound", "chunk": i, "bytes": 160},
            )
            for i in range(n)
        ]
        start = perf_ms()
        for e in events:
            log.append(e)
        appended = perf_ms()
        log.flush_sync()
        done = perf_ms()
    size = path.stat().st_size
    total_s = (done - start) / 1000
    print(f"{n:,} events over {calls} calls into {path}")
    print(f"  append (caller's thread): {(appended - start) * 1000 / n:.2f} µs per event")
    print(f"  appended + committed:     {n / total_s:,.0f} rows/s ({total_s:.2f} s)")
    print(f"  transactions:             {len(batches)} (mean {n / max(len(batches), 1):,.0f} rows)")
    print(f"  file size:                {size / 1e6:.1f} MB ({size / n:.0f} bytes/event)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run(Path(tmp) / "bench.db", args.events, args.calls)


if __name__ == "__main__":
    main()
