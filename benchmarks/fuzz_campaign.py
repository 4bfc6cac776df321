"""A fuzz campaign against `fsm-voice serve`: hostile callers beside good ones.

Starts `fsm-voice serve --machine echo` (as `serve` builds it, with a four-hour call
limit, Twilio's own cap) in a child process on 127.0.0.1, then sends at least
`--messages` hostile messages over many calls, `--parallel` calls at a time: NaN,
Infinity, 1e999 and huge integers in every numeric field, deep nesting (within and
past the recursion limit), lone surrogates (mark names, stream ids, parameters), the
wrong type in any field, bad base64, binary frames, text frames that are not UTF-8,
frames past the size cap, random edits of valid messages, raw bytes where WebSocket
frames belong. Beside them, `--good` simulator callers stream audio at real pace
for the whole campaign and hang up at the end.

Prints messages sent, calls opened, calls left open (rows with no end time), the
tracebacks in the server's output, frames lost in the good calls (frames sent vs the
caller track the log stored), the server's RSS and live `CallRuntime` objects at the
start, middle and end, and a JSON summary. Exits 1 if a call was left open, a
traceback appeared, a good frame was lost, or call objects outlived their calls.

    .venv/bin/python benchmarks/fuzz_campaign.py [--messages 100000] [--parallel 48]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm_voice.clock import RandomIds, SystemClock, perf_ms
from fsm_voice.errors import SocketClosed
from fsm_voice.simulator.client import WebSocketClientSocket, dial
from fsm_voice.simulator.phone import PhoneSimulator

ROOT = Path(__file__).resolve().parent.parent
FOUR_HOURS_S = 4 * 3600
OVERSIZE = 300 * 1024  # past serve's default --max-message-bytes (256 KiB)

# The child: `serve` as the command runs it, plus a thread that answers "stats" on
# stdin with the process's RSS and its live CallRuntime objects (after a collection).
SERVER = """
import gc, json, os, sys, threading
from pathlib import Path
from fsm_voice.commands.serve import serve
from fsm_voice.call.runtime import CallRuntime
from fsm_voice.call.config import Limits, SecuritySettings

def stats():
    for _ in sys.stdin:
        gc.collect()
        objects = sum(1 for o in gc.get_objects() if type(o) is CallRuntime)
        pages = int(open("/proc/self/statm").read().split()[1])
        rss = pages * os.sysconf("SC_PAGE_SIZE")
        print(json.dumps({"rss": rss, "call_objects": objects}), flush=True)

threading.Thread(target=stats, daemon=True).start()
limits = Limits(max_call_ms=%(max_call_ms)d)
sys.exit(serve("127.0.0.1", 0, Path(%(db)r), "echo", fd=%(fd)d,
               security=SecuritySettings(), limits=limits))
"""


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    db: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/voice"

    def stats(self) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        while True:  # skip what `serve` itself prints
            line = self.process.stdout.readline()
            if line.startswith("{"):
                return dict(json.loads(line))
            if not line:
                raise RuntimeError("the server exited")

    def live_calls(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=10) as r:
            return int(json.load(r)["calls"])


@contextlib.contextmanager
def server(tmp: Path) -> Iterator[Server]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]
    db, stderr = tmp / "calls.db", tmp / "server.stderr"
    code = SERVER % {"db": str(db), "fd": listener.fileno(), "max_call_ms": FOUR_HOURS_S * 1000}
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=[listener.fileno()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},  # this tree's fsm_voice
        )
    listener.close()
    try:
        yield Server(process, port, db, stderr)
    finally:
        process.terminate()
        process.wait(timeout=60)


# --- hostile messages ---

STREAM = "MZ" + "0" * 32
NON_FINITE = ["1e999", "-1e999", "Infinity", "-Infinity", "NaN", "1E400"]
SURROGATES = ["\\ud800", "\\udfff", "a\\udc00b", "\\ud83d"]  # as JSON escapes


class Hostile:
    """Makes hostile messages; `kind` names each (for the summary)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.frame = base64.b64encode(b"\x7f" * 160).decode()

    def valid(self, seq: int) -> dict[str, Any]:
        r = self.rng
        return r.choice(
            [
                {"event": "media", "sequenceNumber": str(seq), "streamSid": STREAM,
                 "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(20 * seq),
                           "payload": self.frame}},
                {"event": "mark", "sequenceNumber": str(seq), "streamSid": STREAM,
                 "mark": {"name": "m"}},
                {"event": "dtmf", "sequenceNumber": str(seq), "streamSid": STREAM,
                 "dtmf": {"digit": "5"}},
                {"event": "connected", "protocol": "Call", "version": "1.0.0"},
            ]
        )  # fmt: skip

    def raw_value(self) -> str:
        """Raw JSON text for one field."""
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return r.choice(NON_FINITE)
        if kind == 1:
            return r.choice(["-", ""]) + "9" * r.choice([20, 300, 4000, 4400])
        if kind == 2:
            depth = r.choice([20, 500, 2000])
            return "[" * depth + "]" * depth
        if kind == 3:
            return '"' + r.choice(SURROGATES) + '"'
        if kind == 4:
            return r.choice(["true", "null", "[]", "{}", '{"a":[1]}', "-1", "0", "1.5", '""'])
        if kind == 5:
            return json.dumps(r.choice(["!!", "AAA", "\x00", "é" * 3, " 1 "]))
        if kind == 6:
            return str(r.randint(-(2**70), 2**70))
        return json.dumps("x" * r.randrange(2000))

    def ending(self) -> tuple[str, str | bytes, bool]:
        """A message after which the server closes the socket."""
        if self.rng.random() < 0.5:  # not UTF-8: 1007
            return "not_utf8", b'{"event":"' + self.rng.randbytes(8) + b'\xff"}', True
        return "oversize", '{"event":"media","media":{"payload":"' + "A" * OVERSIZE + '"}}', False

    def message(self, seq: int) -> tuple[str, str | bytes, bool]:
        """(kind, message, send bytes as a text frame): the call goes on after it."""
        r = self.rng
        roll = r.random()
        if roll < 0.45:  # a valid message with one field replaced by raw hostile text
            message = self.valid(seq)
            text = json.dumps(message)
            fields = [k for k in ('"sequenceNumber"', '"chunk"', '"timestamp"', '"payload"',
                                  '"name"', '"digit"', '"streamSid"', '"media"', '"event"')
                      if k in text]  # fmt: skip
            key = r.choice(fields)
            start = text.index(key) + len(key) + 2
            end = _value_end(text, start)
            return "field", text[:start] + self.raw_value() + text[end:], False
        if roll < 0.60:  # a random edit of a valid message
            text = json.dumps(self.valid(seq))
            for _ in range(r.randint(1, 4)):
                at = r.randrange(len(text))
                text = text[:at] + chr(r.randrange(32, 0x2FF)) * r.randint(0, 2) + text[at + 1 :]
            return "edit", text, False
        if roll < 0.75:  # valid traffic between the hostile
            return "valid", json.dumps(self.valid(seq)), False
        if roll < 0.83:
            depth = r.choice([1_000, 10_000, 40_000])  # within the size cap
            opener = r.choice(["[", '{"a":'])
            closer = "]" if opener == "[" else "}"
            return "nesting", opener * depth + (closer * depth if r.random() < 0.5 else ""), False
        if roll < 0.92:
            name = r.choice(SURROGATES)
            text = f'{{"event":"mark","streamSid":"{STREAM}","mark":{{"name":"{name}"}}}}'
            return "surrogate", text, False
        if roll < 0.98:
            return "binary", r.randbytes(r.randrange(1, 400)), False
        return "random_text", "".join(chr(r.randrange(1, 0xD7FF)) for _ in range(50)), False


def _value_end(text: str, start: int) -> int:
    """Where the JSON value starting at `start` ends (strings and flat values only)."""
    if text[start] == '"':
        end = start + 1
        while text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        return end + 1
    if text[start] in "{[":
        depth, end = 0, start
        while True:
            depth += {"{": 1, "[": 1, "}": -1, "]": -1}.get(text[end], 0)
            end += 1
            if depth == 0:
                return end
    end = start
    while text[end] not in ",}]":
        end += 1
    return end


def start_message(rng: random.Random) -> str:
    """`start` for a hostile call: sometimes with lone surrogates in the parameters."""
    params = '{"From":"+15550100"}'
    if rng.random() < 0.3:
        params = '{"From":"+1555\\ud800","x\\udfff":"y\\udc00","token":"\\ud83d"}'
    return (
        f'{{"event":"start","sequenceNumber":"1","streamSid":"{STREAM}","start":{{'
        f'"streamSid":"{STREAM}","callSid":"CA1","accountSid":"AC1","tracks":["inbound"],'
        f'"customParameters":{params},'
        f'"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}'
    )


@dataclass
class Tally:
    messages: int = 0
    confirmed: int = 0  # of those, read by the server before a media echo came back
    calls: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    middle: dict[str, int] | None = None


async def hostile_call(url: str, rng: random.Random, tally: Tally, per_call: int) -> None:
    hostile = Hostile(rng)
    tally.calls += 1
    code = "ours"
    try:
        async with dial(url) as socket:
            assert isinstance(socket, WebSocketClientSocket)
            connection = socket.connection

            async def send(kind: str, message: str | bytes, as_text: bool = False) -> None:
                if isinstance(message, bytes) and as_text:
                    await connection.send(message, text=True)
                else:
                    await connection.send(message)
                tally.messages += 1
                tally.by_kind[kind] += 1

            started = rng.random() < 0.9
            if started:
                await send("valid", '{"event":"connected","protocol":"Call","version":"1"}')
                await send("start", start_message(rng))
            for seq in range(2, 2 + per_call):
                await send(*hostile.message(seq))
            if started:  # wait until the server has read all of it: our frame comes back
                await sync(connection, send, 2 + per_call)
                tally.confirmed += 3 + per_call
            ending = rng.random()
            if ending < 0.3:
                await send("valid", f'{{"event":"stop","streamSid":"{STREAM}"}}')
            elif ending < 0.6:
                await send(*hostile.ending())
                await connection.wait_closed()
            elif ending < 0.75:
                connection.transport.abort()  # vanish without a close frame
                code = "dropped"
                return
    except SocketClosed as e:
        code = str(e.code)
    except Exception as e:  # the server closed while we sent (websockets' own errors)
        rcvd = getattr(e, "rcvd", None)
        code = str(rcvd.code) if rcvd is not None else f"mid-send ({type(e).__name__})"
    finally:
        tally.close_codes[code] += 1


async def sync(connection: Any, send: Any, seq: int) -> None:
    """Send one valid frame and read until the echo agent plays it back (or the server
    closes): then the server has read every message before it."""
    payload = base64.b64encode(random.randbytes(160)).decode()
    media = {"track": "inbound", "chunk": str(seq), "timestamp": str(20 * seq), "payload": payload}
    await send("valid", json.dumps({"event": "media", "streamSid": STREAM, "media": media}))
    while True:
        message = json.loads(await connection.recv())
        if message.get("event") == "media" and message["media"]["payload"] == payload:
            return


async def bad_frames(port: int, rng: random.Random, tally: Tally) -> None:
    """Upgrade by hand, then send bytes that are no valid WebSocket frame."""
    tally.calls += 1
    with contextlib.suppress(OSError, anyio.EndOfStream, anyio.BrokenResourceError):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            key = base64.b64encode(rng.randbytes(16)).decode()
            await stream.send(
                (
                    f"GET /voice HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            await stream.receive()  # the 101
            junk = rng.choice(
                [
                    rng.randbytes(64),
                    b"\x81\x05hello",  # an unmasked client frame
                    b"\x83\x80" + rng.randbytes(4),  # a reserved opcode
                    b"\xf1\x80" + rng.randbytes(4),  # reserved bits set
                ]
            )
            await stream.send(junk)
            tally.messages += 1
            tally.by_kind["bad_frame"] += 1
            with anyio.move_on_after(5):  # the server answers with a close
                while await stream.receive():
                    pass


async def good_call(url: str, stop: anyio.Event, results: list[tuple[str, int]]) -> None:
    clock = SystemClock()
    async with dial(url) as socket:
        sim = PhoneSimulator(socket, clock, RandomIds())
        async with sim:
            audio = bytes(range(256)) * 25  # 40 frames: 0.8 s
            while not stop.is_set():
                await sim.send_audio(audio)
    results.append((sim.stream_sid, sim.frames_sent))


async def campaign(srv: Server, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tally = Tally()
    stop_good = anyio.Event()
    good: list[tuple[str, int]] = []
    started = perf_ms()
    async with anyio.create_task_group() as goods:
        for _ in range(args.good):
            goods.start_soon(good_call, srv.url, stop_good, good)
        slots = anyio.Semaphore(args.parallel)

        async def one(seed: int) -> None:
            try:
                call_rng = random.Random(seed)
                if call_rng.random() < 0.01:
                    await bad_frames(srv.port, call_rng, tally)
                else:
                    per_call = call_rng.randint(20, 2 * args.per_call)
                    await hostile_call(srv.url, call_rng, tally, per_call)
                if tally.middle is None and tally.messages >= args.messages // 2:
                    tally.middle = {}  # claimed: the stats are read once, off the loop
                    tally.middle = await anyio.to_thread.run_sync(srv.stats)
            finally:
                slots.release()

        async with anyio.create_task_group() as tg:
            while tally.messages < args.messages:
                await slots.acquire()  # no more hostile calls at once than --parallel
                tg.start_soon(one, rng.randrange(2**32))
        stop_good.set()
    return {
        "tally": tally,
        "good": good,
        "seconds": round((perf_ms() - started) / 1000, 1),
    }


def read_log(db: Path, good: list[tuple[str, int]]) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        calls = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
        open_rows = conn.execute("SELECT count(*) FROM calls WHERE ended_wall_ms IS NULL")
        left_open = open_rows.fetchone()[0]
        reasons = Counter(
            dict(conn.execute("SELECT end_reason, count(*) FROM calls GROUP BY end_reason"))
        )
        violations = Counter(
            dict(
                conn.execute(
                    "SELECT json_extract(data, '$.reason'), count(*) FROM events"
                    " WHERE kind = 'protocol_violation' GROUP BY 1"
                )
            )
        )
        failed = conn.execute("SELECT count(*) FROM events WHERE kind = 'runtime_failed'")
        runtime_failed = failed.fetchone()[0]
        lost = 0
        for stream_sid, sent in good:
            stored = conn.execute(
                "SELECT coalesce(sum(length(a.payload)), 0) / 160 FROM audio a"
                " JOIN calls c USING (call_id) WHERE c.stream_sid = ? AND a.track = 'caller'",
                (stream_sid,),
            ).fetchone()[0]
            lost += sent - stored
    return {
        "calls_opened": calls,
        "calls_left_open": left_open,
        "end_reasons": dict(reasons.most_common()),
        "violations": dict(violations.most_common()),
        "runtime_failed": runtime_failed,
        "good_frames_sent": sum(sent for _, sent in good),
        "good_frames_lost": lost,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--parallel", type=int, default=48, help="hostile calls at a time")
    parser.add_argument("--per-call", type=int, default=60, help="mean messages per call")
    parser.add_argument("--good", type=int, default=6, help="good simulator callers")
    parser.add_argument("--seed", type=int, default=102)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as srv:
        anyio.run(wait_up, srv)
        start = srv.stats()
        result = anyio.run(campaign, srv, args)
        anyio.run(wait_idle, srv)
        end = srv.stats()
        log = read_log(srv.db, result["good"])
        output = srv.stderr.read_text()
    tally: Tally = result["tally"]
    middle = tally.middle or {}
    summary = {
        "messages_sent": tally.messages,
        "messages_confirmed_read": tally.confirmed,
        "hostile_calls": tally.calls,
        "seconds": result["seconds"],
        **log,
        "tracebacks": output.count("Traceback"),
        "server_errors": sum(1 for line in output.splitlines() if "ERROR" in line),
        "rss_mb": {
            k: round(s.get("rss", 0) / 2**20, 1)
            for k, s in (("start", start), ("middle", middle), ("end", end))
        },
        "call_objects": {
            "start": start["call_objects"],
            "middle": middle.get("call_objects"),
            "end": end["call_objects"],
        },
        "messages_by_kind": dict(tally.by_kind.most_common()),
        "client_close_codes": dict(tally.close_codes.most_common()),
    }
    print(f"messages sent            {summary['messages_sent']:>10,} in {summary['seconds']} s")
    print(f"  confirmed read         {summary['messages_confirmed_read']:>10,} (echo came back)")
    print(f"calls opened             {summary['calls_opened']:>10,}")
    print(f"calls left open          {summary['calls_left_open']:>10,}")
    print(f"tracebacks in output     {summary['tracebacks']:>10,}")
    print(f"runtime_failed events    {summary['runtime_failed']:>10,}")
    sent, lost = summary["good_frames_sent"], summary["good_frames_lost"]
    print(f"good frames sent / lost  {sent:>10,} / {lost}")
    rss, objects = summary["rss_mb"], summary["call_objects"]
    print(
        f"server RSS MB            start {rss['start']}  middle {rss['middle']}  end {rss['end']}"
    )
    print(
        f"live CallRuntime objects start {objects['start']}  middle {objects['middle']}"
        f"  end {objects['end']}"
    )
    print(json.dumps(summary, indent=1))
    if output.strip():
        print("--- server output (first 40 lines) ---")
        print("\n".join(output.splitlines()[:40]))
    bad = (
        summary["calls_left_open"] or summary["tracebacks"] or summary["good_frames_lost"]
        or summary["runtime_failed"] or end["call_objects"] > start["call_objects"]
    )  # fmt: skip
    return 1 if bad else 0


async def wait_up(srv: Server) -> None:
    while True:
        try:
            await anyio.to_thread.run_sync(srv.live_calls)
            return
        except OSError:
            await anyio.sleep(0.05)


async def wait_idle(srv: Server) -> None:
    """Every call ended (its row closed and flushed before it leaves the endpoint)."""
    for _ in range(600):
        if await anyio.to_thread.run_sync(srv.live_calls) == 0:
            return
        await anyio.sleep(0.1)
    print("calls still live after 60 s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
