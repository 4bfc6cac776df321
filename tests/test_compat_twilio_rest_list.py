"""voice_runtime's call lists (`list_calls`, `list_recent_calls`), through the real `twilio`
SDK against the local fake of Twilio's API: filters, pages, the page cap, continuation
links that try to leave the region, malformed pages, and the legacy reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio.to_thread
import pytest
from twilio.base.exceptions import TwilioRestException

from fsm_voice.clock import SystemClock
from fsm_voice.transports.twilio_call import (
    TwilioCallListIncompleteError,
    TwilioCallRow,
    list_calls,
    list_recent_calls,
)
from tests.fake_twilio_api import FakeTwilioApi

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "8" * 32
TOKEN = "compat-list-token"
US, IE = "api.twilio.com", "api.dublin.ie1.twilio.com"
TO = "+15550001"
CUTOFF = datetime(2026, 9, 8, 6, 30, tzinfo=UTC)
COLLECTION = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"


@dataclass
class Api:
    fake: FakeTwilioApi
    env: pytest.MonkeyPatch

    def lists(self) -> list[Any]:
        return [r for r in self.fake.requests if r.method == "GET"]


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock())
    fake.api_keys = {"SKkey": "key-secret"}
    for name in ("TWILIO_REGION", "TWILIO_EDGE", "TWILIO_HTTP_TIMEOUT", "TWILIO_HTTP_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    async with fake.running() as base:
        monkeypatch.setenv("TWILIO_API_BASE", base)
        yield Api(fake, monkeypatch)


def fetch(**overrides: Any) -> Callable[[], list[TwilioCallRow]]:
    options: dict[str, Any] = {
        "api_host": US,
        "account_sid": ACCOUNT,
        "auth": ("SKkey", "key-secret"),
        "to": TO,
        "start_after": CUTOFF,
    }
    options.update(overrides)
    return lambda: list_calls(**options)


async def in_thread(func: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(func)


async def test_rows_are_typed_filtered_and_cut_off_exactly(api: Api) -> None:
    fake = api.fake
    later = fake.add_call(TO, CUTOFF + timedelta(minutes=1), from_="+15550222")
    unknown = fake.add_call(TO, None, from_=" ", direction="outbound-api")
    fake.add_call(TO, CUTOFF)  # at the cut-off: not after it
    fake.add_call(TO, CUTOFF - timedelta(seconds=1))
    fake.add_call("+15559999", CUTOFF + timedelta(minutes=2))  # another number
    fake.add_call(TO, CUTOFF + timedelta(minutes=3), host=IE)  # another region
    helsinki = timezone(timedelta(hours=3))
    rows = await in_thread(fetch(start_after=CUTOFF.astimezone(helsinki), page_size=23))
    assert rows == [
        TwilioCallRow(
            call_sid=later,
            status="in-progress",
            start_time=CUTOFF.timestamp() + 60,
            direction="inbound",
            caller="+15550222",
        ),
        TwilioCallRow(
            call_sid=unknown,
            status="in-progress",
            start_time=None,
            direction="outbound-api",
            caller=None,  # a blank caller is an unknown one
        ),
    ]
    (request,) = api.lists()
    assert request.query == {"To": TO, "StartTime>": "2026-09-08T06:30:00Z", "PageSize": "23"}
    assert request.target == US and request.authorized
    assert set(rows[0].model_dump()) == {"call_sid", "status", "start_time", "direction", "caller"}
    with pytest.raises(ValueError):
        rows[0].status = "changed"  # type: ignore[misc]


async def test_an_explicit_region_reads_only_its_own_calls(api: Api) -> None:
    api.env.setenv("TWILIO_REGION", "au1")  # ambient routing does not apply
    ie = api.fake.add_call(TO, CUTOFF + timedelta(hours=1), host=IE)
    api.fake.add_call(TO, CUTOFF + timedelta(hours=1), host=US)
    rows = await in_thread(fetch(api_host=IE))
    assert [row.call_sid for row in rows] == [ie]
    assert [r.target for r in api.lists()] == [IE]


async def test_every_page_is_read_once_with_twilios_own_continuation(api: Api) -> None:
    sids = [api.fake.add_call(TO, CUTOFF + timedelta(minutes=i)) for i in range(1, 6)]
    rows = await in_thread(fetch(page_size=2, max_pages=3))
    assert [row.call_sid for row in rows] == sids
    first, second, third = api.lists()
    assert "PageToken" not in first.query
    # The continuation is sent as Twilio wrote it: its token, not our first filters.
    assert second.query == {"To": TO, "PageSize": "2", "Page": "1", "PageToken": "PA2"}
    assert third.query["PageToken"] == "PA4"
    assert all(r.authorized for r in (first, second, third))


@pytest.mark.parametrize("calls", [5, 0])
async def test_more_pages_than_the_cap_is_an_error_not_a_partial_list(api: Api, calls: int) -> None:
    for i in range(calls):
        api.fake.add_call(TO, CUTOFF + timedelta(minutes=i + 1))
    if not calls:  # an empty page can still say there is more
        api.fake.next_page_override = {1: f"{COLLECTION}?PageToken=PA2", 2: f"{COLLECTION}?x"}
    with pytest.raises(TwilioCallListIncompleteError) as caught:
        await in_thread(fetch(page_size=2, max_pages=2))
    assert (caught.value.api_host, caught.value.pages_fetched) == (US, 2)
    assert isinstance(caught.value, RuntimeError) and "key-secret" not in str(caught.value)
    assert len(api.lists()) == 2


async def test_a_complete_empty_list_is_success(api: Api) -> None:
    assert await in_thread(fetch()) == []
    assert len(api.lists()) == 1


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.invalid" + COLLECTION,
        "//evil.invalid" + COLLECTION,
        "http://api.twilio.com" + COLLECTION,
        "https://api.twilio.com:443" + COLLECTION,
        "https://user@api.twilio.com" + COLLECTION,
        "https://api.dublin.ie1.twilio.com" + COLLECTION,  # another region
        COLLECTION.replace(ACCOUNT, "AC" + "9" * 32),
        COLLECTION.replace("Calls.json", "Messages.json"),
        COLLECTION.replace("Calls.json", "x/../Calls.json"),
        COLLECTION + "#fragment",
        COLLECTION + "?PageToken=%zz",
        " " + COLLECTION,
        "\\\\evil.invalid" + COLLECTION,
        "",
        42,
    ],
)
async def test_a_continuation_that_leaves_the_collection_is_never_followed(
    api: Api, link: object
) -> None:
    api.fake.add_call(TO, CUTOFF + timedelta(minutes=1))
    api.fake.next_page_override = {1: link}
    with pytest.raises(ValueError):
        await in_thread(fetch())
    assert len(api.lists()) == 1


async def test_an_absolute_continuation_on_the_same_host_is_followed(api: Api) -> None:
    first = api.fake.add_call(TO, CUTOFF + timedelta(minutes=1))
    second = api.fake.add_call(TO, CUTOFF + timedelta(minutes=2))
    api.fake.next_page_override = {1: f"https://{US}{COLLECTION}?PageSize=1&PageToken=PA1"}
    rows = await in_thread(fetch(page_size=1))
    assert [row.call_sid for row in rows] == [first, second]


def record(**fields: Any) -> dict[str, Any]:
    base = {
        "sid": "CA1",
        "status": "completed",
        "direction": "inbound",
        "start_time": "Tue, 08 Sep 2026 06:31:00 +0000",
        "from": "+15550222",
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    "page",
    [
        {},
        {"calls": []},  # no next_page_uri: the end is not proven
        {"calls": None, "next_page_uri": None},
        {"calls": [None], "next_page_uri": None},
        [],
        {"calls": [record(start_time="Tue, 08 Sep 2026 06:31:00")], "next_page_uri": None},
        {"calls": [record(start_time="nonsense")], "next_page_uri": None},
        {"calls": [record(start_time=123)], "next_page_uri": None},
        {"calls": [record(sid=" ")], "next_page_uri": None},
        {"calls": [record(status=None)], "next_page_uri": None},
        {"calls": [record(**{"from": 12})], "next_page_uri": None},
    ],
)
@pytest.mark.parametrize("on_page", [1, 2])
async def test_a_malformed_page_is_an_error_never_an_empty_or_shorter_list(
    api: Api, page: Any, on_page: int
) -> None:
    api.fake.add_call(TO, CUTOFF + timedelta(minutes=1))
    api.fake.add_call(TO, CUTOFF + timedelta(minutes=2))
    api.fake.list_fault = {on_page: page}
    with pytest.raises(ValueError):
        await in_thread(fetch(page_size=1))
    assert len(api.lists()) == on_page


async def test_a_failed_page_hands_on_the_sdks_error(api: Api) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(fetch(auth=("SKkey", "wrong-secret")))
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert "wrong-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_host", "api.evil.com"),
        ("account_sid", "AC/1"),
        ("auth", ("SKkey", "")),
        ("to", " "),
        ("to", None),
        ("start_after", datetime(2026, 9, 8)),  # naive: which zone?
        ("start_after", "2026-09-08"),
        ("page_size", 0),
        ("page_size", 1001),
        ("page_size", True),
        ("max_pages", 0),
        ("max_pages", 1.5),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    api: Api, field: str, value: object
) -> None:
    with pytest.raises(ValueError) as caught:
        fetch(**{field: value})()
    assert "key-secret" not in str(caught.value)
    assert api.fake.requests == []


def test_the_filters_cannot_be_left_out() -> None:
    with pytest.raises(TypeError):
        list_calls(api_host=US, account_sid=ACCOUNT, auth=("SK", "s"), to=TO)  # type: ignore[call-arg]


# --- list_recent_calls (deprecated) ---


async def test_list_recent_calls_without_credentials_is_empty(api: Api) -> None:
    api.env.delenv("TWILIO_ACCOUNT_SID", raising=False)
    api.env.delenv("TWILIO_AUTH_TOKEN", raising=False)
    assert list_recent_calls() == []
    assert api.fake.requests == []


async def test_list_recent_calls_reads_the_ambient_account(api: Api) -> None:
    api.env.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
    api.env.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    api.env.setenv("TWILIO_PHONE_NUMBER", TO)
    clock = SystemClock()
    started = datetime.fromtimestamp(clock.wall_ms() // 1000, tz=UTC)
    sid = api.fake.add_call(TO, started, status="completed")
    unknown = api.fake.add_call(TO, None, status="in-progress")
    api.fake.add_call("+15559999", started)
    before_ms = clock.wall_ms()
    rows = await in_thread(lambda: list_recent_calls(lookback_s=600))
    after_ms = clock.wall_ms()
    assert rows == [
        {"call_sid": sid, "status": "completed", "start_time": started.timestamp()},
        {"call_sid": unknown, "status": "in-progress", "start_time": 0},
    ]
    (request,) = api.lists()
    assert request.query["To"] == TO
    since = datetime.strptime(request.query["StartTime>"], "%Y-%m-%dT%H:%M:%SZ")
    since_s = since.replace(tzinfo=UTC).timestamp()
    assert before_ms / 1000 - 601 <= since_s <= after_ms / 1000 - 599
    assert list_recent_calls.__doc__ is not None
    assert "deprecated" in list_recent_calls.__doc__.lower()
