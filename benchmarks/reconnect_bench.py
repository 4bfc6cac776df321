"""Reconnect: from a dropped Scribe socket to caller audio flowing again.

The ElevenLabs recogniser streams caller frames (20 ms, real pace) to the local fake
ElevenLabs server on 127.0.0.1 (tests/fake_elevenlabs.py) on the real clock. The fake
drops the session's socket `--drops` times; each sample is the time from the drop to
the first caller byte the *new* session receives (the adapter noticed the close,
backed off, opened a WebSocket through the SDK, got `session_started` and flushed
the audio buffered meanwhile). Two schedules:

- as configured: the first retry waits the backoff (1 s ± 25 % jitter) — that wait
  is most of the figure;
- immediate first retry (`immediate_first_retry=True`): a dropped socket is retried
  at once, later retries back off 1, 2, 4 s. What is left is the loopback cost.

Each is printed twice: "session" is drop → the new session's `session_started`
(the adapter in `streaming` again); "audio" is drop → the first caller byte that
session receives. The drop is sent right after a frame arrived, so with an immediate
retry the new session is up before the caller's next frame exists: "audio" then
includes that wait (~20 ms, one frame). With a backoff, frames fed meanwhile are
buffered and flushed the moment the session starts.

Run: PYTHONPATH=. .venv/bin/python benchmarks/reconnect_bench.py [--drops 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm_voice.clock import RandomIds, perf_ms
from fsm_voice.providers.base import Transcript
from fsm_voice.providers.elevenlabs_stt import ElevenLabsRecognizer
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs, silence


class _Listener:
    """Notes when the recogniser last reached `streaming` (a new session started)."""

    def __init__(self) -> None:
        self.streaming_at = 0.0

    def on_speech_started(self, t_ms: int) -> None: ...
    def on_recognizing(self, text: str) -> None: ...
    def on_committed(self, transcript: Transcript) -> None: ...
    def on_error(self, reason: str, fatal: bool) -> None: ...

    def on_state(self, state: str, detail: str) -> None:
        if state == "streaming":
            self.streaming_at = perf_ms()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(drops: int, immediate: bool) -> tuple[list[float], list[float]]:
    """(drop → new session streaming, drop → first audio in the new session), in ms."""
    fake = FakeElevenLabs()
    listener = _Listener()
    samples: list[float] = []
    sessions: list[float] = []
    async with fake.serve() as base_url:
        stt = ElevenLabsRecognizer(
            api_key=API_KEY,
            base_url=base_url,
            environ={},
            immediate_first_retry=immediate,
            max_retries=drops + 5,
            jitter=RandomIds().jitter,
        )
        await stt.start(listener)
        frame = silence(20)
        running = True

        async def caller() -> None:  # 20 ms frames at real pace, like Twilio
            t_ms = 0
            while running:
                stt.feed(frame, t_ms)
                t_ms += 20
                await asyncio.sleep(0.02)

        feeder = asyncio.ensure_future(caller())
        for _ in range(drops):
            await fake.wait_for(lambda: len(fake.sessions[-1].audio) > 0)
            index = len(fake.sessions)
            started = perf_ms()
            fake.drop()
            await fake.wait_for(
                lambda i=index: len(fake.sessions) > i and len(fake.sessions[i].audio) > 0
            )
            samples.append(perf_ms() - started)
            sessions.append(listener.streaming_at - started)
        running = False
        await feeder
        await stt.stop()
    return sessions, samples


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<32} n={len(samples):<3} p50 {percentile(samples, 50):7.1f} ms"
        f"   p99 {percentile(samples, 99):7.1f} ms   mean {statistics.fmean(samples):7.1f} ms"
        f"   max {max(samples):7.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=30)
    args = parser.parse_args()
    print(
        f"drop → new session streaming (session), → its first caller audio (audio); "
        f"{args.drops} drops each, caller frames every 20 ms"
    )
    for name, immediate in (("immediate first retry", True), ("as configured", False)):
        sessions, audio = await measure(args.drops, immediate)
        report(f"{name}: session", sessions)
        report(f"{name}: audio", audio)


if __name__ == "__main__":
    asyncio.run(main())
