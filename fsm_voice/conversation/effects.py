"""What the conversation machine asks the runtime to do (imperative names).

Each effect is logged (source `conversation`) under its stable `kind` with `data()`.
`Note` carries a decision worth reading back (intent matched, counter changed,
variables set) without asking the runtime to do anything but log it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from fsm_voice.eventlog.kind_names import KindName


@dataclass(frozen=True, slots=True)
class ConversationEffect:
    kind: ClassVar[KindName]  # the kind it is logged under (source `conversation`)

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Speak(ConversationEffect):
    """Synthesise `text` sentence by sentence, a mark after each; then PromptFinished."""

    kind: ClassVar[KindName] = "say_started"
    prompt_id: str
    text: str
    bargein: bool


@dataclass(frozen=True, slots=True)
class PlayFile(ConversationEffect):
    kind: ClassVar[KindName] = "play_started"
    prompt_id: str
    path: str
    bargein: bool


@dataclass(frozen=True, slots=True)
class StopPrompt(ConversationEffect):
    """Barge-in: stop synthesis and clear playback (Twilio `clear`)."""

    kind: ClassVar[KindName] = "prompt_stopped"
    prompt_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartListening(ConversationEffect):
    kind: ClassVar[KindName] = "listening_started"
    phrases: tuple[str, ...]
    free_form: bool
    grammar: str  # a name for the recogniser's grammar cache: "<state>"


@dataclass(frozen=True, slots=True)
class StopListening(ConversationEffect):
    kind: ClassVar[KindName] = "listening_stopped"


@dataclass(frozen=True, slots=True)
class StartTimer(ConversationEffect):
    kind: ClassVar[KindName] = "conversation_timer_started"
    name: str
    after_ms: int
    token: int


@dataclass(frozen=True, slots=True)
class CancelTimer(ConversationEffect):
    kind: ClassVar[KindName] = "conversation_timer_cancelled"
    name: str
    token: int


@dataclass(frozen=True, slots=True)
class CallHook(ConversationEffect):
    kind: ClassVar[KindName] = "hook_called"
    call_id: int
    target: str
    timeout_ms: int
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendSms(ConversationEffect):
    kind: ClassVar[KindName] = "sms_requested"
    action_id: int
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class TransferCall(ConversationEffect):
    kind: ClassVar[KindName] = "transfer_requested"
    action_id: int
    to: str


@dataclass(frozen=True, slots=True)
class HangupCall(ConversationEffect):
    kind: ClassVar[KindName] = "hangup_decided"
    reason: str


@dataclass(frozen=True, slots=True)
class Note(ConversationEffect):
    """A decision to log: `note_kind` becomes the event kind."""

    note_kind: KindName
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def logged_kind(self) -> str:
        return self.note_kind
