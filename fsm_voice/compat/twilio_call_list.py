"""`list_calls`: one region's calls to a number since a moment, complete or an error.

    rows = list_calls(api_host="api.dublin.ie1.twilio.com", account_sid="AC…",
                      auth=("SK…", secret), to="+3531234567",
                      start_after=datetime(2026, 9, 8, tzinfo=UTC))

Reconciliation must not mistake "could not read everything" for "there was nothing":
a failed page, a malformed record, or more pages than `max_pages` raise, and no rows
read so far are returned. Twilio's continuation links are followed only when they stay
on the same host and the same Calls collection: a page cannot send our credentials
anywhere else.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException

from fsm_voice.compat.twilio_client import build_explicit_twilio_client
from fsm_voice.compat.twilio_models import (
    CallPage,
    TwilioCallListIncompleteError,
    TwilioCallRow,
    TwilioRegion,
)

__all__ = ["list_calls"]

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def list_calls(
    *,
    api_host: str,
    account_sid: str,
    auth: tuple[str, str],
    to: str,
    start_after: datetime,
    page_size: int = 200,
    max_pages: int = 10,
) -> list[TwilioCallRow]:
    """Every call to `to` that started after `start_after` (timezone-aware), in the
    region at `api_host`, as `auth` sees it; calls whose start is unknown are kept.

    Raises `ValueError` for bad arguments (before any request) and for a malformed
    page or continuation, `TwilioCallListIncompleteError` when `max_pages` pages did
    not reach the end, and the SDK's errors (`TwilioRestException`, `requests`'
    timeouts) when a page fails.
    """
    region = TwilioRegion(api_host=api_host, account_sid=account_sid, auth=auth)
    _check_query(to, start_after, page_size, max_pages)
    after = start_after.astimezone(UTC)
    client = build_explicit_twilio_client(region)
    collection = f"/2010-04-01/Accounts/{account_sid}/Calls.json"
    params = {
        "To": to,
        "StartTime>": after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "PageSize": page_size,
    }
    page = _fetch(client, f"https://{api_host}{collection}", params)
    rows: list[TwilioCallRow] = []
    for pages_fetched in range(1, max_pages + 1):
        for record in page.calls:
            row = record.row()
            # Twilio's filter is by day on some accounts: the cut-off is ours, exact.
            if row.start_time is None or row.start_time > after.timestamp():
                rows.append(row)
        if page.next_page_uri is None:
            return rows
        target = _continuation(page.next_page_uri, api_host, collection)
        if pages_fetched == max_pages:
            break
        # The link carries Twilio's own query (page token, filters): sent unchanged.
        page = _fetch(client, target, None)
    raise TwilioCallListIncompleteError(api_host, max_pages)


def _check_query(to: object, start_after: object, page_size: object, max_pages: object) -> None:
    """An unfiltered or unbounded read is refused before any client is made."""
    if not isinstance(to, str) or not to.strip():
        raise ValueError("to must be a nonblank string")
    if not isinstance(start_after, datetime) or start_after.utcoffset() is None:
        raise ValueError("start_after must be a timezone-aware datetime")
    if type(page_size) is not int or not 1 <= page_size <= 1000:
        raise ValueError("page_size must be an integer from 1 to 1000")
    if type(max_pages) is not int or max_pages < 1:
        raise ValueError("max_pages must be a positive integer")


def _fetch(client: Any, url: str, params: dict[str, object] | None) -> CallPage:
    """One page: HTTP 200 with a JSON body of the Calls page's shape, or an error."""
    response = client.request("GET", url, params=params)
    if response.status_code != 200:
        raise _http_error(response, url)
    return CallPage.model_validate(json.loads(response.text))


def _http_error(response: Any, url: str) -> TwilioRestException:
    """The SDK's error for a failed request, with Twilio's code when the body has one."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    details = body if isinstance(body, dict) else {}
    code = details.get("code")
    message = details.get("message") or f"Unable to fetch page (HTTP {response.status_code})"
    return TwilioRestException(
        response.status_code, url, str(message), code if isinstance(code, int) else None
    )


def _continuation(link: str, api_host: str, collection: str) -> str:
    """The absolute URL of a `next_page_uri` that stays on `api_host`'s `collection`."""
    if (
        not link
        or "\\" in link
        or "#" in link
        or any(not 32 < ord(char) < 127 for char in link)
        or _BAD_ESCAPE.search(link)
    ):
        raise ValueError("malformed call-list continuation")
    parts = urlsplit(link)
    if (parts.scheme or parts.netloc) and (parts.scheme != "https" or parts.netloc != api_host):
        raise ValueError(f"the call-list continuation leaves https://{api_host}")
    if parts.path != collection:  # exact: no dot segments, no escapes, no other account
        raise ValueError("the call-list continuation leaves the Calls collection")
    return urlunsplit(("https", api_host, parts.path, parts.query, ""))
