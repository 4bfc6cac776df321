"""Offline speech-to-text with pocketsphinx (its wheel ships the en-US model).

Path of the caller's audio:

    μ-law 8 kHz frames ─▶ int16 ─▶ pocketsphinx Endpointer (8 kHz, 20 ms = one Twilio
    frame; on the event loop: a WebRTC-style VAD costs microseconds per frame)
      └─ one whole utterance ─▶ worker process: float32 ─▶ soxr 16 kHz (float32: the
         int16 path dithers) ─▶ int16 ─▶ Decoder (grammar, phone loop, language model)

Whole utterances are decoded at once, after the endpoint: far more accurate than
streaming into a cold decoder, and ~5–30 ms of CPU per utterance with a grammar.
pocketsphinx holds the GIL while decoding, so decoders live in a process pool
(`offline_decoder`: the worker side, and the grammar-vs-free-form rule), never on
the loop. This module is the call's side: endpointing, the JSGF grammar built from
the listen state's phrases, and delivering transcripts in utterance order.
No partial hypotheses (`on_recognizing` is never called): a partial would cost a
decode per interval for little gain on short telephone answers.

Workers are spawned (not forked: a server has threads), so a script that creates a
recogniser must keep its top level under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fsm_voice.audio.mulaw import SAMPLE_RATE, decode
from fsm_voice.clock import Clock, SystemClock, TimerHandle
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import (
    Grammar,
    SpeechRecognizer,
    StreamPosition,
    SttListener,
    Transcript,
)
from fsm_voice.providers.driving import ProviderDriver

# The decoding side lives in `offline_decoder`; its names are importable from here too.
from fsm_voice.providers.offline_decoder import (
    DecodeRequest,
    DecodeResult,
    DecoderPool,
    decode_utterance,
    init_worker,
    model_dir,
    shared_pool,
)

__all__ = [
    "DecodeRequest",
    "DecodeResult",
    "DecoderPool",
    "PocketsphinxRecognizer",
    "build_jsgf",
    "decode_utterance",
    "init_worker",
    "normalize_phrase",
    "shared_pool",
]

log = logging.getLogger(__name__)

_FRAME_S = 0.02  # one Twilio frame; the Endpointer takes 10, 20 or 30 ms


# --- grammars (built in the call's process; only the JSGF text crosses to workers) ---

_ONES_WORDS = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
    *("seventeen", "eighteen", "nineteen"),
)
_TENS_WORDS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _number_words(n: int) -> str:
    if n < 20:
        return _ONES_WORDS[n]
    if n < 100:
        return _TENS_WORDS[n // 10] + ("" if n % 10 == 0 else " " + _ONES_WORDS[n % 10])
    return " ".join(_ONES_WORDS[int(d)] for d in str(n))  # 123 → "one two three", as read out


def normalize_phrase(text: str) -> list[str]:
    """Lowercase words as the recogniser spells them: digits become words ("9am" →
    "nine am", "2 p.m." → "two pm"), punctuation goes, inner apostrophes stay."""
    text = text.lower().replace("&", " and ")
    text = re.sub(r"\b([ap])\.m\.", r"\1m", text)  # "p.m." → "pm", one dictionary word
    text = re.sub(r"(\d+)", r" \1 ", text)
    text = re.sub(r"[^a-z0-9']+", " ", text)
    words: list[str] = []
    for token in text.split():
        token = token.strip("'")
        if token.isdigit():
            words.extend(_number_words(int(token)).split())
        elif token:
            words.append(token)
    return words


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Every word of the model's pronunciation dictionary (alternates folded)."""
    words: set[str] = set()
    with open(model_dir() / "cmudict-en-us.dict", encoding="utf-8") as lines:
        for line in lines:
            head = line.split(" ", 1)[0]
            words.add(head.split("(", 1)[0])
    return frozenset(words)


def build_jsgf(phrases: Iterable[str], vocab: frozenset[str]) -> tuple[str | None, list[str]]:
    """A JSGF grammar with one alternative per phrase, and the words it had to drop.

    A phrase with a word outside the dictionary is dropped whole: the decoder cannot
    say it, and half a phrase would match the wrong things. None if nothing is left.
    """
    kept: list[str] = []
    oov: list[str] = []
    for phrase in phrases:
        words = normalize_phrase(phrase)
        missing = [w for w in words if w not in vocab]
        oov.extend(w for w in missing if w not in oov)
        alternative = " ".join(words)
        if words and not missing and alternative not in kept:
            kept.append(alternative)
    if not kept:
        return None, oov
    body = " | ".join(f"( {alternative} )" for alternative in kept)
    return f"#JSGF V1.0;\ngrammar utterance;\npublic <utterance> = {body};\n", oov


# --- the recogniser: one per call ---


@dataclass(slots=True)
class _Pending:
    start_ms: int
    end_ms: int
    future: concurrent.futures.Future[DecodeResult] | None  # None: the pool was broken


class PocketsphinxRecognizer:
    """SpeechRecognizer for one call: endpointing here, decoding in the pool."""

    def __init__(
        self,
        *,
        pool: DecoderPool | None = None,
        workers: int = 2,
        window_s: float = 0.3,
        ratio: float = 0.9,
        vad_mode: int = 0,  # 0 loose … 3 strict
        min_coverage: float = 0.8,
        max_utterance_ms: int = 15_000,
        max_retries: int = 3,
        clock: Clock | None = None,
        jitter: Callable[[], float] = lambda: 0.5,
        name: str = "offline",
    ) -> None:
        self.name = name
        self.pool = pool if pool is not None else shared_pool(workers)
        self.min_coverage = min_coverage
        self.max_utterance_ms = max_utterance_ms
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.machine = pm.ProviderMachine(f"stt:{name}", jitter=jitter, max_retries=max_retries)
        self.oov_words: list[str] = []  # words the current grammar had to drop
        self.speaking = False
        self._ep_args = (window_s, ratio, vad_mode)
        self._endpointer: Any = None
        self._listener: SttListener | None = None
        self._grammar: Grammar | None = None
        self._jsgf: str | None = None
        self._position = StreamPosition()  # the endpointer's stream in call time
        self._buffer = b""  # int16 not yet a whole endpointer frame
        self._utterance: list[bytes] = []
        self._utterance_start_ms = 0
        self._pending: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._deliver_task: asyncio.Task[None] | None = None
        self._retry_timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # keeps fire-and-forget tasks alive
        self._connect_due: int | None = None  # the attempt a Connect asked for, not begun
        self._driver = ProviderDriver(
            self.machine, on_state=self._listener_state, execute=self._execute
        )

    # --- SpeechRecognizer ---

    async def start(self, listener: SttListener) -> None:
        from pocketsphinx import Endpointer

        self._listener = listener
        window_s, ratio, vad_mode = self._ep_args
        self._endpointer = Endpointer(
            window=window_s,
            ratio=ratio,
            vad_mode=vad_mode,
            sample_rate=SAMPLE_RATE,
            frame_length=_FRAME_S,
        )
        self._wakeup = asyncio.Event()
        self._deliver_task = asyncio.ensure_future(self._deliver())
        if vocabulary.cache_info().currsize == 0:  # ~100 ms of parsing: not on the loop
            # (Only the first time: replay loads it beforehand, so that starting takes
            # no real time while the call's virtual clock stands still.)
            await asyncio.to_thread(vocabulary)
        self._driver.feed(pm.Start(), "warming decoders")
        await self._connect_if_due()  # starting ends once the decoders are warm (or failed)

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        ep = self._endpointer
        if ep is None or self.machine.state in pm.FINAL or not mulaw:
            return
        gap_ms = self._position.advance(t_ms, len(mulaw))
        if gap_ms:  # lost frames: keep the endpointer's time in step with the call's
            self._push(bytes(gap_ms * SAMPLE_RATE // 1000 * 2))
        self._push(decode(mulaw).tobytes())

    @property
    def decoding(self) -> bool:
        """Whether an utterance has gone to the decoder and its transcript is not out yet."""
        return bool(self._pending)

    def set_grammar(self, grammar: Grammar | None) -> None:
        self._grammar = grammar
        self._jsgf, self.oov_words = (None, [])
        if grammar is not None and grammar.phrases:
            self._jsgf, self.oov_words = build_jsgf(grammar.phrases, vocabulary())
            if self.oov_words:
                log.warning("grammar %s: not in the dictionary: %s", grammar.name, self.oov_words)

    def set_speaking(self, speaking: bool) -> None:
        # The inbound track carries only the caller, and barge-in needs speech heard
        # during prompts, so nothing is discarded.
        self.speaking = speaking

    async def stop(self) -> None:
        self._driver.feed(pm.Stop(), "stopped")
        self._utterance = []
        for pending in self._pending:
            if pending.future is not None:
                pending.future.cancel()
        self._pending.clear()
        task, self._deliver_task = self._deliver_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- endpointing (on the loop) ---

    def _push(self, pcm: bytes) -> None:
        ep = self._endpointer
        self._buffer += pcm
        size = ep.frame_bytes
        while len(self._buffer) >= size:
            frame, self._buffer = self._buffer[:size], self._buffer[size:]
            was_in_speech = ep.in_speech
            speech = ep.process(frame)
            if speech is None:
                continue
            if not was_in_speech:
                self._utterance_start_ms = self._call_ms(ep.speech_start)
                if self._listener is not None:
                    self._listener.on_speech_started(self._utterance_start_ms)
            self._utterance.append(speech)
            if not ep.in_speech:
                self._dispatch(self._call_ms(ep.speech_end))
            elif len(self._utterance) * _FRAME_S * 1000 >= self.max_utterance_ms:
                end_ms = self._utterance_start_ms + self.max_utterance_ms
                self._dispatch(end_ms)
                self._utterance_start_ms = end_ms  # the caller goes on: same speech

    def _call_ms(self, stream_s: float) -> int:
        return (self._position.origin_ms or 0) + round(stream_s * 1000)

    def _dispatch(self, end_ms: int) -> None:
        pcm, self._utterance = b"".join(self._utterance), []
        grammar = self._grammar
        request = DecodeRequest(
            pcm, self._jsgf, grammar.free_form if grammar else True, self.min_coverage
        )
        future: concurrent.futures.Future[DecodeResult] | None
        try:
            future = self.pool.submit(request) if self.machine.is_streaming else None
        except (BrokenProcessPool, RuntimeError):
            future = None
        self._pending.append(_Pending(self._utterance_start_ms, end_ms, future))
        if self._wakeup is not None:
            self._wakeup.set()

    # --- results, in utterance order (the pool may finish them out of order) ---

    async def _deliver(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            pending = self._pending[0]
            result: DecodeResult | None = None
            failure = "decoder pool unavailable"
            if pending.future is not None:
                try:
                    result = await asyncio.wrap_future(pending.future)
                except BrokenProcessPool as exc:
                    failure = f"decoder pool died: {exc}"
                except concurrent.futures.CancelledError:
                    failure = "decode cancelled"
            if self._pending and self._pending[0] is pending:
                self._pending.popleft()
            if result is not None and self._listener is not None:
                transcript = Transcript(
                    result.text,
                    result.confidence,
                    pending.start_ms,
                    pending.end_ms,
                    result.alternatives,
                )
                self._listener.on_committed(transcript)
            elif result is None and self.machine.is_streaming:
                self._driver.feed(pm.Dropped(failure), failure)

    # --- the provider machine's effects ---

    def _listener_state(self) -> pm.StateCallback | None:
        return self._listener.on_state if self._listener is not None else None

    def _execute(self, effect: pm.ProviderEffect) -> None:
        listener = self._listener
        if isinstance(effect, pm.Connect):
            # Warming is async: whoever fed the event (start, the retry timer) runs it,
            # in the same task as before, once the driver is done with this step.
            self._connect_due = effect.attempt
        elif isinstance(effect, pm.ScheduleRetry):
            self._retry_timer = self.clock.call_later(effect.delay_ms, self._on_retry_timer)
        elif isinstance(effect, pm.CancelRetry) and self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        elif isinstance(effect, pm.ReportError) and listener is not None:
            listener.on_error(effect.reason, effect.fatal)
        # Disconnect: the pool is shared by every call; it outlives this one.

    async def _connect_if_due(self) -> None:
        attempt, self._connect_due = self._connect_due, None
        if attempt is not None:
            await self._connect(attempt)

    async def _connect(self, attempt: int) -> None:
        if attempt > 1:
            self.pool.heal()
        try:
            await self.pool.warm()
        except Exception as exc:  # a worker that cannot load its model
            lines = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {lines[0] if lines else ''}"
            self._driver.feed(pm.Dropped(reason), reason)
            return
        self._driver.feed(pm.Connected(), f"{self.pool.workers} workers")

    def _on_retry_timer(self) -> None:
        self._retry_timer = None
        self._driver.feed(pm.Retry(), "retrying")
        task = asyncio.ensure_future(self._connect_if_due())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


if TYPE_CHECKING:  # mypy checks that it satisfies the protocol
    _recognizer: SpeechRecognizer = PocketsphinxRecognizer()
