"""A recording parsed once into typed views: what replay reads instead of raw events.

`view_parser.parse(recording)` walks the event list one time and sorts what it finds
into views: the caller's frames, the platform's messages and the marks, the
recogniser's outputs (transcripts, speech starts, errors, state changes), the agent's
prompts and their sentences, the machines' decisions, the outside world's answers
(hooks, SMS, transfers, REST hangups, notices) and the faults. Each item is frozen and
keeps the recorded `seq` and `t_ms` where it stands for one event. This module is the
vocabulary; `replay.view_parser` is the one place that reads event kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fsm_voice.eventlog.records import EventRecord

__all__ = [
    "Action",
    "ActionKind",
    "CallerFrame",
    "Completion",
    "FaultLogged",
    "Heard",
    "HookAnswer",
    "Mark",
    "Notice",
    "PlatformMessage",
    "Prompt",
    "RecordingViews",
    "RemoteHangupAnswer",
    "SentenceDone",
    "SpeechStart",
    "StateChange",
    "SttError",
    "SttOutput",
]


@dataclass(frozen=True, slots=True)
class CallerFrame:
    """One 20 ms frame of the caller track, at the time the call received it."""

    t_ms: int
    number: int  # its number in the caller track (Twilio's chunk is number + 1)
    payload: bytes


PlatformKind = Literal["connected", "start", "dtmf", "mark", "stop", "close"]


@dataclass(frozen=True, slots=True)
class PlatformMessage:
    """What the platform sent (a close the runtime asked for is its own, not here)."""

    seq: int
    t_ms: int
    kind: PlatformKind
    fields: dict[str, Any]  # the logged payload (connected: protocol; start: the stream)
    digit: str = ""  # dtmf
    mark: str = ""  # mark: the echoed mark's name
    code: int = 1000  # close


@dataclass(frozen=True, slots=True)
class Mark:
    """A mark the call sent, and when the platform echoed it (None: never, or unlogged)."""

    name: str
    sent_ms: int | None
    echoed_ms: int | None


@dataclass(frozen=True, slots=True)
class SpeechStart:
    seq: int
    t_ms: int
    at_ms: int  # where in the caller audio the recogniser heard speech begin


@dataclass(frozen=True, slots=True)
class Heard:
    """A transcript: partial (`committed` False) or committed."""

    seq: int
    t_ms: int
    text: str
    committed: bool
    confidence: float | None = None
    start_ms: int = 0  # committed: where in the caller audio the utterance lies
    end_ms: int = 0
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SttError:
    seq: int
    t_ms: int
    reason: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class StateChange:
    """A machine moved to `state`: the call, the conversation, or a provider (stt, tts)."""

    seq: int
    t_ms: int
    machine: str
    state: str
    previous: str
    on: str
    detail: str = ""
    provider: str | None = None


SttOutput = SpeechStart | Heard | SttError | StateChange


@dataclass(frozen=True, slots=True)
class SentenceDone:
    """A sentence's synthesis: finished (`sentence_synthesized`) or stopped (`_cut`)."""

    index: int
    t_ms: int  # when its last audio left
    size: int  # bytes of audio it sent
    pieces: tuple[tuple[int, int], ...]  # (t_ms, bytes) of each send, when logged
    cut: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the agent said (`text`) or played (`text` None), from start to finish."""

    prompt_id: str
    text: str | None
    first_audio_ms: int | None
    finished_seq: int | None
    finished_ms: int | None
    sentences: dict[int, SentenceDone]  # by index


@dataclass(frozen=True, slots=True)
class Completion:
    t_ms: int
    ok: bool
    result: dict[str, Any]


ActionKind = Literal["sms", "transfer"]


@dataclass(frozen=True, slots=True)
class Action:
    """An SMS or a transfer the machine asked for, and the platform's answer."""

    kind: ActionKind
    answer: Completion | None


@dataclass(frozen=True, slots=True)
class HookAnswer:
    t_ms: int
    failed: bool
    reason: str  # hook_failed
    event: str | None  # hook_returned
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notice:
    """A platform notice from outside the stream (an answering-machine verdict)."""

    seq: int
    t_ms: int
    notice: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RemoteHangupAnswer:
    t_ms: int
    failed: bool
    outcome: str
    error: str


@dataclass(frozen=True, slots=True)
class FaultLogged:
    t_ms: int
    fault: str
    at_ms: int
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordingViews:
    """Every view of one recording (see the module's docstring)."""

    events: tuple[EventRecord, ...]
    opened_ms: int  # socket_opened: the replay's clock starts there
    began: EventRecord | None  # the conversation's first event (its providers had started)
    ended_ms: int | None  # call_ended
    ended_seq: int | None
    caller: tuple[CallerFrame, ...]
    platform: tuple[PlatformMessage, ...]
    marks: tuple[Mark, ...]
    stt: tuple[SttOutput, ...]  # every recogniser output, in order
    states: tuple[StateChange, ...]  # every machine's, in order
    prompts: tuple[Prompt, ...]  # in the order they began
    plays_files: bool  # a played file sits between the sentences on the agent track
    decisions: tuple[EventRecord, ...]
    actions: tuple[Action, ...]
    hooks: tuple[HookAnswer | None, ...]  # per hook call, in order (None: no answer)
    notices: tuple[Notice, ...]
    remote_hangup_requested: bool
    remote_hangup_answers: tuple[RemoteHangupAnswer, ...]
    faults: tuple[FaultLogged, ...]
    duplicates_refused: dict[str, str]  # CallSid -> the live call it duplicated
    synthesizer: str | None  # the live synthesiser's name, where a failure logged it

    @property
    def transcripts(self) -> tuple[Heard, ...]:
        return tuple(o for o in self.stt if isinstance(o, Heard))

    @property
    def speech_starts(self) -> tuple[SpeechStart, ...]:
        return tuple(o for o in self.stt if isinstance(o, SpeechStart))

    def states_of(self, machine: str) -> tuple[StateChange, ...]:
        return tuple(s for s in self.states if s.machine == machine)

    @property
    def recognizer(self) -> str | None:
        """The live recogniser, as its first state change named it (recordings older
        than the `provider` field name only the scripted one, in `detail`)."""
        first = next((s for s in self.states if s.machine == "stt"), None)
        if first is None:
            return None
        if first.provider is None and first.detail == "scripted":
            return "scripted"
        return first.provider

    def stt_phases(self) -> tuple[list[StateChange], list[SttOutput], list[StateChange]]:
        """The recogniser's outputs: (reported inside start(), mid-call, inside stop()).

        State changes logged before the conversation began happened inside `start()`,
        those after the call ended inside `stop()`: the recorded recogniser reports
        them there, so they land at the same place in the replayed log.
        """
        began = None if self.began is None else self.began.seq
        at_start: list[StateChange] = []
        mid: list[SttOutput] = []
        at_stop: list[StateChange] = []
        for output in self.stt:
            if isinstance(output, StateChange) and (began is None or output.seq < began):
                at_start.append(output)
            elif isinstance(output, StateChange) and _after(output.seq, self.ended_seq):
                at_stop.append(output)
            else:
                mid.append(output)
        return at_start, mid, at_stop


def _after(seq: int, ended_seq: int | None) -> bool:
    return ended_seq is not None and seq > ended_seq
