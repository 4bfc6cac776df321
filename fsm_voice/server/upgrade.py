"""Checking a `/voice` WebSocket upgrade before it is accepted, and refusing it.

Twilio signs the upgrade request of a Media Stream like any webhook: HMAC-SHA1 of the
URL it was given in `<Stream url="wss://…">` (a GET, so no POST parameters), keyed by
the account's auth token, in `X-Twilio-Signature`. A server behind a proxy or a tunnel
sees another scheme, host or port than Twilio used, so the URL checked is the public
one from the settings, with the request's path and query added where it has none.

Without a public URL the Host header names the URL: one that is not a host[:port]
is refused (`host_invalid`) before it reaches a URL parser.

A refusal is answered with a plain HTTP response (ASGI's WebSocket denial response
where the server supports it, else a close before accept, which is a 403) and
counted in the log: one row per minute and reason (`EventLog.count_refusal`), never a
row per request, so a flood of them cannot fill the disk. The signature and the
token are never written anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.types import Scope, Send

from fsm_voice.call.config import SecuritySettings
from fsm_voice.clock import Clock
from fsm_voice.eventlog.base import EventLog
from fsm_voice.twilio.signature import twilio_signature_valid
from fsm_voice.twilio.twiml import stream_endpoint

__all__ = ["UPGRADE_REFUSALS", "UpgradeRefusal", "check_upgrade", "refuse_upgrade", "signed_url"]

_SIGNATURE_HEADER = b"x-twilio-signature"
_DENIAL_EXTENSION = "websocket.http.response"
# A DNS name or IPv4 address, or a bracketed IPv6 one, and an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")

# Every reason an upgrade is refused for (the `refusals` rows' `reason`).
UPGRADE_REFUSALS = frozenset(
    {"signature_missing", "signature_invalid", "host_invalid", "too_many_calls"}
)


@dataclass(frozen=True, slots=True)
class UpgradeRefusal:
    status: int  # the HTTP status the upgrade is answered with
    reason: str  # a stable snake_case name, the call's end reason in the log


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def signed_url(scope: Scope, public_url: str | None) -> str | None:
    """The URL Twilio signed for this upgrade request; None when the Host header (with
    no public URL to use instead) is missing or not a host[:port]."""
    path = str(scope.get("root_path", "")) + str(scope["path"])
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    if public_url is None:
        host = _header(scope, b"host") or ""
        if not _HOST.fullmatch(host) or not _port_valid(host):
            return None
        return str(urlunsplit(("wss", host, path, query, "")))
    # The URL in the TwiML is what Twilio signs: an https base (voice_runtime's
    # VOICE_STREAM_URL) streams to wss://…/voice.
    public = urlsplit(stream_endpoint(public_url))
    return str(
        urlunsplit(
            (
                public.scheme,
                public.netloc,
                public.path if public.path not in ("", "/") else path,
                public.query or query,
                "",
            )
        )
    )


def _port_valid(host: str) -> bool:
    try:
        urlsplit(f"//{host}").port  # noqa: B018 - parsing it is the check (0-65535)
    except ValueError:
        return False
    return True


def check_upgrade(
    scope: Scope,
    security: SecuritySettings | None,
    admitted: int,
    max_concurrent_calls: int,
) -> tuple[UpgradeRefusal | None, dict[str, Any] | None]:
    """(why the upgrade is refused, or None; what to log about its admission, or None).

    The signature is checked first: an unsigned stranger gets a 403 whether or not
    the server is full, and learns nothing about its load.
    """
    admission: dict[str, Any] | None = None
    if security is not None and security.verifies:
        assert security.auth_token is not None  # `verifies` says so
        signature = _header(scope, _SIGNATURE_HEADER)
        if not signature:
            return UpgradeRefusal(403, "signature_missing"), None
        url = signed_url(scope, security.public_url)
        if url is None:
            return UpgradeRefusal(403, "host_invalid"), None
        if not _signature_valid(security, url, signature):
            return UpgradeRefusal(403, "signature_invalid"), None
        admission = {"verified": True}
    elif security is not None:
        admission = {"verified": False, "reason": security.unverified_reason}
    if max_concurrent_calls and admitted >= max_concurrent_calls:
        return UpgradeRefusal(503, "too_many_calls"), None
    return None, admission


def _signature_valid(security: SecuritySettings, url: str, signature: str) -> bool:
    assert security.auth_token is not None
    try:
        return twilio_signature_valid(security.auth_token, url, None, signature)
    except ValueError:  # a URL the validator cannot parse (a bad port): not Twilio's
        return False


async def refuse_upgrade(
    scope: Scope, send: Send, refusal: UpgradeRefusal, log: EventLog, clock: Clock
) -> None:
    """Answer the upgrade with `refusal.status` and count it in the log."""
    log.count_refusal(clock.wall_ms(), refusal.reason, refusal.status)
    if _DENIAL_EXTENSION in scope.get("extensions", {}):
        body = f"{refusal.reason}\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send(
            {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # a close before accept: the server answers 403
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason})
