"""Effects: what the call machine asks the runtime to do (imperative names).

Each effect is logged when emitted, under `kind` (a stable past-tense name) with
`data()` as its payload, so a call's decisions can be read back and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fsm_voice.call.events import CallEvent, flat_asdict
from fsm_voice.eventlog.kind_names import KindName


@dataclass(frozen=True, slots=True)
class Effect:
    kind: ClassVar[KindName]  # the kind it is logged under (source `call`)

    def data(self) -> dict[str, Any]:
        return flat_asdict(self)


@dataclass(frozen=True, slots=True)
class StartAgent(Effect):
    """Start the code that drives the call (the stream is up)."""

    kind: ClassVar[KindName] = "agent_started"


@dataclass(frozen=True, slots=True)
class SendMark(Effect):
    """Queue a mark behind the audio already queued."""

    kind: ClassVar[KindName] = "mark_queued"
    mark_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ClearPlayback(Effect):
    """Drop queued agent audio here and tell the platform to drop its buffer."""

    kind: ClassVar[KindName] = "playback_cleared"


@dataclass(frozen=True, slots=True)
class ReleaseMark(Effect):
    """Wake whoever waits on a mark, with how it ended."""

    kind: ClassVar[KindName] = "mark_released"
    mark_id: int
    name: str
    outcome: str  # played | cleared | timeout | call_ended | not_connected


@dataclass(frozen=True, slots=True)
class StartTimer(Effect):
    """After `ms`, feed `fire` back into the machine (a timer is an effect, never a sleep)."""

    kind: ClassVar[KindName] = "timer_started"
    name: str
    ms: int
    fire: CallEvent

    def data(self) -> dict[str, Any]:
        return {"name": self.name, "ms": self.ms}


@dataclass(frozen=True, slots=True)
class CancelTimer(Effect):
    kind: ClassVar[KindName] = "timer_cancelled"
    name: str


@dataclass(frozen=True, slots=True)
class DeliverDtmf(Effect):
    kind: ClassVar[KindName] = "dtmf_delivered"
    digit: str


@dataclass(frozen=True, slots=True)
class ReportViolation(Effect):
    """Record input that breaks the Media Streams protocol (the call goes on)."""

    kind: ClassVar[KindName] = "protocol_violation"
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CloseSocket(Effect):
    kind: ClassVar[KindName] = "socket_close_requested"
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class EndCall(Effect):
    """The call is over: finish every task, flush the log, record why."""

    kind: ClassVar[KindName] = "call_ended"
    reason: str  # caller_hangup | agent_hangup | socket_dropped | no_stream | error | ...
