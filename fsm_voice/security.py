"""Security primitives shared by the webhooks, the `/voice` upgrade and the REST client.

- `Secret` holds a credential whose repr/str is masked, so it cannot leak into a log
  line, a traceback's locals dump or the event log by accident; `reveal()` is the one
  explicit way out.
- `call_token` binds a Media Stream to the call it was issued for: the TwiML we return
  carries it as a `<Parameter>`, and `/voice` refuses a `start` whose token does not
  match. It is an HMAC of the call id, the CallSid when known at mint time, the time
  it was issued and its kind, so any server process holding the key can check it
  without shared state; its age and single use are checked by
  `call.stream_guard.StreamGuard`.

Checking `X-Twilio-Signature` is Twilio's: `fsm_voice.twilio.signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Secret",
    "StreamToken",
    "call_token",
    "call_token_valid",
    "is_phone_number",
    "mask_phone",
    "mask_phone_values",
    "read_call_token",
]

_MASK = "****"


class Secret:
    """A credential that never shows itself: `repr`/`str`/f-strings print `****`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str] | None = None) -> Secret | None:
        """The variable `name` as a Secret, or None when unset or empty."""
        value = (os.environ if environ is None else environ).get(name, "")
        return cls(value) if value else None

    def reveal(self) -> str:
        """The plain value: call only where it leaves for its one legitimate use."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", hashlib.sha256(self._value.encode()).digest()))

    def __reduce__(self) -> tuple[object, ...]:  # never pickle a credential into a process pool
        raise TypeError("a Secret cannot be pickled")


def mask_phone(number: str, keep: int = 4) -> str:
    """`+358401234567` → `+********4567`: enough to tell calls apart, not to dial."""
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= keep:
        return "*" * len(number)
    hidden = len(digits) - keep
    out: list[str] = []
    for c in number:
        if c.isdigit() and hidden > 0:
            out.append("*")
            hidden -= 1
        else:
            out.append(c)
    return "".join(out)


# A whole string that is a phone number: +358 40 1234567, (415) 555-0100, 0401234567.
_PHONE = re.compile(r"\+?[0-9(][0-9 ().-]{5,}[0-9]")


def is_phone_number(value: str) -> bool:
    """Whether the whole of `value` is shaped like a phone number."""
    return _PHONE.fullmatch(value) is not None


def mask_phone_values(value: Any) -> Any:
    """`value` with every string that is a phone number masked, at any depth (for log
    payloads: conversation variables, SMS recipients, transfer targets)."""
    if isinstance(value, str):
        return mask_phone(value) if is_phone_number(value) else value
    if isinstance(value, dict):
        return {k: mask_phone_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_phone_values(v) for v in value]
    return value


# v2.<kind>.<issued ms>.<CallSid or empty>.<nonce>.<mac>: every field but the mac is
# plain (a CallSid is no secret: Twilio's `start` carries it too), so the checker can
# name what is wrong. Twilio allows 500 characters per <Parameter>; this is < 130.
_TOKEN_VERSION = "v2"
_KINDS = {"s": False, "r": True}  # stream | redirect
_TOKEN_FIELD = re.compile(r"[A-Za-z0-9]*")
_ISSUED = re.compile(r"[0-9]{1,15}")  # ASCII only: ms since 1970 are 13 digits till 2286
_MAC_LABEL = b"fsm-voice stream token v2"


@dataclass(frozen=True, slots=True)
class StreamToken:
    """What a valid stream token says (its signature already checked)."""

    call_id: str
    issued_ms: int  # wall-clock ms since the epoch, from the minting server's Clock
    call_sid: str | None  # the Twilio call it is bound to, when known at mint time
    redirect: bool  # minted by the runtime to move a live call to a new stream
    nonce: str  # tells a redirect's tokens apart ("" for a call's first stream)

    @property
    def use_key(self) -> str:
        """What single use is kept by: one stream per token."""
        return f"{self.call_id}/{self.nonce}" if self.redirect else self.call_id


def _mac(key: Secret, call_id: str, kind: str, issued: str, sid: str, nonce: str) -> str:
    message = "\n".join((kind, call_id, issued, sid, nonce)).encode()
    digest = hmac.new(key.reveal().encode(), _MAC_LABEL + b"\n" + message, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode("ascii")


def call_token(
    key: Secret,
    call_id: str,
    *,
    issued_ms: int,
    call_sid: str | None = None,
    redirect: bool = False,
    nonce: str = "",
) -> str:
    """The stream token for `call_id`, issued at `issued_ms` (the minting Clock's
    `wall_ms()`), bound to `call_sid` when given. A redirect token needs the CallSid."""
    sid = call_sid or ""
    if not _TOKEN_FIELD.fullmatch(sid) or not _TOKEN_FIELD.fullmatch(nonce):
        raise ValueError("a CallSid and a nonce are letters and digits")
    if redirect and not sid:
        raise ValueError("a redirect token is bound to the CallSid of the live call")
    kind = "r" if redirect else "s"
    issued = str(int(issued_ms))
    mac = _mac(key, call_id, kind, issued, sid, nonce)
    return ".".join((_TOKEN_VERSION, kind, issued, sid, nonce, mac))


def read_call_token(key: Secret, call_id: str, token: str | None) -> StreamToken | None:
    """What `token` says, when it was signed with `key` for `call_id`; else None."""
    parts = (token or "").split(".")
    if len(parts) != 6 or parts[0] != _TOKEN_VERSION or parts[1] not in _KINDS:
        return None
    _, kind, issued, sid, nonce, mac = parts
    if not _ISSUED.fullmatch(issued):
        return None
    expected = _mac(key, call_id, kind, issued, sid, nonce)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return None
    return StreamToken(call_id, int(issued), sid or None, _KINDS[kind], nonce)


def call_token_valid(key: Secret, call_id: str, token: str | None) -> bool:
    """Whether `token` was signed with `key` for `call_id` (its age is not checked)."""
    return read_call_token(key, call_id, token) is not None
