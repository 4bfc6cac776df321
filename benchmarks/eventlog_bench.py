"""How fast the SQLite event log takes small events: append cost and committed rows/s.

Run: .venv/bin/python benchmarks/eventlog_bench.py [--events 200000] [--dir /tmp]

With `--audio SECONDS`, it records both tracks of `--calls` calls instead, the way a
call does (`TrackRecorder`, one 160-byte frame per track every 20 ms of call time, all
calls interleaved), once per `--chunk-frames` size: the cost of the chunk size that
bounds what a crash loses (5 frames: 100 ms) against ~1 s chunks (50).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fsm_voice.call.recorder import FRAME_BYTES, TrackRecorder
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


def run_audio(path: Path, seconds: int, calls: int, chunk_frames: int) -> None:
    batches: list[int] = []
    frames = seconds * 50
    payload = bytes(range(FRAME_BYTES))
    with SqliteEventLog(path, on_commit=batches.append) as log:
        recorders = []
        for c in range(calls):
            log.open_call(CallRecord(f"call{c}", started_wall_ms=T0))
            for track in ("caller", "agent"):
                recorders.append(TrackRecorder(log, f"call{c}", track, chunk_frames))
        log.flush_sync()
        batches.clear()
        start = perf_ms()
        for n in range(frames):
            for recorder in recorders:
                recorder.add(payload, n * 20, n)
        for recorder in recorders:
            recorder.cut()
        appended = perf_ms()
        log.flush_sync()
        done = perf_ms()
    size = path.stat().st_size
    total = frames * len(recorders)
    rows = sum(batches)
    audio_s = frames * 0.02 * len(recorders)
    print(f"{chunk_frames}-frame chunks: {calls} calls × 2 tracks × {seconds} s")
    print(f"  add (caller's thread):    {(appended - start) * 1000 / total:.2f} µs per frame")
    print(f"  appended + committed:     {(done - start) / 1000:.2f} s, {rows:,} rows")
    print(f"  file size:                {size / 1e6:.1f} MB ({size / audio_s / 1000:.2f} kB per")
    print(f"                            track-second; payload alone: {FRAME_BYTES * 50 / 1000} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the file")
    parser.add_argument("--audio", type=int, default=0, help="record SECONDS of audio instead")
    parser.add_argument(
        "--chunk-frames", type=int, nargs="+", default=[50, 5], help="chunk sizes (--audio)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if not args.audio:
            run(Path(tmp) / "bench.db", args.events, args.calls)
        for chunk_frames in args.chunk_frames if args.audio else []:
            run_audio(Path(tmp) / f"audio{chunk_frames}.db", args.audio, args.calls, chunk_frames)


if __name__ == "__main__":
    main()
