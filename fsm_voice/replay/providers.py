"""Recorded stand-ins for the outside world: recogniser, synthesiser, telephony, hooks.

In recorded mode nothing outside the machines runs: each stand-in answers with what
the recording says, at the time it says. Requests beyond the recording (a changed
machine asks for something new) get a neutral answer, so the replay runs on and the
comparison reports where it went another way.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS, SILENCE_BYTE
from fsm_voice.clock import Clock
from fsm_voice.conversation.hooks import HookContext, HookResult
from fsm_voice.conversation.runner import run_hook
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import Grammar, SttListener, Transcript, split_sentences

__all__ = [
    "RecordedHooks",
    "RecordedRecognizer",
    "RecordedSynthesizer",
    "RecordedTelephony",
    "recorded_sentences",
    "replay_notes",
    "synthesizer_name",
]

_SILENCE = bytes([SILENCE_BYTE])
_MS_PER_CHAR = 65  # a new sentence's length: about the pace of speech


async def _at(clock: Clock, t_ms: int, t0: int) -> None:
    """Wait until `t_ms` into the call (not at all if that is now or past)."""
    delay = t_ms - (clock.now_ms() - t0)
    if delay > 0:
        await clock.sleep(delay)


async def _forever() -> None:
    await anyio.Event().wait()  # until cancelled, as an unfinished recorded request was


class RecordedRecognizer:
    """Emits the recorded stt events; the replay feeds it and ignores what it hears."""

    def __init__(
        self, at_start: list[EventRecord], at_stop: list[EventRecord], name: str | None = None
    ) -> None:
        self.name = name or "recorded"  # the live recogniser's, where the log names it
        self._at_start = at_start
        self._at_stop = at_stop
        self.listener: SttListener | None = None
        self.grammars: list[Grammar | None] = []

    async def start(self, listener: SttListener) -> None:
        self.listener = listener
        for event in self._at_start:
            self.emit(event)

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        pass  # recorded mode: the transcripts come from the log, not from the audio

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.grammars.append(grammar)

    def set_speaking(self, speaking: bool) -> None:
        pass

    async def stop(self) -> None:
        for event in self._at_stop:
            self.emit(event)
        self.listener = None

    def emit(self, event: EventRecord) -> None:
        """Deliver one recorded stt event to the listener, as the provider did."""
        listener, d = self.listener, event.data
        if listener is None:
            return
        if event.kind == "speech_started":
            listener.on_speech_started(int(d["at_ms"]))
        elif event.kind == "transcript_partial":
            listener.on_recognizing(str(d["text"]))
        elif event.kind == "transcript_committed":
            alternatives = tuple(str(a) for a in d.get("alternatives", ()))
            transcript = Transcript(
                str(d["text"]), d.get("confidence"), d["start_ms"], d["end_ms"], alternatives
            )
            listener.on_committed(transcript)
        elif event.kind == "provider_error":
            listener.on_error(str(d["reason"]), bool(d["fatal"]))
        elif event.kind == "provider_state_entered":
            listener.on_state(str(d["state"]), str(d.get("detail", "")))


@dataclass(frozen=True, slots=True)
class RecordedSentence:
    text: str
    audio: bytes | None  # None: synthesis never finished and what went out is unknown
    first_ms: int  # when its first audio left
    end_ms: int  # when its last audio left (its mark follows)
    pieces: tuple[tuple[int, int], ...] = ()  # (t_ms, bytes) of each send, when logged
    cut: bool = False  # stopped mid-synthesis after `pieces` (a barge-in, a hang-up)
    error: str | None = None  # ...because synthesis failed with this ("Type: message")


# Said in the replay's notes when an old recording leaves a stopped sentence's audio out.
UNLOGGED_CUT = (
    "recorded before stopped sentences were logged (no `sentence_cut`): a sentence "
    "stopped mid-synthesis is replayed as sending nothing, so decisions around a "
    "barge-in or hang-up during it may differ"
)


def recorded_sentences(events: tuple[EventRecord, ...], agent: bytes) -> list[RecordedSentence]:
    """Each synthesised sentence in request order, with its audio cut from the agent track."""
    texts: dict[str, Sequence[str]] = {}
    first: dict[str, int] = {}
    done: dict[tuple[str, int], EventRecord] = {}
    order: list[str] = []
    for e in events:
        if e.kind == "say_started":
            texts[e.data["prompt_id"]] = split_sentences(str(e.data["text"]))
            order.append(e.data["prompt_id"])
        elif e.kind == "first_audio_sent":
            first.setdefault(e.data["prompt_id"], e.t_ms)
        elif e.kind in ("sentence_synthesized", "sentence_cut"):
            done[(e.data["prompt_id"], int(e.data["index"]))] = e
    # The track is the sentences' audio end to end, unless a played file sits between.
    exact = not any(e.kind == "play_started" for e in events)
    offset = 0
    sentences: list[RecordedSentence] = []
    for prompt_id in order:
        start = first.get(prompt_id, 0)
        for index, text in enumerate(texts[prompt_id]):
            record = done.get((prompt_id, index))
            if record is None:  # an old recording: what went out of it is not logged
                sentences.append(RecordedSentence(text, None, start, start))
                break
            size = int(record.data["bytes"])
            audio = agent[offset : offset + size] if exact else b""
            offset += size
            audio += _SILENCE * (size - len(audio))
            pieces = tuple((int(t), int(n)) for t, n in record.data.get("pieces", ()))
            if record.kind == "sentence_cut":  # nothing after it was asked for
                error = record.data.get("error")
                sentences.append(
                    RecordedSentence(text, audio, start, record.t_ms, pieces, True, error)
                )
                break
            sentences.append(RecordedSentence(text, audio, start, record.t_ms, pieces))
            start = record.t_ms
    return sentences


def synthesizer_name(events: tuple[EventRecord, ...]) -> str | None:
    """The live call's synthesiser, where a failure logged its name."""
    for e in events:
        if e.source == "tts" and e.kind in ("synthesis_failed", "provider_failed"):
            name = e.data.get("provider")
            if name is not None:
                return str(name)
    return None


def replay_notes(sentences: Sequence[RecordedSentence]) -> list[str]:
    """What this replay cannot re-make exactly, said to the user."""
    return [UNLOGGED_CUT] if any(s.audio is None for s in sentences) else []


class RecordedSynthesizer:
    """Each sentence's recorded audio (or silence of its length), at its recorded time."""

    def __init__(
        self,
        sentences: list[RecordedSentence],
        clock: Clock,
        t0: int,
        ready_ms: int = 0,
        name: str | None = None,
    ) -> None:
        self.name = name or "recorded"  # the live synthesiser's, where the log names it
        self._queue = deque(sentences)
        self._clock = clock
        self._t0 = t0
        self._ready_ms = ready_ms
        self.requests: list[str] = []

    async def start(self) -> None:
        # Starting the providers took the live call until `ready_ms` (a loaded machine,
        # a slow connect): the conversation starts no earlier in the replay either.
        await self._clock.sleep(max(0, self._t0 + self._ready_ms - self._clock.now_ms()))

    async def stop(self) -> None:
        pass

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.requests.append(text)
        recorded = self._queue[0] if self._queue else None
        if recorded is not None and recorded.text == text:
            self._queue.popleft()
            return self._recorded(recorded)
        return self._new(text)

    async def _recorded(self, sentence: RecordedSentence) -> AsyncIterator[bytes]:
        audio = sentence.audio
        if audio is None:  # the recorded prompt was stopped while this was synthesised
            await _forever()
            return
        if sentence.pieces or sentence.cut:  # streamed in pieces: each at its time
            offset = 0
            for t_ms, size in sentence.pieces:
                await _at(self._clock, t_ms, self._t0)
                yield audio[offset : offset + size]
                offset += size
            if sentence.cut:  # the live synthesis was still going when it stopped
                if sentence.error is not None:
                    await _at(self._clock, sentence.end_ms, self._t0)
                    raise _failure(sentence.error)
                await _forever()
            return
        await _at(self._clock, sentence.first_ms, self._t0)
        yield audio[:FRAME_BYTES]
        await _at(self._clock, sentence.end_ms, self._t0)
        if len(audio) > FRAME_BYTES:
            yield audio[FRAME_BYTES:]

    async def _new(self, text: str) -> AsyncIterator[bytes]:
        frames = max(1, -(-len(text.strip()) * _MS_PER_CHAR // FRAME_MS))
        yield _SILENCE * (frames * FRAME_BYTES)


class RecordedTelephony:
    """SMS and transfers answered as recorded (their `action_completed`), in order."""

    def __init__(self, events: tuple[EventRecord, ...], clock: Clock, t0: int) -> None:
        completed = {e.data["action_id"]: e for e in events if e.kind == "action_completed"}
        self._answers: dict[str, deque[EventRecord | None]] = {"sms": deque(), "transfer": deque()}
        for e in events:
            if e.kind in ("sms_requested", "transfer_requested"):
                kind = e.kind.removesuffix("_requested")
                self._answers[kind].append(completed.get(e.data.get("action_id")))
        self._clock = clock
        self._t0 = t0
        self.sms: list[tuple[str, str]] = []
        self.transfers: list[str] = []

    async def send_sms(self, to: str, body: str) -> dict[str, Any]:
        self.sms.append((to, body))
        return await self._answer("sms", {"sid": "SMreplayed", "status": "simulated", "to": to})

    async def transfer(self, call_sid: str | None, to: str) -> dict[str, Any]:
        self.transfers.append(to)
        return await self._answer("transfer", {"status": "simulated", "to": to})

    async def _answer(self, kind: str, default: dict[str, Any]) -> dict[str, Any]:
        answers = self._answers[kind]
        answer = answers.popleft() if answers else None
        if answer is None:
            return default
        await _at(self._clock, answer.t_ms, self._t0)
        if not answer.data.get("ok", True):
            raise RuntimeError(str(answer.data.get("result", {}).get("error", "failed")))
        return dict(answer.data.get("result", {}))


class RecordedHooks:
    """Hooks answered as recorded (`hook_returned`/`hook_failed`), in order.

    A hook the recording never called (a changed machine) runs for real.
    """

    def __init__(self, events: tuple[EventRecord, ...], clock: Clock, t0: int) -> None:
        answers = {
            e.data["call_id"]: e for e in events if e.kind in ("hook_returned", "hook_failed")
        }
        called = (e.data.get("call_id") for e in events if e.kind == "hook_called")
        self._answers = deque(answers.get(call_id) for call_id in called)
        self._clock = clock
        self._t0 = t0
        self.calls = itertools.count()

    async def __call__(
        self, target: str, paths: tuple[str, ...], context: HookContext
    ) -> HookResult:
        next(self.calls)
        answer = self._answers.popleft() if self._answers else None
        if answer is None:
            return await run_hook(target, paths, context)
        if answer.kind == "hook_failed" and answer.data.get("reason") == "timeout":
            await _forever()  # the runner's own timeout ends it, as it did
        # Shielded: a hook in a worker thread cannot be cancelled, so a recorded answer
        # came when it came, even after the runner's timeout.
        with anyio.CancelScope(shield=True):
            await _at(self._clock, answer.t_ms, self._t0)
        if answer.kind == "hook_failed":
            raise _failure(str(answer.data.get("reason", "")))
        return HookResult(answer.data.get("event"), dict(answer.data.get("variables", {})))


def _failure(reason: str) -> Exception:
    """An exception that prints as the recorded one did (`Type: message`)."""
    name, _, message = reason.partition(": ")
    if not name.isidentifier():
        return RuntimeError(reason)
    error: Exception = type(name, (Exception,), {})(message)
    return error
