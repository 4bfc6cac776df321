"""The SDK clients of voice_runtime's Twilio functions (`voice_runtime.transports._twilio_client`).

Both are made by `fsm_voice.twilio.rest.sdk_client`, the one place fsm_voice builds a
Twilio REST client, so every request is bounded by TWILIO_HTTP_TIMEOUT (15 s unset).
TWILIO_API_BASE, when set, sends the requests to a Twilio-compatible API elsewhere (a
proxy, a local fake), naming the Twilio host they were meant for in a header.
"""

from __future__ import annotations

import os
from typing import Any

from fsm_voice.compat.twilio_models import TwilioRegion, http_timeout
from fsm_voice.security import Secret
from fsm_voice.twilio.rest import DEFAULT_TIMEOUT_S, sdk_client

__all__ = ["DEFAULT_TIMEOUT_S", "build_explicit_twilio_client", "build_twilio_client"]


def build_twilio_client(account_sid: str, auth_token: str) -> Any:
    """The account's client, routed as TWILIO_REGION and TWILIO_EDGE say (the ambient
    routing voice_runtime's callers relied on)."""
    env = os.environ
    return sdk_client(
        account_sid,
        Secret(auth_token),
        account_sid,
        region=env.get("TWILIO_REGION") or None,
        edge=env.get("TWILIO_EDGE") or None,
        timeout_s=http_timeout(env),
        api_base=env.get("TWILIO_API_BASE") or None,
    )


def build_explicit_twilio_client(region: TwilioRegion) -> Any:
    """A client bound to `region`'s host and credentials only: TWILIO_REGION,
    TWILIO_EDGE and the ambient credentials are ignored."""
    region = TwilioRegion.model_validate(region)
    username, secret = region.auth
    return sdk_client(
        username,
        Secret(secret),
        region.account_sid,
        api_host=region.api_host,
        timeout_s=http_timeout(os.environ),
        api_base=os.environ.get("TWILIO_API_BASE") or None,
    )
