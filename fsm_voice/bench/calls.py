"""`fsm-voice bench calls`: concurrent echo calls against one pinned server process.

The server (`fsm-voice serve --machine echo`, every event logged, both tracks
recorded) runs pinned to core 0; the callers (`fsm_voice.bench.callers`) run in
another process pinned to core 1, over 127.0.0.1. For each call count it prints calls
sustained, frames sent/received/lost, echo latency p50/p99, server CPU per
call-second, RSS per call and log rows/s; with a ramp, the largest count that held
p99 < 50 ms with zero loss.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fsm_voice.clock import perf_ms
from fsm_voice.errors import ConfigError

P99_TARGET_MS = 50.0


def _psutil() -> Any:
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError as e:
        raise ConfigError("the benchmark needs psutil: pip install 'fsm-voice[dev]'") from e
    return psutil


def _log_rows(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            events = conn.execute("select count(*) from events").fetchone()[0]
            audio = conn.execute("select count(*) from audio").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
    return int(events) + int(audio)


def _pin(pid: int, core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {core})


def _run_load(url: str, calls: int, seconds: float, server: Any, db: Path) -> dict[str, Any]:
    rows0, cpu0 = _log_rows(db), server.cpu_times()
    rss_idle = server.memory_info().rss
    t0 = perf_ms()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsm_voice.bench.callers", "--url", url,
         "--calls", str(calls), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    _pin(proc.pid, 1)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline() or "{}")
    rss_live = server.memory_info().rss if first.get("connected") == calls else rss_idle
    result: dict[str, Any] = json.loads(proc.stdout.readline() or "{}")
    proc.wait()
    elapsed_s = (perf_ms() - t0) / 1000
    cpu1 = server.cpu_times()
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    result["server_cpu_us_per_call_second"] = round(cpu_s / (calls * seconds) * 1e6, 1)
    result["server_cpu_us_per_frame"] = round(cpu_s / max(1, result.get("frames_sent", 1)) * 1e6, 1)
    result["rss_kb_per_call"] = round((rss_live - rss_idle) / calls / 1024, 1)
    result["log_rows_per_s"] = round((_log_rows(db) - rows0) / elapsed_s)
    return result


def bench_calls(ramp: list[int], seconds: float, db: str | None, mark_every: int) -> int:
    psutil = _psutil()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(db) if db else Path(tmp) / "bench.db"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/voice"
        env = dict(os.environ, FSM_VOICE_ECHO_MARK_EVERY=str(mark_every))
        server_proc = subprocess.Popen(
            [sys.executable, "-m", "fsm_voice.cli", "serve", "--fd", str(listener.fileno()),
             "--db", str(db_path), "--machine", "echo"],
            pass_fds=[listener.fileno()], stdout=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        listener.close()
        _pin(server_proc.pid, 0)
        server = psutil.Process(server_proc.pid)
        results = []
        try:
            print(f"server pid {server_proc.pid} on core 0, callers on core 1, {url}")
            for calls in ramp:
                result = _run_load(url, calls, seconds, server, db_path)
                results.append(result)
                print(json.dumps(result), flush=True)
        finally:
            server_proc.terminate()
            server_proc.wait(10)
    _report(results)
    return 0


def _report(results: list[dict[str, Any]]) -> None:
    print()
    header = ("calls", "lost", "p50 ms", "p99 ms", "µs CPU/call·s", "µs CPU/frame", "KB RSS/call",
              "log rows/s")  # fmt: skip
    print(" | ".join(f"{h:>13}" for h in header))
    held = 0
    for r in results:
        row = (r["calls"], r["frames_lost"], r["echo_p50_ms"], r["echo_p99_ms"],
               r["server_cpu_us_per_call_second"], r["server_cpu_us_per_frame"],
               r["rss_kb_per_call"], r["log_rows_per_s"])  # fmt: skip
        print(" | ".join(f"{v:>13}" for v in row))
        if r["frames_lost"] == 0 and r["echo_p99_ms"] < P99_TARGET_MS:
            held = max(held, r["calls"])
    print(f"\nlargest call count holding p99 < {P99_TARGET_MS:.0f} ms with zero loss: {held}")
