"""The typed contracts of voice_runtime's regional Twilio REST API, and its errors.

`TwilioRegion` names one explicit routing target: the API host, the account whose
calls live there, and the credentials (an API key and its secret, or the account SID
and auth token) to use there. `TwilioCallRow` is one call of a `list_calls` answer.
Both are frozen pydantic models, as voice_runtime's were (`model_dump`,
`model_validate`, `model_construct` work); invalid input is a `ValueError` (pydantic's
`ValidationError`) whose message never shows the input, so never a secret.

The errors are the seed's types (`RuntimeError`, `ValueError`) and fsm_voice's at once
(`ConfigError`, `TwilioApiError`, `FsmVoiceError`): code written for either catches them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fsm_voice.errors import ConfigError, FsmVoiceError, MissingStreamUrlError, TwilioApiError
from fsm_voice.twilio.rest import CALL_NOT_FOUND, DEFAULT_TIMEOUT_S

__all__ = [
    "StreamUrlMissingError",
    "TwilioCallListIncompleteError",
    "TwilioCallNotFoundError",
    "TwilioCallRow",
    "TwilioCredentialsMissingError",
    "TwilioRegion",
    "TwilioTimeoutError",
    "UnknownTransportError",
    "http_timeout",
    "validate_sid",
]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# api.twilio.com, or api.<edge>.<region>.twilio.com (e.g. api.dublin.ie1.twilio.com)
_API_HOST = re.compile(rf"api\.twilio\.com|api\.{_LABEL}\.{_LABEL}\.twilio\.com")


def validate_sid(value: object) -> str:
    """A SID goes into a URL path: only ASCII letters and digits (no `/`, `%`, …)."""
    if not isinstance(value, str) or not value.isascii() or not value.isalnum():
        raise ValueError("a SID must be a nonblank ASCII alphanumeric string")
    return value


class TwilioRegion(BaseModel):
    """Where and as whom one explicit-region request goes; `auth` never shows in repr."""

    model_config = ConfigDict(
        frozen=True, strict=True, hide_input_in_errors=True, revalidate_instances="always"
    )

    api_host: str
    account_sid: str
    auth: tuple[str, str] = Field(repr=False)

    @field_validator("api_host")
    @classmethod
    def _twilio_api_host(cls, value: str) -> str:
        if not _API_HOST.fullmatch(value):
            raise ValueError("not a Twilio API host (api.twilio.com or api.<edge>.<region>…)")
        return value

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        return validate_sid(value)

    @field_validator("auth")
    @classmethod
    def _two_nonblank_parts(cls, value: tuple[str, str]) -> tuple[str, str]:
        if any(not part.strip() for part in value):
            raise ValueError("auth needs two nonblank strings")
        return value


class TwilioCallRow(BaseModel):
    """One call: `start_time` (epoch seconds) and `caller` are None when unknown."""

    model_config = ConfigDict(frozen=True, strict=True, hide_input_in_errors=True)

    call_sid: str
    status: str
    start_time: float | None
    direction: str
    caller: str | None

    @field_validator("call_sid", "status", "direction")
    @classmethod
    def _nonblank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a call's sid, status and direction cannot be blank")
        return value

    @field_validator("caller")
    @classmethod
    def _blank_is_unknown(cls, value: str | None) -> str | None:
        return value if value is not None and value.strip() else None


class CallRecord(BaseModel):
    """One record of a Calls page as Twilio sent it, checked before it is trusted.

    The SDK's own parser turns a malformed date into None and drops its offset; here
    a malformed or offset-less `start_time` is an error, never an unknown time.
    """

    model_config = ConfigDict(strict=True, hide_input_in_errors=True)

    sid: str
    status: str
    direction: str
    start_time: datetime | None = None
    caller: str | None = Field(default=None, alias="from")

    @field_validator("start_time", mode="before")
    @classmethod
    def _aware_time(cls, value: object) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = parsedate_to_datetime(value)  # RFC 2822, as Twilio sends it
            except (TypeError, ValueError, OverflowError):
                raise ValueError("malformed call start_time") from None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError("a call's start_time must carry its UTC offset")
        return value.astimezone(UTC)

    def row(self) -> TwilioCallRow:
        start = self.start_time.timestamp() if self.start_time is not None else None
        return TwilioCallRow(
            call_sid=self.sid,
            status=self.status,
            start_time=start,
            direction=self.direction,
            caller=self.caller,
        )


class CallPage(BaseModel):
    """A Calls page: both keys on every page (an absent continuation is not `None`)."""

    model_config = ConfigDict(strict=True, hide_input_in_errors=True)

    calls: list[CallRecord]
    next_page_uri: str | None


class TwilioCallNotFoundError(TwilioApiError, RuntimeError):
    """No region tried knew the call (404/20404 everywhere): nothing proves it ended."""

    def __init__(self, attempted_hosts: tuple[str, ...]) -> None:
        super().__init__(
            f"Call not found in: {', '.join(attempted_hosts)}", status=404, code=CALL_NOT_FOUND
        )
        self.attempted_hosts = attempted_hosts


class TwilioCallListIncompleteError(FsmVoiceError, RuntimeError):
    """The region still had more pages after `max_pages`: no partial list is returned."""

    def __init__(self, api_host: str, pages_fetched: int) -> None:
        super().__init__(f"Incomplete call list from {api_host} after {pages_fetched} pages")
        self.api_host = api_host
        self.pages_fetched = pages_fetched


class TwilioCredentialsMissingError(ConfigError, RuntimeError):
    """A TWILIO_* variable a call needs is not set."""


class StreamUrlMissingError(MissingStreamUrlError, RuntimeError):
    """No VOICE_STREAM_URL (nor `stream_url`) for an outbound call."""


class TwilioTimeoutError(ConfigError, ValueError):
    """TWILIO_HTTP_TIMEOUT is not a finite, positive number of seconds."""


class UnknownTransportError(ConfigError, ValueError):
    """A transport (or SMS transport) provider fsm_voice does not have."""


def http_timeout(environ: Mapping[str, str]) -> float:
    """TWILIO_HTTP_TIMEOUT (or fsm_voice's TWILIO_HTTP_TIMEOUT_S) in seconds; 15 unset.

    A value that is not a finite positive number is refused before any request: a
    wrong timeout must not silently become "wait forever".
    """
    raw = environ.get("TWILIO_HTTP_TIMEOUT") or environ.get("TWILIO_HTTP_TIMEOUT_S")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise TwilioTimeoutError("TWILIO_HTTP_TIMEOUT must be finite and positive")
    return value
