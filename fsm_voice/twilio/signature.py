"""X-Twilio-Signature: how Twilio signs the requests it makes, and how to check one.

Twilio's algorithm ("Webhooks security", https://www.twilio.com/docs/usage/security
#validating-requests): take the full URL Twilio requested (scheme, host, path and query
string, exactly as configured), append every POST parameter's name immediately followed
by its value, sorted by name (case-sensitive, byte order), with no separators; sign the
result with HMAC-SHA1 keyed by the account's auth token; base64-encode the digest.

A Media Streams WebSocket upgrade is a GET, so it is signed over the `wss://` URL alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from fsm_voice.security import Secret

__all__ = [
    "SIGNATURE_HEADER",
    "signature_matches",
    "twilio_signature",
    "twilio_signature_valid",
]

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """The X-Twilio-Signature Twilio would send for a request to `url` with `params`."""
    fields = params or {}
    signed = url + "".join(name + fields[name] for name in sorted(fields))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(
    auth_token: str,
    signature: str | None,
    url: str,
    params: Mapping[str, str] | None = None,
) -> bool:
    """Whether `signature` is Twilio's for this request (compared in constant time)."""
    if not signature:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.encode())


def twilio_signature_valid(
    auth_token: Secret,
    url: str,
    params: Mapping[str, str] | None,
    signature: str | None,
) -> bool:
    """Whether `signature` is Twilio's X-Twilio-Signature for `url` and POST `params`."""
    if not signature:
        return False
    validator = RequestValidator(auth_token.reveal())
    return bool(validator.validate(url, dict(params or {}), signature))
