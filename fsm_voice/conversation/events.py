"""What happens to a conversation: the inputs of the conversation machine.

The runtime turns transport and provider callbacks into these (on the event loop),
and feeds them one at a time to `ConversationMachine.handle`. Each has a stable
past-tense `kind` under which it is logged (source `conversation`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    kind: ClassVar[str] = "conversation_event"

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CallConnected(ConversationEvent):
    """The stream is up: enter the initial state."""

    kind: ClassVar[str] = "conversation_started"
    variables: dict[str, Any] = field(default_factory=dict)  # call context (caller, ...)


@dataclass(frozen=True, slots=True)
class PromptFinished(ConversationEvent):
    """A prompt played to its end or was interrupted; `heard` is what the marks confirm."""

    kind: ClassVar[str] = "prompt_finished"
    prompt_id: str
    heard: tuple[str, ...] = ()
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class SpeechStarted(ConversationEvent):
    kind: ClassVar[str] = "speech_detected"
    t_ms: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptReceived(ConversationEvent):
    kind: ClassVar[str] = "utterance_received"
    text: str
    confidence: float | None = None
    start_ms: int = 0
    end_ms: int = 0
    # Speech was heard but the recogniser rejected it as outside the grammar (an
    # empty `text` with this set is a nomatch; empty without it is noise).
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class DigitPressed(ConversationEvent):
    kind: ClassVar[str] = "digit_received"
    digit: str


@dataclass(frozen=True, slots=True)
class TimerFired(ConversationEvent):
    """A conversation timer ran out. `token` ties it to the visit that started it."""

    kind: ClassVar[str] = "conversation_timer_fired"
    name: str
    token: int


@dataclass(frozen=True, slots=True)
class HookReturned(ConversationEvent):
    kind: ClassVar[str] = "hook_returned"
    call_id: int
    event: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HookFailed(ConversationEvent):
    kind: ClassVar[str] = "hook_failed"
    call_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ActionCompleted(ConversationEvent):
    """An sms or transfer the runtime carried out (result recorded for replay)."""

    kind: ClassVar[str] = "action_completed"
    action_id: int
    ok: bool = True
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallerHungUp(ConversationEvent):
    kind: ClassVar[str] = "caller_hung_up"
    reason: str = "stop"


@dataclass(frozen=True, slots=True)
class AnsweringMachineDetected(ConversationEvent):
    """Twilio's answering-machine verdict (async AMD): `answered_by` is its AnsweredBy,
    one of human, machine_start, machine_end_beep, machine_end_silence,
    machine_end_other, fax, unknown. The machine takes it as `amd_human` or
    `amd_machine`, with the variable `answered_by` set for conditions."""

    kind: ClassVar[str] = "answering_machine_detected"
    answered_by: str = "unknown"

    @property
    def event(self) -> str:
        # "unknown" means detection could not decide (often a quiet human): treated
        # as a human, so an undecided call is never handled as voicemail.
        machine = self.answered_by.startswith("machine") or self.answered_by == "fax"
        return "amd_machine" if machine else "amd_human"


@dataclass(frozen=True, slots=True)
class ProviderFailed(ConversationEvent):
    """A provider or transport failure the runtime could not recover from."""

    kind: ClassVar[str] = "provider_failed"
    provider: str
    reason: str
