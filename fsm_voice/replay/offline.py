"""Offline mode: pocketsphinx re-transcribes the recorded caller audio during replay.

The recogniser is the real one (`PocketsphinxRecognizer`, with the settings the
offline provider runs with), and its endpointer finds the utterances in the recorded
frames; each is decoded with the listen state's grammar. What differs from a live
call is where decoding runs: here on the loop's own thread, the moment the endpointer
closes an utterance (`InlineDecoder`). A process pool answers in real time while the
replay's clock is virtual, so a transcript's virtual time would depend on the
machine's load; decoded inline it comes out at the virtual millisecond the utterance
closed, on every run. The replay clock also refuses to move while a recogniser still
has an utterance out (`PocketsphinxRecognizer.decoding`).

The live call feeds its recogniser each frame at its place on the line (the call's
first frame's arrival + 20 ms per chunk number, `CallHandle.caller_frame_ms`), which
the log keeps exactly; so the recogniser hears the same audio at the same positions
here. What the log cannot say is when the live recogniser's outputs came out (they
depend on the decoder's real-time pace), so a race the recording won by 4 ms (a
barge-in just before the prompt's marks echoed) could go the other way.
`RetimedRecognizer`:

- hears the call's caller frames `LEAD_MS` ahead of the call (from the phone's facts;
  each frame the call hears moves it on), on the live call's frame grid;
- holds each output (speech start, transcript) for the time the recording got the
  same utterance's (matched in order, by utterance start within `SAME_UTTERANCE_MS`),
  or, when the recording has no such utterance, for its natural time: when the call
  hears the frame that made it. Hearing ahead, a re-made output is never late for
  its recorded time; the text is the re-made one, so a different transcript still
  makes a different decision.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from fsm_voice.audio.mulaw import FRAME_MS
from fsm_voice.clock import Clock, TimerHandle
from fsm_voice.providers.base import Grammar, SpeechRecognizer, SttListener, Transcript
from fsm_voice.providers.offline_stt import (
    DecodeRequest,
    DecodeResult,
    DecoderPool,
    PocketsphinxRecognizer,
)
from fsm_voice.replay.facts import Fact
from fsm_voice.replay.inline_decoder import InlineDecoder, inline_decoder, prepare
from fsm_voice.replay.views import RecordingViews

__all__ = [
    "LEAD_MS",
    "InlineDecoder",
    "RetimedRecognizer",
    "heard_frames",
    "inline_decoder",
    "offline_recognizer",
    "prepare",
]

# How far ahead of the call the recogniser hears: more than the live recogniser's
# outputs can have come before the frame times replay rebuilds (arrival jitter).
LEAD_MS = 200
# The live call's latency that is replayed; a recorded output later than this after
# the re-made one's natural time is another utterance's.
MAX_LATENCY_MS = 5_000
# Two utterances whose starts are this close are the same one: the endpointer saw the
# same frames, placed on a timeline that may differ by the live feed's padding.
SAME_UTTERANCE_MS = 300


def heard_frames(facts: Sequence[Fact]) -> list[Fact]:
    """The caller frames among `facts` until the stream stops or the socket closes."""
    frames: list[Fact] = []
    for fact in facts:
        if fact.kind == "close" or (fact.message is not None and fact.message["event"] == "stop"):
            break
        if fact.kind == "media":
            frames.append(fact)
    return frames


def offline_recognizer(
    views: RecordingViews, heard: Sequence[Fact], clock: Clock, decoder: DecoderPool
) -> RetimedRecognizer:
    """The offline provider's recogniser (its live settings) on `decoder`, retimed.

    `heard`: the caller frames the call can hear (the phone's media facts, up to the
    stream's stop or close), which the recogniser hears `LEAD_MS` ahead of the call.
    """
    return RetimedRecognizer(views, heard, clock, decoder)


class _Recorded:
    """One kind of the recording's recogniser outputs, matched in utterance order."""

    def __init__(self, outputs: Iterable[tuple[int, int]]) -> None:
        self._left = deque(outputs)  # (utterance start, when the recording got it)

    def time_of(self, start_ms: int) -> int | None:
        """When the recording got the output of the utterance starting at `start_ms`."""
        left = self._left
        while left and left[0][0] < start_ms - SAME_UTTERANCE_MS:
            left.popleft()  # an utterance the replay did not hear
        if left and abs(left[0][0] - start_ms) <= SAME_UTTERANCE_MS:
            return left.popleft()[1]
        return None


class _NotingPool(DecoderPool):
    """The decoder, and a note of the call time of each utterance sent to it."""

    def __init__(self, decoder: DecoderPool, noted: Callable[[], None]) -> None:
        super().__init__(decoder.workers)
        self.decoder = decoder
        self._noted = noted

    async def warm(self) -> None:
        await self.decoder.warm()

    def submit(self, request: DecodeRequest) -> concurrent.futures.Future[DecodeResult]:
        self._noted()
        return self.decoder.submit(request)

    def heal(self) -> None:
        self.decoder.heal()

    def shutdown(self) -> None:
        pass  # the decoder is the caller's (shared by replays)


class RetimedRecognizer:
    """The real recogniser, hearing the call's audio ahead; outputs at their times (above)."""

    def __init__(
        self,
        views: RecordingViews,
        heard: Sequence[Fact],
        clock: Clock,
        decoder: DecoderPool,
    ) -> None:
        self.inner = PocketsphinxRecognizer(
            pool=_NotingPool(decoder, self._utterance_closed), clock=clock, name="offline"
        )
        self.name = self.inner.name
        self._clock = clock
        self._frames = heard
        self._next: int | None = None  # the next frame to hear (None: the call hears none yet)
        self._grid = (0, 0)  # (call ms, frame number) of the call's first caller frame
        self._hearing_ms = 0  # the call time of the frame being heard now
        self._closed_at: deque[int] = deque()  # call times of the utterances out to decode
        self._speech = _Recorded((s.at_ms, s.t_ms) for s in views.speech_starts)
        self._transcripts = _Recorded(
            (int(h.start_ms), h.t_ms) for h in views.transcripts if h.committed
        )
        self._last_ms = 0  # outputs keep their order
        self._held: list[TimerHandle] = []
        self._waiting = 0  # outputs held for their time, not reported yet

    @property
    def decoding(self) -> bool:
        return self.inner.decoding

    async def start(self, listener: SttListener) -> None:
        await self.inner.start(_Retiming(listener, self))

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        """The call heard a frame: the recogniser hears on, to `LEAD_MS` ahead of it."""
        if self._next is None:
            self._next = self._first_heard(mulaw, t_ms)
            if self._frames:  # the live call's grid: its first frame's arrival, numbers on
                first = self._frames[0]
                self._grid = (first.t_ms, first.frame)
        self._hear_until(self._clock.now_ms() + LEAD_MS)

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.inner.set_grammar(grammar)

    def set_speaking(self, speaking: bool) -> None:
        self.inner.set_speaking(speaking)

    async def stop(self) -> None:
        for timer in self._held:
            timer.cancel()  # as the live recogniser drops what it has not delivered
        self._held.clear()
        self._waiting = 0
        await self.inner.stop()

    # --- hearing ahead ---

    def _first_heard(self, mulaw: bytes, t_ms: int) -> int:
        frames = self._frames
        later = [i for i, f in enumerate(frames) if f.t_ms >= t_ms]
        same = [i for i in later if frames[i].t_ms == t_ms and frames[i].payload == mulaw]
        return same[0] if same else (later[0] if later else len(frames))

    def _hear_until(self, until_ms: int) -> None:
        frames, (grid_ms, grid_frame) = self._frames, self._grid
        assert self._next is not None
        while self._next < len(frames) and frames[self._next].t_ms <= until_ms:
            frame = frames[self._next]
            self._next += 1
            self._hearing_ms = frame.t_ms
            # On the frame grid, as the live call feeds it (`CallHandle.caller_frame_ms`):
            # only lost frames make gaps. (Runtimes before it fed arrival times, which
            # a steady line puts within a few ms of this grid.)
            self.inner.feed(frame.payload, grid_ms + FRAME_MS * (frame.frame - grid_frame))

    def _utterance_closed(self) -> None:
        self._closed_at.append(self._hearing_ms)

    # --- outputs, at their times ---

    def deliver(self, natural_ms: int, recorded_ms: int | None, report: Callable[[], None]) -> None:
        """Report at the recorded time if there is one, else at the natural one."""
        at_ms = natural_ms
        if recorded_ms is not None and recorded_ms <= natural_ms + MAX_LATENCY_MS:
            at_ms = recorded_ms
        now = self._clock.now_ms()
        at_ms = max(at_ms, now, self._last_ms)
        self._last_ms = at_ms
        if at_ms == now and not self._waiting:
            report()
            return
        self._waiting += 1

        def on_time() -> None:
            self._waiting -= 1
            report()

        self._held.append(self._clock.call_later(at_ms - now, on_time))

    def speech_started(self, at_ms: int, report: Callable[[], None]) -> None:
        self.deliver(self._hearing_ms, self._speech.time_of(at_ms), report)

    def committed(self, transcript: Transcript, report: Callable[[], None]) -> None:
        natural = self._closed_at.popleft() if self._closed_at else self._clock.now_ms()
        self.deliver(natural, self._transcripts.time_of(int(transcript.start_ms)), report)


class _Retiming:
    """The listener the real recogniser talks to: results go on at their times."""

    def __init__(self, listener: SttListener, owner: RetimedRecognizer) -> None:
        self._listener = listener
        self._owner = owner

    def on_speech_started(self, t_ms: int) -> None:
        self._owner.speech_started(t_ms, partial(self._listener.on_speech_started, t_ms))

    def on_recognizing(self, text: str) -> None:
        self._listener.on_recognizing(text)  # (pocketsphinx has no partial results)

    def on_committed(self, transcript: Transcript) -> None:
        self._owner.committed(transcript, partial(self._listener.on_committed, transcript))

    def on_error(self, reason: str, fatal: bool) -> None:
        self._listener.on_error(reason, fatal)

    def on_state(self, state: str, detail: str) -> None:
        self._listener.on_state(state, detail)


if TYPE_CHECKING:  # mypy checks that they satisfy the protocols

    def _conforms(r: RetimedRecognizer, s: _Retiming) -> tuple[SpeechRecognizer, SttListener]:
        return r, s
