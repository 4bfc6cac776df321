"""Offline speech figures: STT word accuracy through the telephone path, with each
listen state's grammar vs the stock language model; decode latency; piper's time to
first audio and real-time factor.

    .venv/bin/python benchmarks/stt_accuracy.py

The caller lines are spoken by piper (deterministic settings), sent through the
phone's path (22.05 kHz → 8 kHz μ-law, 20 ms frames) and endpointed and decoded by the
same code a call uses. Synthetic speech is cleaner than a real caller: read the
accuracy as an upper bound, and the grammar-vs-LM gap as the point.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np

from fsm_voice.audio.mulaw import decode
from fsm_voice.providers.offline_stt import (
    DecodeRequest,
    DecodeResult,
    DecoderPool,
    build_jsgf,
    normalize_phrase,
    vocabulary,
)
from fsm_voice.providers.offline_tts import PiperSynthesizer

GRAMMARS: dict[str, tuple[str, ...]] = {
    "appointment": (
        *("yes", "no", "reschedule", "cancel", "confirm"),
        *("monday", "tuesday", "wednesday", "thursday", "friday"),
        *("nine am", "ten am", "eleven am", "two pm", "three pm", "four pm"),
    ),
    "survey": ("one", "two", "three", "four", "five", "yes", "no"),
    "ivr": ("billing", "technical support", "sales", "agent", "representative", "operator"),
}

# (machine, what the caller says)
LINES: list[tuple[str, str]] = [
    ("appointment", "yes"),
    ("appointment", "no"),
    ("appointment", "reschedule"),
    ("appointment", "cancel"),
    ("appointment", "confirm"),
    ("appointment", "tuesday"),
    ("appointment", "thursday"),
    ("appointment", "friday"),
    ("appointment", "nine am"),
    ("appointment", "two pm"),
    ("appointment", "ten am"),
    ("survey", "one"),
    ("survey", "three"),
    ("survey", "four"),
    ("survey", "five"),
    ("survey", "yes"),
    ("survey", "no"),
    ("ivr", "billing"),
    ("ivr", "technical support"),
    ("ivr", "agent"),
    ("ivr", "representative"),
    ("ivr", "sales"),
]

PROMPTS = [
    "Hello, this is the clinic calling about your appointment on Tuesday at nine am.",
    "Would you like to confirm, reschedule, or cancel it?",
    "Thanks, goodbye.",
]


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]


async def decode_all(
    pool: DecoderPool, audio: dict[str, bytes], with_grammar: bool
) -> list[tuple[str, DecodeResult, float]]:
    out: list[tuple[str, DecodeResult, float]] = []
    for machine, line in LINES:
        jsgf = build_jsgf(GRAMMARS[machine], vocabulary())[0] if with_grammar else None
        pcm = decode(audio[line]).tobytes()
        started = time.perf_counter()
        result = await asyncio.wrap_future(pool.submit(DecodeRequest(pcm, jsgf)))
        out.append((line, result, (time.perf_counter() - started) * 1000))
    return out


def report(title: str, results: list[tuple[str, DecodeResult, float]]) -> None:
    errors = words = 0
    misses: list[str] = []
    for line, result, _ in results:
        reference = normalize_phrase(line)
        e = word_errors(reference, result.text.split())
        errors += e
        words += len(reference)
        if e:
            misses.append(f"{line!r} → {result.text!r}")
    round_trips = [ms for *_, ms in results]
    in_worker = [r.decode_ms for _, r, _ in results]
    print(f"{title}: word accuracy {100 * (1 - errors / words):.1f} % ({words} words)")
    print(
        f"  decode per utterance: p50 {statistics.median(in_worker):.0f} ms in the worker, "
        f"round trip p50 {statistics.median(round_trips):.0f} ms, "
        f"max {max(round_trips):.0f} ms"
    )
    for miss in misses:
        print(f"  miss: {miss}")


async def main() -> None:
    for split in (True, False):
        voice = PiperSynthesizer(deterministic=True, split_clauses=split)
        await voice.start()
        async for _ in voice.synthesize("Warm up."):
            pass
        firsts: list[float] = []
        rtfs: list[float] = []
        for prompt in PROMPTS:
            started = time.perf_counter()
            first = 0.0
            frames = 0
            async for _ in voice.synthesize(prompt):
                if frames == 0:
                    first = (time.perf_counter() - started) * 1000
                frames += 1
            total = time.perf_counter() - started
            firsts.append(first)
            rtfs.append(total / (frames * 0.02))
        label = "clauses" if split else "sentences"
        print(
            f"piper ({label}): time to first audio "
            + ", ".join(f"{ms:.0f}" for ms in firsts)
            + f" ms; real-time factor {statistics.mean(rtfs):.3f}"
        )
        await voice.stop()

    voice = PiperSynthesizer(deterministic=True)
    voice.load()
    audio = {
        line: b"".join(voice.synthesize_piece(p) for p in voice.pieces(line)) for _, line in LINES
    }
    pool = DecoderPool(2)
    started = time.perf_counter()
    await pool.warm()
    print(f"decoder pool warm-up: {(time.perf_counter() - started) * 1000:.0f} ms (2 workers)")
    report("grammar (free-form fallback)", await decode_all(pool, audio, True))
    report("stock language model", await decode_all(pool, audio, False))
    pool.shutdown()
    rms = np.sqrt(np.mean(decode(b"".join(audio.values())).astype(np.float64) ** 2))
    print(f"({len(LINES)} lines, telephone-path RMS {rms:.0f})")


if __name__ == "__main__":
    asyncio.run(main())
