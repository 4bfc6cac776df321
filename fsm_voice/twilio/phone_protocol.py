"""What a server may send Twilio on a bidirectional Media Stream, checked strictly.

Per Twilio's "Media Streams - WebSocket Messages" page ("WebSocket messages to Twilio",
https://www.twilio.com/docs/voice/media-streams/websocket-messages) a server sends only
`media` (base64 8 kHz μ-law in `media.payload`, no file headers), `mark` (`mark.name`)
and `clear`, each with the `streamSid` from `start`. Anything else is a protocol error
(Twilio logs it as error 31924, https://www.twilio.com/docs/api/errors/31924).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["AgentAudio", "AgentClear", "AgentMark", "Invalid", "ServerMessage", "read_message"]


@dataclass(frozen=True, slots=True)
class AgentAudio:
    audio: bytes


@dataclass(frozen=True, slots=True)
class AgentMark:
    name: str


@dataclass(frozen=True, slots=True)
class AgentClear:
    pass


@dataclass(frozen=True, slots=True)
class Invalid:
    """Not valid per the protocol; `reason` says why, for `protocol_errors`."""

    reason: str


ServerMessage = AgentAudio | AgentMark | AgentClear | Invalid


def read_message(
    message: str | bytes, stream_sid: str
) -> tuple[dict[str, Any] | None, ServerMessage]:
    """Parse one message from the server: the JSON object (if it was one) and its meaning."""
    if isinstance(message, bytes):
        return None, Invalid(f"binary frame of {len(message)} bytes (Media Streams is JSON text)")
    try:
        data = json.loads(message)
    except ValueError:
        return None, Invalid(f"invalid JSON: {message[:80]!r}")
    if not isinstance(data, dict):
        return None, Invalid(f"a JSON {type(data).__name__}, not an object: {message[:80]!r}")
    return data, _meaning(data, stream_sid)


def _meaning(data: dict[str, Any], stream_sid: str) -> ServerMessage:
    event = data.get("event")
    if event not in ("media", "mark", "clear"):
        return Invalid(f"unknown event {event!r} (Twilio accepts media, mark and clear)")
    if data.get("streamSid") != stream_sid:
        return Invalid(f"{event} for streamSid {data.get('streamSid')!r}, not {stream_sid}")
    if event == "clear":
        return AgentClear()
    body = data.get(event)
    if event == "mark":
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            return Invalid("mark message without a mark.name string")
        return AgentMark(name)
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, str):
        return Invalid("media message without a media.payload string")
    try:
        return AgentAudio(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        return Invalid(f"media.payload is not base64: {payload[:40]!r}")
