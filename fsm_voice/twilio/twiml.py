"""TwiML documents, built with the SDK's `VoiceResponse` (it escapes every value)."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, VoiceResponse

__all__ = ["dial_twiml", "stream_twiml"]


def stream_twiml(
    stream_url: str,
    parameters: Mapping[str, str] | None = None,
    status_callback: str | None = None,
) -> str:
    """`<Connect><Stream url=…>` with a `<Parameter>` per item.

    Twilio passes the parameters on in the stream's `start` message
    (`customParameters`): that is how the WebSocket learns which call it carries.
    `<Connect>` (not `<Start>`) makes the stream bidirectional and holds the call
    until the socket closes.
    """
    response = VoiceResponse()
    connect = Connect()
    options = {"status_callback": status_callback} if status_callback else {}
    stream = connect.stream(url=stream_url, **options)
    for name, value in (parameters or {}).items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def dial_twiml(to: str) -> str:
    """`<Dial>to</Dial>`: redirecting a live call to it transfers the call."""
    response = VoiceResponse()
    response.dial(to)
    return str(response)
