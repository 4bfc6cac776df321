"""Outbound calls and stream TwiML, as `voice_runtime.transports.twilio_call` offered.

    call_sid = initiate_outbound_call("+358401234567")   # Twilio dials, then streams
    xml = build_stream_twiml("wss://example.ngrok.io/voice")   # for an inbound webhook

Credentials come from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER (and
optionally TWILIO_REGION, TWILIO_EDGE, TWILIO_HTTP_TIMEOUT_S, TWILIO_API_BASE); the
stream URL from `stream_url` or VOICE_STREAM_URL. The TwiML carries a fresh `call_id`
and its stream `token` (signed with the stream key `/voice` checks with), so a
`/voice` that checks tokens accepts the stream.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fsm_voice.clock import RandomIds
from fsm_voice.errors import ConfigError, MissingStreamUrlError
from fsm_voice.runtime.config import derive_stream_key
from fsm_voice.security import Secret, call_token
from fsm_voice.twilio.rest import DEFAULT_TIMEOUT_S, TwilioRest
from fsm_voice.twilio.twiml import stream_twiml

__all__ = [
    "build_stream_twiml",
    "build_stream_xml",
    "initiate_outbound_call",
    "rest_from_env",
]


def build_stream_twiml(
    stream_url: str,
    parameters: Mapping[str, str] | None = None,
    status_callback: str | None = None,
) -> str:
    """`<Response><Connect><Stream url=…>` with a `<Parameter>` per item."""
    return stream_twiml(stream_url, parameters, status_callback)


build_stream_xml = build_stream_twiml  # the name older voice_runtime code uses


def rest_from_env(
    environ: Mapping[str, str] | None = None, *, api_base: str | None = None
) -> TwilioRest:
    """A `TwilioRest` from the TWILIO_* variables (ConfigError names what is missing)."""
    env = os.environ if environ is None else environ
    names = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER")
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ConfigError(f"Twilio needs {', '.join(missing)} in the environment")
    return TwilioRest(
        env["TWILIO_ACCOUNT_SID"],
        Secret(env["TWILIO_AUTH_TOKEN"]),
        env["TWILIO_PHONE_NUMBER"],
        region=env.get("TWILIO_REGION") or None,
        edge=env.get("TWILIO_EDGE") or None,
        timeout_s=float(env.get("TWILIO_HTTP_TIMEOUT_S") or DEFAULT_TIMEOUT_S),
        # TWILIO_API_BASE: a Twilio-compatible API elsewhere (a proxy, a local fake)
        api_base=api_base or env.get("TWILIO_API_BASE") or None,
    )


def initiate_outbound_call(
    to_number: str,
    stream_url: str | None = None,
    *,
    parameters: Mapping[str, str] | None = None,
    status_callback: str | None = None,
    machine_detection: str | None = None,
    amd_callback: str | None = None,
    environ: Mapping[str, str] | None = None,
    api_base: str | None = None,
) -> str:
    """Dial `to_number`; when answered, Twilio streams the call to `stream_url`.

    Returns the CallSid. Raises `MissingStreamUrlError` when neither `stream_url` nor
    VOICE_STREAM_URL is set, `ConfigError` for missing credentials and
    `TwilioApiError` when Twilio refuses.
    """
    env = os.environ if environ is None else environ
    url = stream_url or env.get("VOICE_STREAM_URL")
    if not url:
        raise MissingStreamUrlError()
    rest = rest_from_env(env, api_base=api_base)
    call_id = RandomIds().new_id("FV")
    # the key `/voice` checks tokens with: FSM_VOICE_STREAM_KEY, else derived from the token
    key = Secret.from_env("FSM_VOICE_STREAM_KEY", env) or derive_stream_key(
        Secret(env["TWILIO_AUTH_TOKEN"])
    )
    stream_parameters = {"call_id": call_id, "token": call_token(key, call_id)}
    stream_parameters.update(parameters or {})
    twiml = stream_twiml(url, stream_parameters)
    return rest.create_call(to_number, twiml, status_callback, machine_detection, amd_callback)
