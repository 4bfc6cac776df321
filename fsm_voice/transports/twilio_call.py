"""Outbound calls and stream TwiML, as `voice_runtime.transports.twilio_call` offered.

    call_sid = initiate_outbound_call("+358401234567")   # Twilio dials, then streams
    xml = build_stream_twiml("wss://example.ngrok.io/voice")   # for an inbound webhook

Credentials come from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER (and
optionally TWILIO_REGION, TWILIO_EDGE, TWILIO_HTTP_TIMEOUT_S, TWILIO_API_BASE); the
stream URL from `stream_url` or VOICE_STREAM_URL. The TwiML carries a fresh `call_id`
and its stream `token` (signed with the stream key `/voice` checks with), so a
`/voice` that checks tokens accepts the stream. `build_stream_twiml` adds them too
whenever the environment has a stream key (TWILIO_AUTH_TOKEN or FSM_VOICE_STREAM_KEY):
pass the webhook's `call_sid` to bind the token to that call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fsm_voice.clock import RandomIds, SystemClock
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
    *,
    call_sid: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """`<Response><Connect><Stream url=…>` with a `<Parameter>` per item.

    With a stream key in the environment (TWILIO_AUTH_TOKEN, or FSM_VOICE_STREAM_KEY),
    `/voice` admits a stream only with its token, so one is added (with a fresh
    `call_id` unless `parameters` has one; bound to `call_sid` when given) unless
    `parameters` already carry a `token`.
    """
    env = os.environ if environ is None else environ
    params = dict(parameters or {})
    key = _stream_key(env)
    if key is not None and "token" not in params:
        params = _with_token(key, params, call_sid)
    return stream_twiml(stream_url, params, status_callback)


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
    key = _stream_key(env)
    assert key is not None  # rest_from_env checked TWILIO_AUTH_TOKEN
    # The CallSid comes back from the create that carries the TwiML: unbound token.
    stream_parameters = _with_token(key, {}, None)
    stream_parameters.update(parameters or {})
    twiml = stream_twiml(url, stream_parameters)
    return rest.create_call(to_number, twiml, status_callback, machine_detection, amd_callback)


def _stream_key(env: Mapping[str, str]) -> Secret | None:
    """The key `/voice` checks tokens with: FSM_VOICE_STREAM_KEY, else derived from
    TWILIO_AUTH_TOKEN; None when neither is set (then `/voice` checks none)."""
    key = Secret.from_env("FSM_VOICE_STREAM_KEY", env)
    token = Secret.from_env("TWILIO_AUTH_TOKEN", env)
    return key or (derive_stream_key(token) if token is not None else None)


def _with_token(key: Secret, params: dict[str, str], call_sid: str | None) -> dict[str, str]:
    call_id = params.get("call_id") or RandomIds().new_id("FV")
    issued_ms = SystemClock().wall_ms()
    token = call_token(key, call_id, issued_ms=issued_ms, call_sid=call_sid)
    return {**params, "call_id": call_id, "token": token}
