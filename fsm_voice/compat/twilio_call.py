"""Outbound calls, hangup, call lists and stream TwiML, as `voice_runtime.transports.twilio_call`.

    call_sid = initiate_outbound_call("+358401234567")   # Twilio dials, then streams
    hangup_call(call_sid)                                 # ends it (idempotent)
    hangup_call(call_sid, regions=(us, ie))               # tries each region in order
    rows = list_calls(api_host=…, account_sid=…, auth=…, to=…, start_after=…)
    xml = build_stream_twiml("https://example.ngrok.io")  # streams to wss://…/voice

Credentials come from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER;
routing from TWILIO_REGION and TWILIO_EDGE (or explicit `TwilioRegion`s); the HTTP
timeout from TWILIO_HTTP_TIMEOUT (15 s); TWILIO_API_BASE sends every request to a
Twilio-compatible API elsewhere (a proxy, a local fake). The stream URL is `stream_url`
or VOICE_STREAM_URL: an https base URL becomes `wss://…/voice`, as voice_runtime did.
The TwiML carries a fresh `call_id` and its stream `token` (signed with the stream
key `/voice` checks with), so a `/voice` that checks tokens accepts the stream.
`build_stream_twiml` adds them too whenever the environment has a stream key
(TWILIO_AUTH_TOKEN or FSM_VOICE_STREAM_KEY): pass the webhook's `call_sid` to bind
the token to that call.

`hangup_call`, `list_calls` and `list_recent_calls` hand the SDK's errors on as
voice_runtime did (`TwilioRestException`, `requests` timeouts); missing settings are
`RuntimeError`s and bad arguments `ValueError`s (also fsm_voice's `ConfigError`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from twilio.base.exceptions import TwilioRestException

from fsm_voice.call.config import derive_stream_key
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.compat.twilio_call_list import list_calls
from fsm_voice.compat.twilio_client import build_explicit_twilio_client, build_twilio_client
from fsm_voice.compat.twilio_models import (
    StreamUrlMissingError,
    TwilioCallListIncompleteError,
    TwilioCallNotFoundError,
    TwilioCallRow,
    TwilioCredentialsMissingError,
    TwilioRegion,
    http_timeout,
    validate_sid,
)
from fsm_voice.security import Secret, call_token
from fsm_voice.twilio.rest import CALL_NOT_FOUND, CALL_NOT_IN_PROGRESS, TwilioRest
from fsm_voice.twilio.twiml import stream_endpoint, stream_twiml

__all__ = [
    "TwilioCallListIncompleteError",
    "TwilioCallNotFoundError",
    "TwilioCallRow",
    "TwilioRegion",
    "build_route_stream_xml",
    "build_stream_twiml",
    "build_stream_xml",
    "build_twilio_client",
    "hangup_call",
    "initiate_outbound_call",
    "list_calls",
    "list_recent_calls",
    "rest_from_env",
]

logger = logging.getLogger("fsm_voice.compat")


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


def build_route_stream_xml(stream_url: str, route_token: str) -> str:
    """`<Connect><Stream>` to `/voice/<route_token>` under the public base `stream_url`
    (https → wss); the token is percent-encoded into one path segment."""
    parts = urlsplit(stream_endpoint(stream_url))
    route = f"{parts.path}/{quote(route_token, safe='')}"
    return build_stream_twiml(parts._replace(path=route).geturl())


def rest_from_env(
    environ: Mapping[str, str] | None = None, *, api_base: str | None = None
) -> TwilioRest:
    """A `TwilioRest` from the TWILIO_* variables; `TwilioCredentialsMissingError` (a
    `ConfigError` and a `RuntimeError`) names what is missing."""
    env = os.environ if environ is None else environ
    names = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER")
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise TwilioCredentialsMissingError(f"Twilio needs {', '.join(missing)} in the environment")
    return TwilioRest(
        env["TWILIO_ACCOUNT_SID"],
        Secret(env["TWILIO_AUTH_TOKEN"]),
        env["TWILIO_PHONE_NUMBER"],
        region=env.get("TWILIO_REGION") or None,
        edge=env.get("TWILIO_EDGE") or None,
        timeout_s=http_timeout(env),
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
    VOICE_STREAM_URL is set, `ConfigError` for missing credentials (both are also
    `RuntimeError`s, as in voice_runtime) and `TwilioApiError` when Twilio refuses.
    """
    env = os.environ if environ is None else environ
    url = stream_url or env.get("VOICE_STREAM_URL")
    if not url:
        raise StreamUrlMissingError()
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


def hangup_call(call_sid: str, *, regions: tuple[TwilioRegion, ...] | None = None) -> None:
    """End a call (`Status=completed`); returns None once it is over, however it ended.

    Without `regions`: the account from TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN (else
    `RuntimeError`), routed by TWILIO_REGION/TWILIO_EDGE. With `regions`: each region
    in order, the next one only when the call is unknown there (404/20404); all of
    them are checked before the first request (`ValueError`). A call already over
    (400/21220) counts as ended. A call no region knows raises
    `TwilioCallNotFoundError` (its `attempted_hosts`): absence is not proof the call
    ended. Every other error (another 404, 401, 5xx, a timeout) is raised at once,
    with no further region tried.
    """
    if regions is not None:
        validate_sid(call_sid)
        checked = _validated_regions(regions)
        for region in checked:
            if _complete_call(build_explicit_twilio_client(region), call_sid):
                return
        raise TwilioCallNotFoundError(tuple(region.api_host for region in checked))
    account_sid, auth_token = _ambient_credentials()
    _check_path_safe(call_sid)
    client = build_twilio_client(account_sid, auth_token)
    if not _complete_call(client, call_sid):
        host = urlsplit(client.get_hostname(client.api.base_url)).hostname
        raise TwilioCallNotFoundError((str(host),))


def _validated_regions(regions: object) -> tuple[TwilioRegion, ...]:
    """The one check of a region tuple (`hangup_call` and `register_voice_websocket`
    both use it): a nonempty tuple of valid regions on distinct hosts."""
    if not isinstance(regions, tuple) or not regions:
        raise ValueError("regions must be a nonempty tuple of TwilioRegion")
    checked = tuple(TwilioRegion.model_validate(region) for region in regions)
    hosts = [region.api_host for region in checked]
    if len(set(hosts)) != len(hosts):
        raise ValueError("each region must have its own api_host")
    return checked


def _complete_call(client: Any, call_sid: str) -> bool:
    """True when the call is over; False only when this region does not know it."""
    try:
        client.calls(call_sid).update(status="completed")
    except TwilioRestException as error:
        if error.status == 404 and error.code == CALL_NOT_FOUND:
            return False
        if error.status == 400 and error.code == CALL_NOT_IN_PROGRESS:
            logger.info("call %s was already over (21220)", call_sid)
            return True
        raise
    logger.info("call %s hung up over REST", call_sid)
    return True


def list_recent_calls(lookback_s: float = 3600.0) -> list[dict[str, Any]]:
    """Deprecated: use `list_calls`, which is complete or raises, for one explicit region.

    `[{"call_sid", "status", "start_time"}]` (epoch seconds, 0 when unknown) of the
    calls to TWILIO_PHONE_NUMBER (any number when unset) started within `lookback_s`,
    at most 200, from the ambient account and routing. `[]` without credentials.
    """
    env = os.environ
    account_sid, auth_token = env.get("TWILIO_ACCOUNT_SID", ""), env.get("TWILIO_AUTH_TOKEN", "")
    if not account_sid or not auth_token:
        return []
    now_s = SystemClock().wall_ms() / 1000
    after = datetime.fromtimestamp(now_s - lookback_s, tz=UTC)
    calls = build_twilio_client(account_sid, auth_token).calls.list(
        to=env.get("TWILIO_PHONE_NUMBER") or None, start_time_after=after, limit=200
    )
    return [
        {
            "call_sid": call.sid,
            "status": str(call.status or ""),
            "start_time": call.start_time.timestamp() if call.start_time else 0,
        }
        for call in calls
    ]


def _ambient_credentials() -> tuple[str, str]:
    account_sid = os.environ.get("TWILIO_ACCOUNT_SID", "")
    auth_token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    if not account_sid or not auth_token:
        raise TwilioCredentialsMissingError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN required")
    return account_sid, auth_token


def _check_path_safe(call_sid: object) -> None:
    """The ambient hangup takes voice_runtime's looser SIDs (e.g. `CA-reaped`), but
    nothing that would change the request's path or query."""
    if (
        not isinstance(call_sid, str)
        or not call_sid.isascii()
        or not call_sid.replace("-", "").replace("_", "").isalnum()
    ):
        raise ValueError("a call SID must be ASCII letters, digits, '-' or '_'")
