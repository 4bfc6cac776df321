"""What the call runtime needs from a wire protocol, and the shapes a parse returns.

The runtime does not know Twilio: the server hands it a `Wire` (Twilio Media Streams
is `fsm_voice.twilio.media_streams.MEDIA_STREAMS`). A parse returns one of three
shapes: `Media` (the hot path, kept out of the call machine), an `Envelope` around a
call event, or a `Violation` of the protocol. Keeping these here lets `twilio/`
depend on `call/` (it speaks in call events) and never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from fsm_voice.call import events as ev

__all__ = ["Envelope", "Media", "OutboundEncoding", "Parsed", "Violation", "Wire"]


@dataclass(frozen=True, slots=True)
class Violation:
    """Input that breaks the protocol. `reason` is a stable snake_case name."""

    reason: str
    detail: str


class Media(NamedTuple):
    """One inbound audio message (kept out of the call machine: it is the hot path).

    A NamedTuple rather than a frozen dataclass: one is built per frame, and a frozen
    dataclass's __init__ costs twice as much.
    """

    stream_sid: str | None
    sequence_number: int | None
    track: str
    chunk: int | None
    timestamp_ms: int | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A non-media message: the call event plus the fields every message carries."""

    event: ev.CallEvent
    stream_sid: str | None
    sequence_number: int | None


Parsed = Media | Envelope | Violation


class OutboundEncoding(Protocol):
    """Builds the messages we send on one stream."""

    def media(self, mulaw: bytes) -> str: ...

    def mark(self, name: str) -> str: ...

    def clear(self) -> str: ...


class Wire(Protocol):
    """A wire protocol: parse what the platform sends, encode what we send, and say
    which custom parameters are credentials and how the log may show them."""

    def parse(self, message: str | bytes, max_chars: int) -> Parsed: ...

    def encoder(self, stream_sid: str) -> OutboundEncoding: ...

    def is_secret_parameter(self, name: str) -> bool: ...

    def loggable_parameters(
        self, params: Mapping[str, str], *, mask_phone_numbers: bool
    ) -> dict[str, str]: ...
