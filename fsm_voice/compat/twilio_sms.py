"""`send_sms`, as `voice_runtime.transports.twilio_sms` offered it.

    send_sms("+358401234567", "Your appointment is confirmed.")
    # {"message_sid": "SM…", "status": "queued", "to": "+358401234567"}

From TWILIO_PHONE_NUMBER, with TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN (missing ones are
a `RuntimeError`, also fsm_voice's `ConfigError`), routed by TWILIO_REGION/TWILIO_EDGE
and bounded by TWILIO_HTTP_TIMEOUT. Blocking: call it from a thread. The SDK's errors
(`TwilioRestException`, `requests` timeouts) are handed on, as voice_runtime did;
`fsm_voice.transport.get_sms_transport()` gives fsm_voice's `TwilioApiError` instead.
"""

from __future__ import annotations

import os

from fsm_voice.compat.twilio_client import build_twilio_client
from fsm_voice.compat.twilio_models import TwilioCredentialsMissingError

__all__ = ["send_sms"]


def send_sms(to: str, body: str) -> dict[str, str]:
    """Send `body` to `to`: `{"message_sid", "status", "to"}`."""
    account_sid = os.environ.get("TWILIO_ACCOUNT_SID", "")
    auth_token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    from_number = os.environ.get("TWILIO_PHONE_NUMBER", "")
    if not account_sid or not auth_token:
        raise TwilioCredentialsMissingError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN required")
    if not from_number:
        raise TwilioCredentialsMissingError("TWILIO_PHONE_NUMBER required")
    client = build_twilio_client(account_sid, auth_token)
    message = client.messages.create(to=to, from_=from_number, body=body)
    return {"message_sid": str(message.sid), "status": str(message.status), "to": to}
