"""Events the call machine takes (past-tense facts), each with its trigger name.

Transport events come from the Media Streams socket; the others from the code that
drives the call (through its handle) and from timers. Caller audio frames are not
here: they take a fast path that only checks the machine's state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from fsm_voice.eventlog.kind_names import KindName

_ATOMS = frozenset((str, int, bool, float, type(None)))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def flat_asdict(obj: Any) -> dict[str, Any]:
    """`dataclasses.asdict(obj)`, fast when every field holds a str, number or None.

    asdict recurses and deep-copies every value, at ~2 µs for a two-field mark event,
    and every event and effect is logged; atoms need no copy. Anything else (a tuple,
    a dict) takes asdict itself.
    """
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(obj))
    data = {}
    for name in names:
        value = getattr(obj, name)
        if type(value) not in _ATOMS:
            return asdict(obj)
        data[name] = value
    return data


@dataclass(frozen=True, slots=True)
class CallEvent:
    trigger: ClassVar[KindName]  # the kind it is logged under (source `source`)
    source: ClassVar[str] = "runtime"

    def data(self) -> dict[str, Any]:
        return flat_asdict(self)


@dataclass(frozen=True, slots=True)
class SocketOpened(CallEvent):
    trigger: ClassVar[KindName] = "socket_opened"


@dataclass(frozen=True, slots=True)
class Connected(CallEvent):
    trigger: ClassVar[KindName] = "connected"
    source: ClassVar[str] = "transport"
    protocol: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class StreamStarted(CallEvent):
    trigger: ClassVar[KindName] = "stream_started"
    source: ClassVar[str] = "transport"
    stream_sid: str
    call_sid: str = ""
    account_sid: str = ""
    tracks: tuple[str, ...] = ("inbound",)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MediaReceived(CallEvent):
    """Only fired into the machine when media arrives in a state that cannot take it."""

    trigger: ClassVar[KindName] = "media_received"
    source: ClassVar[str] = "transport"
    track: str = "inbound"
    chunk: int = 0


@dataclass(frozen=True, slots=True)
class DtmfReceived(CallEvent):
    trigger: ClassVar[KindName] = "dtmf_received"
    source: ClassVar[str] = "transport"
    digit: str


@dataclass(frozen=True, slots=True)
class MarkEchoed(CallEvent):
    trigger: ClassVar[KindName] = "mark_echoed"
    source: ClassVar[str] = "transport"
    name: str


@dataclass(frozen=True, slots=True)
class StreamStopped(CallEvent):
    trigger: ClassVar[KindName] = "stream_stopped"
    source: ClassVar[str] = "transport"


@dataclass(frozen=True, slots=True)
class SocketClosed(CallEvent):
    trigger: ClassVar[KindName] = "socket_closed"
    source: ClassVar[str] = "transport"
    code: int = 1006


@dataclass(frozen=True, slots=True)
class AgentAudioQueued(CallEvent):
    """Agent audio was queued while the machine thought nothing was playing."""

    trigger: ClassVar[KindName] = "agent_audio_queued"


@dataclass(frozen=True, slots=True)
class MarkRequested(CallEvent):
    trigger: ClassVar[KindName] = "mark_requested"
    mark_id: int
    name: str
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class MarkTimedOut(CallEvent):
    trigger: ClassVar[KindName] = "mark_timed_out"
    mark_id: int


@dataclass(frozen=True, slots=True)
class ClearRequested(CallEvent):
    trigger: ClassVar[KindName] = "clear_requested"


@dataclass(frozen=True, slots=True)
class HangupRequested(CallEvent):
    trigger: ClassVar[KindName] = "hangup_requested"
    reason: str = "agent_hangup"


@dataclass(frozen=True, slots=True)
class ConnectTimedOut(CallEvent):
    trigger: ClassVar[KindName] = "connect_timed_out"


@dataclass(frozen=True, slots=True)
class HangupTimedOut(CallEvent):
    """The socket did not close after a requested hangup: give up waiting."""

    trigger: ClassVar[KindName] = "hangup_timed_out"


@dataclass(frozen=True, slots=True)
class FatalError(CallEvent):
    trigger: ClassVar[KindName] = "fatal_error"
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ViolationLimitReached(CallEvent):
    """Too many protocol violations on one socket: stop listening to it."""

    trigger: ClassVar[KindName] = "violation_limit_reached"
    count: int


@dataclass(frozen=True, slots=True)
class StreamRejected(CallEvent):
    """A `start` the server refuses (its per-call token does not match): close 1008.

    Stands in for the `stream_started` it replaces, so the rejected start's parameters
    (and its token) never reach the log or the agent.
    """

    trigger: ClassVar[KindName] = "stream_rejected"
    source: ClassVar[str] = "transport"
    reason: str
    stream_sid: str = ""
    call_sid: str = ""
