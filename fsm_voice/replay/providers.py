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
from functools import partial
from typing import Any

import anyio

from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS, SILENCE_BYTE
from fsm_voice.clock import Clock, TimerHandle
from fsm_voice.conversation.actions import run_hook
from fsm_voice.conversation.hooks import HookContext, HookResult
from fsm_voice.providers.base import Grammar, SttListener, Transcript, split_sentences
from fsm_voice.providers.machine import IDLE
from fsm_voice.providers.state_log import StateWatchers
from fsm_voice.replay.views import (
    Action,
    Completion,
    Heard,
    HookAnswer,
    RecordingViews,
    SpeechStart,
    StateChange,
    SttError,
    SttOutput,
)

__all__ = [
    "RecordedHooks",
    "RecordedRecognizer",
    "RecordedSynthesizer",
    "RecordedTelephony",
    "TtsMoves",
    "recorded_sentences",
    "recorded_tts_moves",
    "replay_notes",
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
        self, at_start: list[StateChange], at_stop: list[StateChange], name: str | None = None
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

    def emit(self, output: SttOutput) -> None:
        """Deliver one recorded output to the listener, as the provider did."""
        listener = self.listener
        if listener is None:
            return
        if isinstance(output, SpeechStart):
            listener.on_speech_started(output.at_ms)
        elif isinstance(output, Heard) and not output.committed:
            listener.on_recognizing(output.text)
        elif isinstance(output, Heard):
            transcript = Transcript(
                output.text, output.confidence, output.start_ms, output.end_ms, output.alternatives
            )
            listener.on_committed(transcript)
        elif isinstance(output, SttError):
            listener.on_error(output.reason, output.fatal)
        else:
            listener.on_state(output.state, output.detail)


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


def recorded_sentences(views: RecordingViews, agent: bytes) -> list[RecordedSentence]:
    """Each synthesised sentence in request order, with its audio cut from the agent track."""
    # The track is the sentences' audio end to end, unless a played file sits between.
    exact = not views.plays_files
    offset = 0
    sentences: list[RecordedSentence] = []
    for prompt in views.prompts:
        if prompt.text is None:
            continue  # a played file
        start = prompt.first_audio_ms or 0
        for index, text in enumerate(split_sentences(prompt.text)):
            done = prompt.sentences.get(index)
            if done is None:  # an old recording: what went out of it is not logged
                sentences.append(RecordedSentence(text, None, start, start))
                break
            audio = agent[offset : offset + done.size] if exact else b""
            offset += done.size
            audio += _SILENCE * (done.size - len(audio))
            if done.cut:  # nothing after it was asked for
                sentences.append(
                    RecordedSentence(text, audio, start, done.t_ms, done.pieces, True, done.error)
                )
                break
            sentences.append(RecordedSentence(text, audio, start, done.t_ms, done.pieces))
            start = done.t_ms
    return sentences


def replay_notes(sentences: Sequence[RecordedSentence]) -> list[str]:
    """What this replay cannot re-make exactly, said to the user."""
    return [UNLOGGED_CUT] if any(s.audio is None for s in sentences) else []


@dataclass(frozen=True, slots=True)
class TtsMoves:
    """The live synthesiser's recorded moves: inside start() (before the conversation
    began), mid-call, and inside stop() (after the call ended)."""

    at_start: tuple[StateChange, ...] = ()
    mid: tuple[StateChange, ...] = ()
    at_stop: tuple[StateChange, ...] = ()

    @property
    def first(self) -> StateChange | None:
        return next(iter(self.at_start + self.mid + self.at_stop), None)


def recorded_tts_moves(views: RecordingViews) -> TtsMoves:
    """The recording's tts moves, split where the stand-in reports them (recordings
    from before the runner logged them have none: the stand-in then reports none)."""
    began = None if views.began is None else views.began.seq
    at_start, mid, at_stop = [], [], []
    for move in views.states_of("tts"):
        if began is None or move.seq < began:
            at_start.append(move)
        elif views.ended_seq is not None and move.seq > views.ended_seq:
            at_stop.append(move)
        else:
            mid.append(move)
    return TtsMoves(tuple(at_start), tuple(mid), tuple(at_stop))


class RecordedSynthesizer:
    """Each sentence's recorded audio (or silence of its length), at its recorded time;
    its machine's recorded moves, told to its `state_watchers` as the live one did."""

    def __init__(
        self,
        sentences: list[RecordedSentence],
        clock: Clock,
        t0: int,
        ready_ms: int = 0,
        name: str | None = None,
        moves: TtsMoves = TtsMoves(),
    ) -> None:
        first = moves.first
        # the live synthesiser's, where the log names it (a failure, a move)
        self.name = name or (first.provider if first is not None else None) or "recorded"
        self._queue = deque(sentences)
        self._clock = clock
        self._t0 = t0
        self._ready_ms = ready_ms
        self._moves = moves
        self._timers: list[TimerHandle] = []
        self.requests: list[str] = []
        self.state_watchers = StateWatchers()
        # A shared synthesiser may have been streaming before the recorded call began:
        # its first move's `from` is where the recorded one was.
        self.state_watchers.state = (first.previous if first is not None else "") or IDLE

    async def start(self) -> None:
        for move in self._moves.at_start:  # e.g. connecting, streaming: as they came
            await _at(self._clock, move.t_ms, self._t0)
            self._report(move)
        now = self._clock.now_ms() - self._t0
        for move in self._moves.mid:  # e.g. a dropped connection: at its recorded time
            self._timers.append(
                self._clock.call_later(move.t_ms - now, partial(self._report, move))
            )
        # Starting the providers took the live call until `ready_ms` (a loaded machine,
        # a slow connect): the conversation starts no earlier in the replay either.
        await self._clock.sleep(max(0, self._t0 + self._ready_ms - self._clock.now_ms()))

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for move in self._moves.at_stop:
            self._report(move)

    def _report(self, move: StateChange) -> None:
        self.state_watchers(move.state, move.detail)

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

    def __init__(self, actions: Sequence[Action], clock: Clock, t0: int) -> None:
        self._answers: dict[str, deque[Completion | None]] = {"sms": deque(), "transfer": deque()}
        for action in actions:
            self._answers[action.kind].append(action.answer)
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
        if not answer.ok:
            raise RuntimeError(str(answer.result.get("error", "failed")))
        return dict(answer.result)


class RecordedHooks:
    """Hooks answered as recorded (`hook_returned`/`hook_failed`), in order.

    A hook the recording never called (a changed machine) runs for real.
    """

    def __init__(self, answers: Sequence[HookAnswer | None], clock: Clock, t0: int) -> None:
        self._answers = deque(answers)
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
        if answer.failed and answer.reason == "timeout":
            await _forever()  # the runner's own timeout ends it, as it did
        # Shielded: a hook in a worker thread cannot be cancelled, so a recorded answer
        # came when it came, even after the runner's timeout.
        with anyio.CancelScope(shield=True):
            await _at(self._clock, answer.t_ms, self._t0)
        if answer.failed:
            raise _failure(answer.reason)
        return HookResult(answer.event, dict(answer.variables))


def _failure(reason: str) -> Exception:
    """An exception that prints as the recorded one did (`Type: message`)."""
    name, _, message = reason.partition(": ")
    if not name.isidentifier():
        return RuntimeError(reason)
    error: Exception = type(name, (Exception,), {})(message)
    return error
