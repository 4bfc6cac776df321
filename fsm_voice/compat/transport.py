"""Transport factories, as `voice_runtime.transport` offered.

    sms = get_sms_transport()            # Twilio, from TWILIO_* variables
    sms.send_sms(to="+358401234567", body="Your appointment is confirmed.")
    # {"message_sid": "SM...", "status": "queued", "to": "+358401234567"}

Consumers never import the Twilio SDK: these objects wrap `fsm_voice.twilio`, and
raise its `TwilioApiError` when Twilio refuses. An unknown provider is a `ValueError`
("Unknown SMS transport", as in voice_runtime) that is also a `ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fsm_voice.compat.twilio_call import (
    build_stream_twiml,
    initiate_outbound_call,
    rest_from_env,
)
from fsm_voice.compat.twilio_models import UnknownTransportError
from fsm_voice.twilio.rest import TwilioRest

__all__ = [
    "TRANSPORTS",
    "TwilioSmsTransport",
    "TwilioTransport",
    "create_transport",
    "get_sms_transport",
]

TRANSPORTS = ("twilio",)


class TwilioSmsTransport:
    """Sends SMS through Twilio's REST API (blocking: call it from a thread)."""

    def __init__(self, environ: Mapping[str, str] | None = None, api_base: str | None = None):
        self._environ = dict(os.environ if environ is None else environ)
        self._api_base = api_base
        self._rest: TwilioRest | None = None

    @property
    def rest(self) -> TwilioRest:
        """The REST client, made on first use (credentials are read then)."""
        if self._rest is None:
            self._rest = rest_from_env(self._environ, api_base=self._api_base)
        return self._rest

    def send_sms(self, to: str, body: str) -> dict[str, str]:
        """`{"message_sid", "status", "to"}`; raises `TwilioApiError` when refused."""
        return self.rest.send_sms(to, body)


class TwilioTransport(TwilioSmsTransport):
    """Twilio as a whole: outbound calls, stream TwiML and SMS."""

    def initiate_call(self, to_number: str, stream_url: str | None = None) -> str:
        return initiate_outbound_call(
            to_number, stream_url, environ=self._environ, api_base=self._api_base
        )

    def build_stream_twiml(self, stream_url: str) -> str:
        return build_stream_twiml(stream_url)

    def hangup(self, call_sid: str) -> str:
        """End a live call; "completed", or "already_ended" if it was over."""
        return str(self.rest.hangup(call_sid))


def create_transport(
    provider: str = "twilio",
    *,
    environ: Mapping[str, str] | None = None,
    api_base: str | None = None,
) -> TwilioTransport:
    _check(provider, "transport")
    return TwilioTransport(environ, api_base)


def get_sms_transport(
    provider: str = "twilio",
    *,
    environ: Mapping[str, str] | None = None,
    api_base: str | None = None,
) -> TwilioSmsTransport:
    _check(provider, "SMS transport")
    return TwilioSmsTransport(environ, api_base)


def _check(provider: str, what: str) -> None:
    if provider not in TRANSPORTS:
        choices = ", ".join(TRANSPORTS)
        raise UnknownTransportError(f"Unknown {what}: {provider!r} (choose from {choices})")
