"""Offline mode: pocketsphinx re-transcribes the recorded caller audio during replay.

The recogniser is the real one (`PocketsphinxRecognizer`, with the settings the
offline provider runs with): the replay phone feeds it the recorded frames at their
recorded times, its endpointer finds the utterances, and each one is decoded with the
listen state's grammar. What differs from a live call is where decoding runs: here on
the loop's own thread, the moment the endpointer closes an utterance (`InlineDecoder`).
A process pool answers in real time while the replay's clock is virtual, so a
transcript's virtual time would depend on the machine's load; decoded inline it comes
out at the virtual millisecond the utterance ended, on every run. The replay clock
also refuses to move while a recogniser still has an utterance out
(`PocketsphinxRecognizer.decoding`), so no decode can fall behind virtual time.

Decoding inline takes no virtual time, but the live call waited for its decoder
(5–150 ms, more on a loaded machine): `RetimedRecognizer` hands each transcript on at
the time the recording got the same utterance's (same start, within the comparison's
tolerance), so the decisions it causes fall at their recorded times. The text is the
re-made one: a different transcript still makes a different decision. An utterance
the recording does not have comes out at once.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from fsm_voice.clock import Clock, TimerHandle
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import Grammar, SpeechRecognizer, SttListener, Transcript
from fsm_voice.providers.offline_stt import (
    DecodeRequest,
    DecodeResult,
    DecoderPool,
    PocketsphinxRecognizer,
    decode_utterance,
    init_worker,
    vocabulary,
)
from fsm_voice.replay.recording import ReplayInputError

__all__ = [
    "InlineDecoder",
    "RetimedRecognizer",
    "inline_decoder",
    "offline_recognizer",
    "prepare",
]

# The live call's decoder latency that is replayed; a recorded transcript later than
# this after the re-made one is another utterance's.
MAX_LATENCY_MS = 5_000
# Two utterances whose starts are this close are the same one (the endpointer sees the
# same frames; only the recorded frames' arrival jitter moves its start).
SAME_START_MS = 50


class InlineDecoder(DecoderPool):
    """A `DecoderPool` that decodes in this process, at once, on the caller's thread.

    pocketsphinx holds the GIL for the 5–30 ms of a decode: fine for replay, which is
    a batch job, and never what a live server should do.
    """

    def __init__(self) -> None:
        super().__init__(workers=1)
        self._loaded = False
        self._loading = threading.Lock()
        self.decoded = 0  # utterances decoded (a test checks the audio was really used)

    def load(self) -> None:
        """Load the model and the dictionary now (seconds, once per process)."""
        with self._loading:  # replays running side by side may ask at once
            if self._loaded:
                return
            try:
                init_worker()
            except ImportError as error:
                raise ReplayInputError(
                    f"offline replay needs pocketsphinx: pip install 'fsm-voice[offline]' ({error})"
                ) from None
            vocabulary()
            self._loaded = True

    async def warm(self) -> None:
        if not self._loaded:  # loaded: no thread hop (the replay's clock stands still)
            await anyio.to_thread.run_sync(self.load)

    def submit(self, request: DecodeRequest) -> concurrent.futures.Future[DecodeResult]:
        self.load()
        future: concurrent.futures.Future[DecodeResult] = concurrent.futures.Future()
        try:
            future.set_result(decode_utterance(request))
        except Exception as error:  # delivered as the pool would: through the future
            future.set_exception(error)
        self.decoded += 1
        return future

    def heal(self) -> None:
        pass  # nothing to break: no worker processes

    def shutdown(self) -> None:
        pass


_shared: InlineDecoder | None = None


def inline_decoder() -> InlineDecoder:
    """The process's one inline decoder (its model is loaded once, shared by replays)."""
    global _shared
    if _shared is None:
        _shared = InlineDecoder()
    return _shared


async def prepare(decoder: DecoderPool) -> None:
    """Load the decoder and the dictionary before the call: starting must take no time."""
    await anyio.to_thread.run_sync(vocabulary)
    await decoder.warm()


def offline_recognizer(
    events: tuple[EventRecord, ...], clock: Clock, decoder: DecoderPool
) -> RetimedRecognizer:
    """The offline provider's recogniser (its live settings) on `decoder`, retimed."""
    live = PocketsphinxRecognizer(pool=decoder, clock=clock, name="offline")
    return RetimedRecognizer(live, events, clock)


class RetimedRecognizer:
    """Wraps the real recogniser: transcripts come out at their recorded times (see above)."""

    def __init__(
        self, inner: PocketsphinxRecognizer, events: tuple[EventRecord, ...], clock: Clock
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._clock = clock
        self._recorded = deque(
            (int(e.data["start_ms"]), e.t_ms) for e in events if e.kind == "transcript_committed"
        )
        self._held: list[TimerHandle] = []

    @property
    def decoding(self) -> bool:
        return self.inner.decoding

    async def start(self, listener: SttListener) -> None:
        await self.inner.start(_Retiming(listener, self))

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        self.inner.feed(mulaw, t_ms)

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.inner.set_grammar(grammar)

    def set_speaking(self, speaking: bool) -> None:
        self.inner.set_speaking(speaking)

    async def stop(self) -> None:
        for timer in self._held:
            timer.cancel()  # as the live recogniser drops its undelivered decodes
        self._held.clear()
        await self.inner.stop()

    def delay_ms(self, transcript: Transcript) -> int:
        """How long after now the recorded call got this utterance's transcript."""
        start, now = int(transcript.start_ms), self._clock.now_ms()
        recorded = self._recorded
        while recorded and recorded[0][0] < start - SAME_START_MS:
            recorded.popleft()  # an utterance the replay did not hear
        if not recorded or abs(recorded[0][0] - start) > SAME_START_MS:
            return 0
        _, t_ms = recorded.popleft()
        delay = t_ms - now
        return delay if 0 < delay <= MAX_LATENCY_MS else 0

    def hold(self, ms: int, deliver: Callable[[], None]) -> None:
        self._held.append(self._clock.call_later(ms, deliver))


class _Retiming:
    """The listener the real recogniser talks to: passes everything on, transcripts late."""

    def __init__(self, listener: SttListener, owner: RetimedRecognizer) -> None:
        self._listener = listener
        self._owner = owner

    def on_speech_started(self, t_ms: int) -> None:
        self._listener.on_speech_started(t_ms)

    def on_recognizing(self, text: str) -> None:
        self._listener.on_recognizing(text)

    def on_committed(self, transcript: Transcript) -> None:
        delay = self._owner.delay_ms(transcript)
        if delay == 0:
            self._listener.on_committed(transcript)
        else:
            self._owner.hold(delay, lambda: self._listener.on_committed(transcript))

    def on_error(self, reason: str, fatal: bool) -> None:
        self._listener.on_error(reason, fatal)

    def on_state(self, state: str, detail: str) -> None:
        self._listener.on_state(state, detail)


if TYPE_CHECKING:  # mypy checks that they satisfy the protocols

    def _conforms(r: RetimedRecognizer, s: _Retiming) -> tuple[SpeechRecognizer, SttListener]:
        return r, s
