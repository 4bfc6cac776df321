"""Twilio Media Streams messages: parse what Twilio sends, build what we send.

Pure functions, no I/O. Shapes follow Twilio's "Media Streams - WebSocket Messages"
docs: every message has `event`; all but `connected` carry `streamSid` and a string
`sequenceNumber`; media carries `media.track`, `media.chunk` (string, from "1"),
`media.timestamp` (string, ms since stream start) and base64 `media.payload`.

Whatever arrives, `parse_message` returns a value and never raises: a message that is
not what Twilio sends (non-finite or out-of-range numbers, deep nesting, wrong types)
is a `Violation`, whose detail shows only a bounded piece of the offending value.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import reprlib
from collections.abc import Mapping
from typing import Any

from fsm_voice.call import events as ev
from fsm_voice.call.wire import Envelope, Media, Parsed, Violation
from fsm_voice.security import is_phone_number, mask_phone

__all__ = [
    "MEDIA_STREAMS",
    "Envelope",
    "Media",
    "MediaStreamsWire",
    "OutboundEncoder",
    "Violation",
    "is_secret_parameter",
    "loggable_parameters",
    "parse_message",
]

MAX_MEDIA_PAYLOAD_BYTES = 64 * 1024  # Twilio sends 160-byte frames; refuse absurd ones
# The same cap as `Limits.max_message_bytes`: uvicorn closes a bigger message with 1009
# before we see it; other sockets (in-process, other servers) meet this check instead.
MAX_MESSAGE_CHARS = 256 * 1024
# Twilio's messages nest three deep (start.mediaFormat). A string of brackets nests as
# deep as it is long and would otherwise reach the code that prints values.
MAX_NESTING = 16
# Sequence numbers, chunks and timestamps count up from 0 and become INTEGER columns
# and JSON numbers: keep them where both (and JavaScript readers) hold them exactly.
MAX_COUNTER = 2**53 - 1


def parse_message(message: str | bytes, max_chars: int = MAX_MESSAGE_CHARS) -> Parsed:
    """Turn one WebSocket message into a typed message or a `Violation`; never raises."""
    if isinstance(message, bytes):
        return Violation("binary_frame", f"{len(message)} bytes; Media Streams sends only text")
    if len(message) > max_chars:
        return Violation("message_too_large", f"{len(message)} characters (max {max_chars})")
    try:
        data = _DECODER.decode(message)
    except _Bad as e:  # a non-finite number, from the decoder's hooks
        return Violation(e.reason, e.detail)
    except ValueError as e:
        return Violation("invalid_json", f"{e.__class__.__name__}: {e}; starts {message[:60]!r}")
    except RecursionError:  # brackets nested past the interpreter's recursion limit
        return Violation("too_deeply_nested", f"{len(message)} characters of nesting")
    if not isinstance(data, dict):
        return Violation("not_an_object", f"a JSON {type(data).__name__}, not an object")
    kind = data.get("event")
    try:
        if kind == "media":  # the hot path reads only scalars: no depth check needed
            return _media(data)
        parser = _PARSERS.get(kind) if isinstance(kind, str) else None
        if parser is None:
            return Violation("unknown_event", f"event {_show(kind)}")
        if _too_deep(data, 0):
            return Violation("too_deeply_nested", f"{kind} nests more than {MAX_NESTING} deep")
        return Envelope(parser(data), _stream_sid(data), _int(data.get("sequenceNumber")))
    except _Bad as e:
        return Violation(e.reason, e.detail)


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str) -> Any:
    raise _Bad("non_finite_number", f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise _Bad("non_finite_number", f"{text[:40]} overflows a float")
    return value


# One decoder for every message (json.loads with hooks would build one per call). It
# refuses NaN, Infinity and overflowing floats, which no integer field can hold.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 2


def _show(value: Any) -> str:
    """`repr(value)`, cut short: a detail never holds a whole hostile value."""
    return _REPR.repr(value)


def _too_deep(value: Any, depth: int) -> bool:
    """Whether containers nest past MAX_NESTING (it stops looking there)."""
    if depth > MAX_NESTING:
        return True
    if type(value) is dict:
        return any(_too_deep(item, depth + 1) for item in value.values())
    if type(value) is list:
        return any(_too_deep(item, depth + 1) for item in value)
    return False


def _int(value: Any, field: str = "sequenceNumber") -> int | None:
    if type(value) is str:  # Twilio's numbers are strings: the common case first
        try:
            number = int(value)
        except ValueError:
            raise _Bad("bad_field", f"{field} is {_show(value)}, not an integer") from None
    elif value is None:
        return None
    elif isinstance(value, bool):
        raise _Bad("bad_field", f"{field} is a boolean")
    else:
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise _Bad("bad_field", f"{field} is {_show(value)}, not an integer") from None
    if not 0 <= number <= MAX_COUNTER:
        raise _Bad("bad_field", f"{field} {_show(number)} is out of range")
    return number


def _stream_sid(data: dict[str, Any]) -> str | None:
    sid = data.get("streamSid")
    if sid is not None and not isinstance(sid, str):
        raise _Bad("bad_field", f"streamSid is {type(sid).__name__}, not a string")
    return sid


def _object(data: dict[str, Any], field: str) -> dict[str, Any]:
    value = data.get(field)
    if not isinstance(value, dict):
        raise _Bad("missing_field", f"{data.get('event')} message without a {field!r} object")
    return value


def _str(obj: dict[str, Any], field: str, where: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise _Bad("missing_field", f"{where}.{field} is missing or not a string")
    return value


def _media(data: dict[str, Any]) -> Media | Violation:
    media = _object(data, "media")
    payload = media.get("payload")
    if not isinstance(payload, str):
        return Violation("missing_field", "media.payload is missing or not a string")
    if len(payload) > MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 + 4:
        return Violation("payload_too_large", f"media.payload of {len(payload)} characters")
    try:
        audio = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        return Violation("bad_base64", f"media.payload: {e}")
    track = media.get("track", "inbound")
    return Media(
        _stream_sid(data),
        _int(data.get("sequenceNumber")),
        track if isinstance(track, str) else "inbound",
        _int(media.get("chunk"), "media.chunk"),
        _int(media.get("timestamp"), "media.timestamp"),
        audio,
    )


def _connected(data: dict[str, Any]) -> ev.CallEvent:
    return ev.Connected(str(data.get("protocol", "")), str(data.get("version", "")))


def _start(data: dict[str, Any]) -> ev.CallEvent:
    start = _object(data, "start")
    stream_sid = start.get("streamSid", data.get("streamSid"))
    if not isinstance(stream_sid, str) or not stream_sid:
        raise _Bad("missing_field", "start without a streamSid")
    fmt = start.get("mediaFormat") or {}
    params = start.get("customParameters") or {}
    tracks = start.get("tracks") or ["inbound"]
    if not isinstance(fmt, dict) or not isinstance(params, dict) or not isinstance(tracks, list):
        raise _Bad("bad_field", "start.mediaFormat/customParameters/tracks have the wrong type")
    if any(isinstance(v, dict | list) for v in (*params.values(), *tracks)):
        raise _Bad("bad_field", "start.customParameters/tracks hold objects or arrays")
    return ev.StreamStarted(
        stream_sid=stream_sid,
        call_sid=str(start.get("callSid", "")),
        account_sid=str(start.get("accountSid", "")),
        tracks=tuple(str(t) for t in tracks),
        encoding=str(fmt.get("encoding", "audio/x-mulaw")),
        sample_rate=_int(fmt.get("sampleRate", 8000), "mediaFormat.sampleRate") or 8000,
        channels=_int(fmt.get("channels", 1), "mediaFormat.channels") or 1,
        custom_parameters={str(k): str(v) for k, v in params.items()},
    )


def _dtmf(data: dict[str, Any]) -> ev.CallEvent:
    digit = _str(_object(data, "dtmf"), "digit", "dtmf")
    if len(digit) != 1 or digit not in "0123456789*#ABCD":
        raise _Bad("bad_field", f"dtmf.digit {digit!r} is not one DTMF key")
    return ev.DtmfReceived(digit)


def _mark(data: dict[str, Any]) -> ev.CallEvent:
    return ev.MarkEchoed(_str(_object(data, "mark"), "name", "mark"))


def _stop(data: dict[str, Any]) -> ev.CallEvent:
    return ev.StreamStopped()


_PARSERS = {
    "connected": _connected,
    "start": _start,
    "dtmf": _dtmf,
    "mark": _mark,
    "stop": _stop,
}


class OutboundEncoder:
    """Builds the messages we send for one stream (media, mark, clear).

    The constant parts are encoded once per call: media frames are the hot path.
    """

    def __init__(self, stream_sid: str) -> None:
        sid = json.dumps(stream_sid)
        self._media_prefix = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._mark_prefix = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + sid + "}"

    def media(self, mulaw: bytes) -> str:
        return self._media_prefix + binascii.b2a_base64(mulaw, newline=False).decode() + '"}}'

    def mark(self, name: str) -> str:
        return self._mark_prefix + json.dumps(name) + "}}"

    def clear(self) -> str:
        return self._clear


# <Parameter> names whose values are credentials: the per-call `token` we issue, and
# whatever a user passes that looks like one. Never logged, never handed to the agent.
_SECRET_NAME = re.compile(r"token|secret|passw|signature|credential|api_?key|auth", re.I)
# Twilio's own names for the caller and the called number, and ours.
_PHONE_NAMES = frozenset(("from", "to", "caller", "called", "forwardedfrom"))


def is_secret_parameter(name: str) -> bool:
    """Whether a custom parameter named `name` holds a credential."""
    return _SECRET_NAME.search(name) is not None


def loggable_parameters(
    params: Mapping[str, str], *, mask_phone_numbers: bool = False
) -> dict[str, str]:
    """`params` as the event log may show them.

    Credentials become `****`; with `mask_phone_numbers`, the caller/called numbers
    (and any value shaped like a phone number) keep only their last four digits.
    """
    out: dict[str, str] = {}
    for name, value in params.items():
        if is_secret_parameter(name):
            out[name] = "****"
        elif mask_phone_numbers and (name.lower() in _PHONE_NAMES or is_phone_number(value)):
            out[name] = mask_phone(value)
        else:
            out[name] = value
    return out


class MediaStreamsWire:
    """Twilio Media Streams as the call runtime's `Wire`."""

    def parse(self, message: str | bytes, max_chars: int) -> Parsed:
        return parse_message(message, max_chars)

    def encoder(self, stream_sid: str) -> OutboundEncoder:
        return OutboundEncoder(stream_sid)

    def is_secret_parameter(self, name: str) -> bool:
        return is_secret_parameter(name)

    def loggable_parameters(
        self, params: Mapping[str, str], *, mask_phone_numbers: bool
    ) -> dict[str, str]:
        return loggable_parameters(params, mask_phone_numbers=mask_phone_numbers)


MEDIA_STREAMS = MediaStreamsWire()
