"""The caller side of `fsm-voice bench calls`: N lean simulated Twilio streams.

Runs in its own process (pinned to the other core). One ticker paces every caller's
media every 20 ms (callers spread over four 5 ms slots, as independent streams would
be); each frame carries its index so the echo's latency is measured exactly. Marks
are echoed when the audio before them would have finished playing, as Twilio does.
Prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import struct
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fsm_voice.clock import SystemClock, perf_ms
from fsm_voice.server import tune_gc

FRAME_MS = 20
SLOTS = 4


@dataclass
class Caller:
    n: int
    ws: ClientConnection | None = None
    sid: str = ""
    sent_at: list[float] = field(default_factory=list)
    received: int = 0
    latencies: list[float] = field(default_factory=list)
    playout_end: float = 0.0
    marks: int = 0
    seq: int = 1

    def media(self, index: int) -> str:
        self.seq += 1
        payload = base64.b64encode(struct.pack("<I", index) + b"\x7f" * 156).decode()
        media = {"track": "inbound", "chunk": str(index + 1),
                 "timestamp": str(index * FRAME_MS), "payload": payload}  # fmt: skip
        message = {"event": "media", "sequenceNumber": str(self.seq), "streamSid": self.sid}
        return json.dumps(message | {"media": media})


async def run_caller(c: Caller, url: str, connected: asyncio.Event) -> None:
    async with connect(url, compression=None, ping_interval=None, max_size=2**20) as ws:
        c.ws = ws
        c.sid = f"MZbench{c.n:025d}"
        await ws.send('{"event":"connected","protocol":"Call","version":"1.0.0"}')
        fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        body = {
            "streamSid": c.sid,
            "callSid": f"CAbench{c.n:025d}",
            "accountSid": "ACbench",
            "tracks": ["inbound"],
            "customParameters": {"bench": str(c.n)},
            "mediaFormat": fmt,
        }
        start = {"event": "start", "sequenceNumber": "1", "streamSid": c.sid, "start": body}
        await ws.send(json.dumps(start))
        connected.set()
        loop = asyncio.get_running_loop()
        try:
            async for message in ws:
                now = perf_ms()
                data = json.loads(message)
                if data["event"] == "media":
                    index = struct.unpack("<I", base64.b64decode(data["media"]["payload"])[:4])[0]
                    if index < len(c.sent_at):
                        c.latencies.append(now - c.sent_at[index])
                    c.received += 1
                    c.playout_end = max(c.playout_end, now) + FRAME_MS
                elif data["event"] == "mark":
                    name = data["mark"]["name"]
                    delay = max(0.0, c.playout_end - now) / 1000
                    loop.call_later(delay, _echo_mark, c, name)
        except ConnectionClosed:
            pass


def _echo_mark(c: Caller, name: str) -> None:
    if c.ws is None:
        return
    c.seq += 1
    message = {"event": "mark", "sequenceNumber": str(c.seq), "streamSid": c.sid}
    c.marks += 1
    task = asyncio.ensure_future(
        _send_quietly(c.ws, json.dumps(message | {"mark": {"name": name}}))
    )
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Future[None]] = set()


async def _send_quietly(ws: ClientConnection, message: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(message)


async def load(url: str, calls: int, seconds: float) -> dict[str, object]:
    callers = [Caller(n) for n in range(calls)]
    connected = [asyncio.Event() for _ in callers]
    tasks = [
        asyncio.create_task(run_caller(c, url, e)) for c, e in zip(callers, connected, strict=True)
    ]
    clock = SystemClock()
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected)), timeout=30)
    print(json.dumps({"connected": calls}), flush=True)  # the parent samples RSS now
    frames = int(seconds * 1000 / FRAME_MS)
    t0 = perf_ms()
    lateness: list[float] = []
    for index in range(frames):
        for slot in range(SLOTS):
            target = t0 + index * FRAME_MS + slot * FRAME_MS / SLOTS
            await clock.sleep(target - perf_ms())
            lateness.append(perf_ms() - target)
            for c in callers[slot::SLOTS]:
                if c.ws is None:
                    continue
                c.sent_at.append(perf_ms())
                try:
                    await c.ws.send(c.media(index))
                except ConnectionClosed:
                    c.ws = None
    await clock.sleep(1000)  # let the last echoes arrive
    for c in callers:
        if c.ws is not None:
            c.seq += 1
            stop = {"event": "stop", "sequenceNumber": str(c.seq), "streamSid": c.sid}
            await _send_quietly(c.ws, json.dumps(stop | {"stop": {"accountSid": "ACbench"}}))
            await c.ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(x for c in callers for x in c.latencies)
    sent = sum(len(c.sent_at) for c in callers)
    received = sum(c.received for c in callers)

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)
            if latencies
            else -1
        )

    lateness.sort()
    return {
        "calls": calls, "seconds": seconds, "frames_sent": sent, "frames_received": received,
        "frames_lost": sent - received, "marks_echoed": sum(c.marks for c in callers),
        "echo_p50_ms": pct(0.50), "echo_p99_ms": pct(0.99), "echo_max_ms": pct(1.0),
        "caller_tick_late_p99_ms": round(lateness[int(0.99 * len(lateness))], 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    import uvloop

    # The load generator's own GC pauses would be counted as echo latency (a frame's
    # echo is timestamped when this loop gets to it): same settings as the server.
    tune_gc()
    result = uvloop.run(load(args.url, args.calls, args.seconds))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
