"""The two provider protocols every speech adapter implements (offline, scripted, cloud).

Both speak 8 kHz μ-law, the telephone's own format, so nothing transcodes on the
hot path unless a provider needs another rate (then it resamples with soxr, float32).

STT: the runtime feeds caller frames (20 ms, 160 bytes) as they arrive and receives
results through an `SttListener` whose methods are always called on the event loop.
TTS: the runtime asks for one sentence at a time and streams its audio as it is
synthesised; closing the iterator early (barge-in) stops the synthesis itself.

Each provider reports its connection life through `on_state` with the provider
machine's states (idle → connecting → streaming → reconnecting → closed | error), so
the runtime can log every transition (see `fsm_voice.providers.machine`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Grammar",
    "SpeechRecognizer",
    "SpeechSynthesizer",
    "StreamPosition",
    "SttListener",
    "Transcript",
    "report_discarded",
    "split_at_clause_breaks",
]

_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")
_BYTES_PER_MS = 8  # 8 kHz μ-law: one byte per sample
_MIN_GAP_MS = 20  # one lost frame
_MAX_GAP_MS = 1000  # a longer outage is not replayed as silence


@dataclass(frozen=True, slots=True)
class Grammar:
    """What the caller is expected to say in the current listen state.

    `phrases` are whole utterances the recogniser should prefer (built from the
    conversation machine's intents and hints); `free_form` keeps the stock language
    model as the fallback for anything else.
    """

    phrases: tuple[str, ...] = ()
    free_form: bool = True
    name: str = "default"


@dataclass(frozen=True, slots=True)
class Transcript:
    """A committed utterance. Times are ms since the call started (caller's track)."""

    text: str
    confidence: float | None = None
    start_ms: int = 0  # when speech began (the endpointer's view)
    end_ms: int = 0  # when speech ended
    alternatives: tuple[str, ...] = field(default=())


class SttListener(Protocol):
    """Receives a recogniser's output. Always called on the event loop thread.

    Optional (looked up with `getattr`, so older listeners need not have it):
    `on_discarded(transcript, reason)` for a result the recogniser dropped on purpose,
    e.g. `"echo"`: the agent's own voice heard just after it stopped speaking.
    """

    def on_speech_started(self, t_ms: int) -> None:
        """Voice activity began (barge-in is decided from this)."""

    def on_recognizing(self, text: str) -> None:
        """An interim hypothesis; may change."""

    def on_committed(self, transcript: Transcript) -> None:
        """A final transcript for one utterance (possibly empty text: noise)."""

    def on_error(self, reason: str, fatal: bool) -> None:
        """A failure; `fatal` means the provider gave up (after its retries)."""

    def on_state(self, state: str, detail: str) -> None:
        """The provider machine moved to `state` (idle, connecting, streaming, ...)."""


def report_discarded(listener: SttListener, transcript: Transcript, reason: str) -> None:
    """Tell `listener` about a dropped result, if it has the optional `on_discarded`."""
    on_discarded = getattr(listener, "on_discarded", None)
    if on_discarded is not None:
        on_discarded(transcript, reason)


@dataclass(slots=True)
class StreamPosition:
    """Where a recogniser's audio stream sits in the call, so stream time stays call time.

    The first frame fed fixes `origin_ms` (the call time of the stream's time 0);
    `advance` then says how much audio was lost on the line before each frame, for
    the recogniser to fill with silence.
    """

    origin_ms: int | None = None
    next_ms: int = 0  # call time the next frame should carry

    def advance(self, t_ms: int, mulaw_bytes: int) -> int:
        """A frame of `mulaw_bytes` at call time `t_ms` is fed: the ms of silence to put
        before it (0 under one frame; at most 1 s)."""
        if self.origin_ms is None:
            self.origin_ms = self.next_ms = t_ms
        gap_ms = min(t_ms - self.next_ms, _MAX_GAP_MS)
        self.next_ms = max(self.next_ms, t_ms) + mulaw_bytes // _BYTES_PER_MS
        return gap_ms if gap_ms >= _MIN_GAP_MS else 0


class SpeechRecognizer(Protocol):
    """Speech-to-text for one call."""

    name: str

    async def start(self, listener: SttListener) -> None:
        """Connect (load models, open sockets); returns when streaming."""

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        """One caller frame at call time `t_ms`. Never blocks the loop."""

    def set_grammar(self, grammar: Grammar | None) -> None:
        """The expectations of the current listen state (None: free form)."""

    def set_speaking(self, speaking: bool) -> None:
        """The agent is (not) speaking: providers may discard echo around it."""

    async def stop(self) -> None:
        """Flush nothing, release everything; idempotent."""


class SpeechSynthesizer(Protocol):
    """Text-to-speech, shared by the calls of one process (it must be re-entrant)."""

    name: str

    async def start(self) -> None:
        """Load the voice / open the connection; idempotent."""

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Stream 8 kHz μ-law for `text` (one sentence) as it is produced.

        Chunks may be any length. Closing the iterator early (`aclose`) must stop the
        synthesis, not just the forwarding.
        """

    async def stop(self) -> None:
        """Release the voice; idempotent."""


def split_sentences(text: str) -> Sequence[str]:
    """Split a prompt into sentences so the first audio leaves early and marks can
    tell which sentences the caller actually heard."""
    out: list[str] = []
    current: list[str] = []
    for i, char in enumerate(text):
        current.append(char)
        at_end = i + 1 == len(text) or text[i + 1].isspace()
        if char in ".!?" and at_end:
            sentence = "".join(current).strip()
            if sentence:
                out.append(sentence)
            current = []
    tail = "".join(current).strip()
    if tail:
        out.append(tail)
    return out


def split_at_clause_breaks(sentence: str) -> list[str]:
    """Cut a sentence after every `,` `;` `:` followed by space (the TTS adapters then
    join or re-cut the pieces to their own size)."""
    return _CLAUSE_BREAK.split(sentence)
