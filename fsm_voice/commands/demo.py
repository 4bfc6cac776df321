"""`fsm-voice demo`: a whole call, offline, end to end.

Until conversation machines land this runs the echo machine: a real uvicorn server on
127.0.0.1, dialled by the phone simulator over a real WebSocket, every event logged.
It exits 0 only if the caller heard back exactly what it said.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import numpy as np

from fsm_voice.audio.mulaw import encode
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.commands.serve import resolve_agent
from fsm_voice.eventlog.query import call_events, list_calls
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator


def _caller_audio(seconds: float) -> bytes:
    """A rising tone with syllable-like bursts: distinct frames, easy to check."""
    t = np.arange(int(8000 * seconds)) / 8000
    tone = np.sin(2 * np.pi * (300 + 200 * t) * t) * (0.5 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return encode((tone * 12_000).astype(np.int16))


async def _demo(db: Path, machine: str) -> int:
    agent = resolve_agent(machine)
    log = SqliteEventLog(db)
    clock = SystemClock()
    said = _caller_audio(2.0)
    try:
        app = create_app(log, agent=agent, machine_name=machine, clock=clock)
        async with serve_in_background(app) as server:
            print(f"server  {server.url} (machine: {machine})")
            async with dial(server.url) as socket:
                sim = PhoneSimulator(socket, clock, RandomIds(), custom_parameters={"demo": "1"})
                async with sim:
                    print(f"caller  {sim.call_sid}: speaking 2.0 s, then pressing 1")
                    await sim.send_audio(said)
                    await sim.send_dtmf("1")
                    await sim.send_silence(300)  # let the last echo and marks come back
                    await sim.wait_playback_idle()
            await log.flush()
            heard = bytes(sim.played)
    finally:
        log.close()
    log = SqliteEventLog(db)
    try:
        call = list_calls(log)[-1]
        kinds = Counter(e.kind for e in call_events(log, call.call_id))
    finally:
        log.close()
    print(f"call    {call.call_id}: {call.duration_ms} ms, ended by {call.end_reason}")
    print(f"audio   said {len(said)} bytes, heard back {len(heard)} bytes")
    print(f"marks   {len(sim.marks_echoed)} echoed; events logged: {sum(kinds.values())}")
    print("        " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"log     {db}  (sqlite3 {db} 'select kind, count(*) from events group by kind')")
    if machine == "echo" and heard[: len(said)] != said:
        print("demo FAILED: the caller did not hear back exactly what it said")
        return 1
    print("demo ok")
    return 0


def demo(db: Path, machine: str) -> int:
    return anyio.run(_demo, db, machine)
