"""Decoding with pocketsphinx: the worker side of the offline recogniser, and its pool.

A `DecoderPool` is a process pool with one pocketsphinx Decoder per worker (stock
language model + phone loop; JSGF grammars cached per worker by content hash). Each
`DecodeRequest` is one whole utterance, decoded by `decode_utterance`; the endpointing
that cuts utterances runs on the event loop in `offline_stt`, which this module
knows nothing about.

Grammar vs free form (the choice, measured in benchmarks/stt_accuracy.py): decode
with the listen state's JSGF grammar; a grammar always returns *some* phrase, so the
result is checked against a phone-loop decode of the same audio. When the grammar's
words cover less than `min_coverage` of the speech the phone loop found, the caller
said something else ("I want to talk to someone"): with `free_form` the stock
language model transcribes it, without it the result is empty (a nomatch).
Confidence is that coverage (capped at 1) for grammar results and pocketsphinx's
posterior for language-model results.

Deterministic: the decoder's feature state (CMN, noise floor) carries over between
utterances, so it is re-initialised before every pass; the same audio gives the same
transcript in any worker, in any order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fsm_voice.audio.mulaw import SAMPLE_RATE
from fsm_voice.audio.resample import float_to_pcm16, pcm16_to_float, resample
from fsm_voice.clock import perf_ms

__all__ = [
    "DecodeRequest",
    "DecodeResult",
    "DecoderPool",
    "decode_utterance",
    "init_worker",
    "model_dir",
    "shared_pool",
]

DECODER_RATE = 16_000
_LM_SEARCH = "_default"  # the name pocketsphinx gives the stock language model
_PHONE_SEARCH = "_phones"


def model_dir() -> Path:
    """The en-US model that pocketsphinx's wheel ships."""
    from pocketsphinx import get_model_path

    return Path(get_model_path()) / "en-us"


# --- the worker side: runs in the pool's processes (or in-process for benchmarks) ---


@dataclass(frozen=True, slots=True)
class DecodeRequest:
    pcm8k: bytes  # int16 little-endian, 8 kHz mono: the whole utterance
    jsgf: str | None = None
    free_form: bool = True
    min_coverage: float = 0.8


@dataclass(frozen=True, slots=True)
class DecodeResult:
    text: str
    confidence: float | None
    source: str  # grammar | lm | nomatch
    alternatives: tuple[str, ...] = ()
    coverage: float | None = None  # grammar words / phone-loop speech (frames)
    decode_ms: float = 0.0  # worker wall time, for the benchmark


_decoder: Any = None
_searches: dict[str, str] = {}  # JSGF text hash → search name, per worker


def init_worker() -> None:
    """Load one Decoder (stock LM + phone loop) for this process."""
    global _decoder
    parent = multiprocessing.parent_process()
    if parent is not None:
        watch = threading.Thread(
            target=_exit_with_parent, args=(parent.sentinel,), name="exit-with-parent"
        )
        watch.daemon = True
        watch.start()
    from pocketsphinx import Decoder

    model = model_dir()
    decoder = Decoder(samprate=DECODER_RATE, loglevel="FATAL")
    decoder.add_allphone_file(_PHONE_SEARCH, str(model / "en-us-phone.lm.bin"))
    _decoder = decoder
    _searches.clear()


def _exit_with_parent(sentinel: int) -> None:
    """End this worker when the process that started it is gone (a server stopped by
    SIGTERM or SIGKILL): the pool's queue has a writer in every worker, so its pipe
    never reports the end, and the worker would wait on it, 140 MB, forever."""
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def ping() -> bool:
    return _decoder is not None


def _grammar_search(jsgf: str) -> str:
    key = hashlib.sha1(jsgf.encode()).hexdigest()[:16]
    name = _searches.get(key)
    if name is None:
        name = f"g_{key}"
        _decoder.add_jsgf_string(name, jsgf)
        _searches[key] = name
    return name


def _run(search: str, pcm16k: bytes) -> tuple[str, float, int]:
    """(text, posterior, frames of words) for one pass over the whole utterance."""
    decoder = _decoder
    decoder.activate_search(search)
    decoder.reinit_feat()  # forget the previous utterance's CMN and noise estimate
    decoder.start_utt()
    decoder.process_raw(pcm16k, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    if hyp is None:
        return "", 0.0, 0
    words = 0
    for seg in decoder.seg():
        if not seg.word.startswith(("<", "[", "+")) and seg.word != "SIL":
            words += seg.end_frame - seg.start_frame + 1
    return str(hyp.hypstr), float(hyp.prob), words


def decode_utterance(request: DecodeRequest) -> DecodeResult:
    """Decode one whole utterance (see the module docstring for the rule)."""
    if _decoder is None:
        init_worker()
    started = perf_ms()
    pcm = np.frombuffer(request.pcm8k, dtype=np.int16)
    pcm16k = float_to_pcm16(resample(pcm16_to_float(pcm), SAMPLE_RATE, DECODER_RATE)).tobytes()
    if request.jsgf is None:
        text, prob, _ = _run(_LM_SEARCH, pcm16k)
        return DecodeResult(text, prob if text else None, "lm", decode_ms=perf_ms() - started)
    g_text, _, g_frames = _run(_grammar_search(request.jsgf), pcm16k)
    _, _, speech_frames = _run(_PHONE_SEARCH, pcm16k)
    coverage = g_frames / speech_frames if speech_frames else 0.0
    if g_text and coverage >= request.min_coverage:
        confidence = min(coverage, 1.0)
        return DecodeResult(g_text, confidence, "grammar", (), coverage, perf_ms() - started)
    alternatives = (g_text,) if g_text else ()
    if not request.free_form:
        return DecodeResult("", None, "nomatch", alternatives, coverage, perf_ms() - started)
    text, prob, _ = _run(_LM_SEARCH, pcm16k)
    lm_confidence = prob if text else None
    return DecodeResult(text, lm_confidence, "lm", alternatives, coverage, perf_ms() - started)


# --- the pool ---


class DecoderPool:
    """A process pool of decoders; loop-agnostic (its futures are concurrent ones)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._warm: list[concurrent.futures.Future[bool]] = []

    def _ensure(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            # spawn, not fork: the server process has threads (log writer, uvicorn).
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
            )
            # One ping per worker starts them all and loads every decoder now,
            # not on a caller's first utterance.
            self._warm = [self._executor.submit(ping) for _ in range(self.workers)]
        return self._executor

    async def warm(self) -> None:
        """Return when every worker has loaded its decoder."""
        self._ensure()
        for future in list(self._warm):
            await asyncio.wrap_future(future)

    def submit(self, request: DecodeRequest) -> concurrent.futures.Future[DecodeResult]:
        return self._ensure().submit(decode_utterance, request)

    def heal(self) -> None:
        """Replace the pool if it is broken (a worker died). Every call sharing the
        pool may ask; only the first finds it broken, so it is replaced once."""
        executor = self._executor
        if executor is None:
            return
        try:
            executor.submit(ping)
        except (BrokenProcessPool, RuntimeError):
            self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_shared: dict[int, DecoderPool] = {}


def shared_pool(workers: int = 2) -> DecoderPool:
    """The process-wide pool of that size (every call of a server shares it)."""
    pool = _shared.get(workers)
    if pool is None:
        pool = _shared[workers] = DecoderPool(workers)
    return pool
