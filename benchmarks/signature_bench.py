"""What checking X-Twilio-Signature costs per `/voice` upgrade.

1. The check alone: `twilio_signature_valid` (the twilio SDK's RequestValidator), and
   the endpoint's whole pre-accept check (`check_upgrade`: header lookup, signed URL,
   validation), in µs per upgrade.
2. End to end over 127.0.0.1: the WebSocket upgrade's latency (connect → open) as the
   phone simulator sees it, against a real uvicorn server with and without an auth
   token configured; p50 and p90 of each, and the difference.

Run: .venv/bin/python benchmarks/signature_bench.py [--checks 20000] [--upgrades 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import anyio

from fsm_voice.call.config import SecuritySettings
from fsm_voice.clock import perf_ms
from fsm_voice.eventlog import SqliteEventLog
from fsm_voice.security import Secret
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.server.upgrade import check_upgrade
from fsm_voice.simulator.client import dial
from fsm_voice.twilio.signature import twilio_signature, twilio_signature_valid

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC_URL = "wss://voice.example.com/voice"


def per_check_us(checks: int) -> tuple[float, float]:
    """(µs per `twilio_signature_valid`, µs per `check_upgrade`)."""
    token = Secret(AUTH_TOKEN)
    signature = twilio_signature(AUTH_TOKEN, PUBLIC_URL)
    settings = SecuritySettings(auth_token=token, public_url=PUBLIC_URL)
    scope = {
        "type": "websocket",
        "path": "/voice",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"sec-websocket-version", b"13"),
            (b"x-twilio-signature", signature.encode()),
        ],
    }
    start = perf_ms()
    for _ in range(checks):
        assert twilio_signature_valid(token, PUBLIC_URL, None, signature)
    direct = perf_ms() - start
    start = perf_ms()
    for _ in range(checks):
        refusal, _ = check_upgrade(scope, settings, 0, 0)
        assert refusal is None
    whole = perf_ms() - start
    return direct / checks * 1000, whole / checks * 1000


async def upgrade_latencies_ms(folder: Path, upgrades: int, signed: bool) -> list[float]:
    """Connect → open of `upgrades` sequential upgrades (each closed right away)."""
    security = SecuritySettings(auth_token=Secret(AUTH_TOKEN), public_url=PUBLIC_URL)
    log = SqliteEventLog(folder / f"{'signed' if signed else 'open'}.db")
    app = create_app(log, security=security if signed else None)
    latencies: list[float] = []
    try:
        async with serve_in_background(app) as server:
            auth = {"auth_token": AUTH_TOKEN, "signed_url": PUBLIC_URL} if signed else {}
            for n in range(upgrades + 20):
                start = perf_ms()
                async with dial(server.url, **auth):  # type: ignore[arg-type]
                    if n >= 20:  # the first ones warm up both ends
                        latencies.append(perf_ms() - start)
            await app.state.voice.wait_finished(upgrades + 20)
    finally:
        log.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--upgrades", type=int, default=300)
    args = parser.parse_args()

    direct_us, whole_us = per_check_us(args.checks)
    print(f"signature check (twilio RequestValidator): {direct_us:.1f} µs per upgrade")
    print(f"whole pre-accept check (check_upgrade):    {whole_us:.1f} µs per upgrade")

    async def end_to_end() -> tuple[list[float], list[float]]:
        with tempfile.TemporaryDirectory() as folder:
            # Interleave the two runs' halves so drift on a shared machine hits both.
            half = args.upgrades // 2
            plain = await upgrade_latencies_ms(Path(folder), half, signed=False)
            signed = await upgrade_latencies_ms(Path(folder), half, signed=True)
            plain += await upgrade_latencies_ms(Path(folder), half, signed=False)
            signed += await upgrade_latencies_ms(Path(folder), half, signed=True)
            return plain, signed

    plain, signed = anyio.run(end_to_end)
    for name, values in (("without validation", plain), ("with validation", signed)):
        p50 = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"upgrade over 127.0.0.1 {name:>18}: p50 {p50:.3f} ms, p90 {p90:.3f} ms")
    added = (statistics.median(signed) - statistics.median(plain)) * 1000
    print(f"added by validation, p50: {added:+.0f} µs per upgrade (n={len(plain)} each)")


if __name__ == "__main__":
    main()
