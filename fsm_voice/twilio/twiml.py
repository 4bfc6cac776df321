"""TwiML documents, built with the SDK's `VoiceResponse` (it escapes every value)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.twiml.voice_response import Connect, VoiceResponse

__all__ = ["dial_twiml", "stream_endpoint", "stream_twiml"]

_WS_SCHEMES = {"https": "wss", "http": "ws"}


def stream_endpoint(url: str) -> str:
    """The WebSocket URL Twilio streams to, from a stream URL or a public base URL.

    A `wss://`/`ws://` URL names the stream endpoint itself and is kept. An
    `https://`/`http://` URL is the server's public base (as voice_runtime's
    VOICE_STREAM_URL was): it becomes `wss://`/`ws://` and `/voice` is appended. Twilio
    cannot stream to an https URL; sending one unchanged gives a silent call.
    """
    parts = urlsplit(url)
    scheme = _WS_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        return url
    path = parts.path.rstrip("/") + "/voice"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def stream_twiml(
    stream_url: str,
    parameters: Mapping[str, str] | None = None,
    status_callback: str | None = None,
) -> str:
    """`<Connect><Stream url=…>` with a `<Parameter>` per item; `stream_url` as
    `stream_endpoint` reads it (an https base URL streams to `wss://…/voice`).

    Twilio passes the parameters on in the stream's `start` message
    (`customParameters`): that is how the WebSocket learns which call it carries.
    `<Connect>` (not `<Start>`) makes the stream bidirectional and holds the call
    until the socket closes.
    """
    response = VoiceResponse()
    connect = Connect()
    options = {"status_callback": status_callback} if status_callback else {}
    stream = connect.stream(url=stream_endpoint(stream_url), **options)
    for name, value in (parameters or {}).items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def dial_twiml(to: str) -> str:
    """`<Dial>to</Dial>`: redirecting a live call to it transfers the call."""
    response = VoiceResponse()
    response.dial(to)
    return str(response)
