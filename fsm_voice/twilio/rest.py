"""Twilio's REST API through the real `twilio` SDK.

Methods are synchronous (the SDK is `requests`-based); async callers run them in a
worker thread (`anyio.to_thread`). Errors leave as `TwilioApiError`, never as SDK or
`requests` exceptions, and never with a credential in the message.

The HTTP layer is a `TwilioHttpClient` that applies our timeout and, when `api_base`
is given (tests, a local fake of the API), sends every request there instead of
`https://api[.edge][.region].twilio.com`, passing the host the SDK chose in
`X-Fsm-Voice-Target` so a fake can check region/edge routing.

`sdk_client` builds the SDK's `Client` for `TwilioRest` and for the voice_runtime
compat functions (which hand SDK errors on unchanged, as voice_runtime did): the one
place a client is made, always with a bounded timeout and never with ambient routing
or credentials it was not given.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import twilio.rest
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from fsm_voice.errors import ConfigError, TwilioApiError
from fsm_voice.security import Secret

__all__ = [
    "CALL_STATUS_EVENTS",
    "DEFAULT_TIMEOUT_S",
    "TARGET_HEADER",
    "HangupResult",
    "TwilioRest",
    "sdk_client",
]

DEFAULT_TIMEOUT_S = 15.0
TARGET_HEADER = "X-Fsm-Voice-Target"
CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
# Twilio's codes for "this call is already over": the resource is gone (20404), or the
# call is not in progress any more (21220, "Invalid call state").
CALL_NOT_FOUND = 20404
CALL_NOT_IN_PROGRESS = 21220


class HangupResult(StrEnum):
    COMPLETED = "completed"  # Twilio accepted Status=completed: it ends the call
    ALREADY_ENDED = "already_ended"  # the call was over before we asked


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # the SDK ships no types
    """The SDK's HTTP client with our timeout and an optional base-URL override."""

    def __init__(self, timeout_s: float, api_base: str | None) -> None:
        super().__init__(timeout=timeout_s)
        self.api_base = urlsplit(api_base) if api_base else None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.api_base is not None:
            target = urlsplit(url)
            headers = {**(headers or {}), TARGET_HEADER: target.netloc}
            base = self.api_base
            path = base.path.rstrip("/") + target.path
            url = urlunsplit((base.scheme, base.netloc, path, target.query, ""))
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


def sdk_client(
    username: str,
    password: Secret,
    account_sid: str,
    *,
    region: str | None = None,
    edge: str | None = None,
    api_host: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    api_base: str | None = None,
) -> Any:
    """The SDK's REST `Client` for one identity: an account SID and token, or an API key
    (`username` SK…, `password` its secret) acting for `account_sid`.

    Requests go to `api_host` when given (an explicit regional host such as
    `api.dublin.ie1.twilio.com`, with no region/edge rewriting), else to the host the
    SDK derives from `region`/`edge`. Every request is bounded by `timeout_s`.
    """
    if not timeout_s > 0 or timeout_s == float("inf"):  # also refuses NaN
        raise ConfigError(f"the Twilio HTTP timeout must be finite and positive, not {timeout_s}")
    # Looked up at call time, so code that patches `twilio.rest.Client` sees its patch.
    client = twilio.rest.Client(
        username,
        password.reveal(),
        account_sid,
        region=region,
        edge=edge,
        http_client=_HttpClient(timeout_s, api_base),
        # The SDK reads region, edge and credentials it was not given from this
        # mapping, and from os.environ when the mapping is empty: give it one that
        # answers nothing, so only what we pass here counts.
        environment={"TWILIO_REGION": "", "TWILIO_EDGE": ""},
    )
    if api_host is not None:
        client.api.base_url = f"https://{api_host}"
    return client


class TwilioRest:
    """Calls, hangup, transfer and SMS for one Twilio account."""

    def __init__(
        self,
        account_sid: str,
        auth_token: Secret,
        from_number: str,
        *,
        region: str | None = None,
        edge: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        api_base: str | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ConfigError("Twilio REST needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        self.account_sid = account_sid
        self.from_number = from_number
        self.timeout_s = timeout_s
        self._client = sdk_client(
            account_sid,
            auth_token,
            account_sid,
            region=region,
            edge=edge,
            timeout_s=timeout_s,
            api_base=api_base,
        )
        self._http = self._client.http_client

    @property
    def api_host(self) -> str:
        """The API host the SDK sends to, given region and edge."""
        return str(urlsplit(self._client.get_hostname("https://api.twilio.com")).netloc)

    def create_call(
        self,
        to: str,
        twiml: str,
        status_callback: str | None,
        machine_detection: str | None = None,
        amd_callback: str | None = None,
    ) -> str:
        """Dial `to` from our number, running `twiml` when answered; returns the CallSid.

        With `machine_detection` ("Enable" or "DetectMessageEnd") detection runs
        asynchronously: the TwiML starts at once and the verdict is POSTed to
        `amd_callback` later.
        """
        options: dict[str, Any] = {}
        if status_callback:
            options |= {
                "status_callback": status_callback,
                "status_callback_method": "POST",
                "status_callback_event": list(CALL_STATUS_EVENTS),
            }
        if machine_detection:
            if not amd_callback:
                raise ConfigError("asynchronous answering-machine detection needs amd_callback")
            options |= {
                "machine_detection": machine_detection,
                "async_amd": "true",
                "async_amd_status_callback": amd_callback,
                "async_amd_status_callback_method": "POST",
            }
        call = self._call_api(
            lambda: self._client.calls.create(to=to, from_=self.from_number, twiml=twiml, **options)
        )
        return str(call.sid)

    def hangup(self, call_sid: str) -> HangupResult:
        """End a live call (`Status=completed`); a call already over is not an error."""
        try:
            self._call_api(lambda: self._client.calls(call_sid).update(status="completed"))
        except TwilioApiError as error:
            if error.code in (CALL_NOT_FOUND, CALL_NOT_IN_PROGRESS):
                return HangupResult.ALREADY_ENDED
            raise
        return HangupResult.COMPLETED

    def redirect(self, call_sid: str, twiml: str) -> None:
        """Replace what a live call is doing with `twiml` (a transfer: `<Dial>`)."""
        self._call_api(lambda: self._client.calls(call_sid).update(twiml=twiml))

    def send_sms(self, to: str, body: str) -> dict[str, str]:
        """Send an SMS from our number: `{"message_sid", "status", "to"}`."""
        message = self._call_api(
            lambda: self._client.messages.create(to=to, from_=self.from_number, body=body)
        )
        return {
            "message_sid": str(message.sid),
            "status": str(message.status),
            "to": str(message.to),
        }

    def _call_api(self, request: Any) -> Any:
        try:
            return request()
        except TwilioRestException as e:
            raise TwilioApiError(_plain(e.msg), status=e.status, code=e.code) from e
        except TwilioServiceException as e:  # the newer RFC 9457 error bodies
            message = f"{e.title}: {e.detail}" if e.detail else str(e.title)
            raise TwilioApiError(message, status=e.status, code=e.code) from e
        except requests.Timeout as e:
            raise TwilioApiError(f"no answer within {self.timeout_s:g} s") from e
        except requests.RequestException as e:
            raise TwilioApiError(type(e).__name__) from e


def _plain(message: str) -> str:
    """Twilio's message without the SDK's terminal colour codes."""
    return message.replace("\033", "").strip() or "error"
