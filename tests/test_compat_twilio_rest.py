"""voice_runtime's Twilio REST API (hangup_call, send_sms, TwiML, settings errors), through
the real `twilio` SDK against the local fake of Twilio's API (TWILIO_API_BASE).

The compat functions are blocking, as voice_runtime's were: they run in a worker thread
while the fake serves on the event loop.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from fsm_voice.clock import SystemClock
from fsm_voice.errors import ConfigError, FsmVoiceError, MissingStreamUrlError, TwilioApiError
from fsm_voice.security import Secret
from fsm_voice.transport import get_sms_transport
from fsm_voice.transports.twilio_call import (
    TwilioCallNotFoundError,
    TwilioRegion,
    build_route_stream_xml,
    build_stream_twiml,
    hangup_call,
    initiate_outbound_call,
)
from fsm_voice.transports.twilio_sms import send_sms
from fsm_voice.twilio.rest import TwilioRest
from fsm_voice.twilio.settings import TwilioSettings
from tests.fake_twilio_api import FakeTwilioApi, stream_of

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "7" * 32
TOKEN = "compat-rest-token"
US, IE = "api.twilio.com", "api.dublin.ie1.twilio.com"
KEYS = {"SKus": "us-secret", "SKie": "ie-secret"}
NOW = datetime(2026, 9, 8, 6, 30, tzinfo=UTC)


def region(host: str, key: str, secret: str | None = None) -> TwilioRegion:
    return TwilioRegion(api_host=host, account_sid=ACCOUNT, auth=(key, secret or KEYS[key]))


REGIONS = (region(US, "SKus"), region(IE, "SKie"))


@dataclass
class Api:
    fake: FakeTwilioApi
    env: pytest.MonkeyPatch

    def updates(self) -> list[Any]:
        return [r for r in self.fake.requests if "/Calls/" in r.path]


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock())
    fake.api_keys = dict(KEYS)
    for name in ("TWILIO_REGION", "TWILIO_EDGE", "TWILIO_HTTP_TIMEOUT", "TWILIO_HTTP_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", "+15550100")
    async with fake.running() as base:
        monkeypatch.setenv("TWILIO_API_BASE", base)
        yield Api(fake, monkeypatch)


async def in_thread(func: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(func)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


# --- hangup_call, ambient ---


async def test_ambient_hangup_completes_the_call_and_a_second_one_is_idempotent(api: Api) -> None:
    sid = api.fake.add_call("+15550100", NOW)
    assert await in_thread(lambda: hangup_call(sid)) is None
    assert api.fake.calls[sid].status == "completed"
    # The call is over now: Twilio answers 400/21220, which proves it ended.
    assert await in_thread(lambda: hangup_call(sid)) is None
    first, second = api.updates()
    assert first.one("Status") == second.one("Status") == "completed"
    assert first.target == US and first.authorized


async def test_ambient_hangup_follows_twilio_region_and_edge(api: Api) -> None:
    host = "api.sydney.au1.twilio.com"
    sid = api.fake.add_call("+15550100", NOW, host=host)
    api.env.setenv("TWILIO_REGION", "au1")
    api.env.setenv("TWILIO_EDGE", "sydney")
    await in_thread(lambda: hangup_call(sid))
    assert [r.target for r in api.updates()] == [host]
    assert api.fake.calls[sid].status == "completed"


async def test_an_unknown_call_is_not_found_at_the_ambient_host(api: Api) -> None:
    api.env.setenv("TWILIO_REGION", "ie1")
    with pytest.raises(TwilioCallNotFoundError) as caught:
        await in_thread(lambda: hangup_call("CA" + "0" * 32))
    assert caught.value.attempted_hosts == ("api.ie1.twilio.com",)
    # One error, catchable as voice_runtime's RuntimeError or fsm_voice's TwilioApiError.
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, TwilioApiError)
    assert caught.value.code == 20404 and "api.ie1.twilio.com" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code"), [(404, 20001), (500, 20500), (400, 20001), (401, 20003)]
)
async def test_other_errors_propagate_as_the_sdks(api: Api, status: int, code: int) -> None:
    sid = api.fake.add_call("+15550100", NOW)
    api.fake.update_error = (status, code, "refused")
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(lambda: hangup_call(sid))
    assert (caught.value.status, caught.value.code) == (status, code)


async def test_ambient_hangup_needs_credentials_and_sends_nothing_without_them(api: Api) -> None:
    api.env.setenv("TWILIO_AUTH_TOKEN", "")
    with pytest.raises(RuntimeError, match="TWILIO_ACCOUNT_SID") as caught:
        hangup_call("CA1")
    assert isinstance(caught.value, ConfigError)
    assert api.fake.requests == []


@pytest.mark.parametrize("sid", ["CA/../Messages", "CA?x=1", "CA%2F1", "CA 1", "", "CÄ1"])
async def test_ambient_hangup_refuses_a_sid_that_would_change_the_path(api: Api, sid: str) -> None:
    with pytest.raises(ValueError):
        hangup_call(sid)
    assert api.fake.requests == []


async def test_voice_runtimes_looser_sids_still_reach_twilio(api: Api) -> None:
    with pytest.raises(TwilioCallNotFoundError):
        await in_thread(lambda: hangup_call("CA-reaped_1"))
    assert [r.path.rsplit("/", 1)[-1] for r in api.updates()] == ["CA-reaped_1.json"]


# --- hangup_call, explicit regions ---


async def test_regions_are_tried_in_order_until_one_knows_the_call(api: Api) -> None:
    sid = api.fake.add_call("+15550100", NOW, host=IE)
    # Ambient routing and credentials must not leak into explicit-region requests.
    api.env.setenv("TWILIO_REGION", "au1")
    api.env.setenv("TWILIO_EDGE", "sydney")
    api.env.setenv("TWILIO_ACCOUNT_SID", "AC" + "9" * 32)
    assert await in_thread(lambda: hangup_call(sid, regions=REGIONS)) is None
    us, ie = api.updates()
    assert (us.target, ie.target) == (US, IE)
    assert us.authorization == basic("SKus", "us-secret")
    assert ie.authorization == basic("SKie", "ie-secret")
    assert all(f"/Accounts/{ACCOUNT}/Calls/{sid}.json" in r.path for r in (us, ie))
    assert api.fake.calls[sid].status == "completed"


async def test_the_sweep_stops_at_the_first_region_that_ends_the_call(api: Api) -> None:
    sid = api.fake.add_call("+15550100", NOW, host=US, status="completed")
    await in_thread(lambda: hangup_call(sid, regions=REGIONS))  # 21220 there: done
    assert [r.target for r in api.updates()] == [US]


async def test_a_call_no_region_knows_is_not_found_in_all_of_them(api: Api) -> None:
    with pytest.raises(TwilioCallNotFoundError) as caught:
        await in_thread(lambda: hangup_call("CA" + "1" * 32, regions=REGIONS))
    assert caught.value.attempted_hosts == (US, IE)
    assert "secret" not in str(caught.value)
    assert [r.target for r in api.updates()] == [US, IE]


async def test_an_error_other_than_absence_stops_the_sweep(api: Api) -> None:
    sid = api.fake.add_call("+15550100", NOW, host=IE)
    wrong = (region(US, "SKus", "not-the-secret"), REGIONS[1])
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(lambda: hangup_call(sid, regions=wrong))
    assert caught.value.status == 401
    assert [r.target for r in api.updates()] == [US]
    assert api.fake.calls[sid].status == "in-progress"


@pytest.mark.parametrize(
    "regions",
    [
        (),
        [REGIONS[0]],
        (REGIONS[0], REGIONS[0]),
        (REGIONS[0], object()),
        (
            REGIONS[0],
            TwilioRegion.model_construct(api_host=IE, account_sid="AC/1", auth=("SK", "s")),
        ),
    ],
    ids=["empty", "list", "duplicate-host", "not-a-region", "constructed-invalid"],
)
async def test_the_whole_region_tuple_is_checked_before_any_request(
    api: Api, regions: object
) -> None:
    with pytest.raises(ValueError):
        hangup_call("CA1", regions=regions)  # type: ignore[arg-type]
    assert api.fake.requests == []


@pytest.mark.parametrize("sid", ["CA-1", "CA/1", "", "CA%2F"])
async def test_explicit_regions_take_strict_sids_only(api: Api, sid: str) -> None:
    with pytest.raises(ValueError):
        hangup_call(sid, regions=REGIONS)
    assert api.fake.requests == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_host", "api.evil.com"),
        ("api_host", "https://api.twilio.com"),
        ("api_host", "api.twilio.com:443"),
        ("api_host", "api.ie1.twilio.com"),  # a region needs its edge: api.<edge>.<region>
        ("account_sid", "AC/1"),
        ("account_sid", "ÄC1"),
        ("auth", ("SKkey", " ")),
        ("auth", ["SKkey", "top-secret"]),
        ("auth", ("SKkey", "top-secret", "x")),
    ],
)
def test_a_region_refuses_bad_fields_without_echoing_them(field: str, value: object) -> None:
    fields: dict[str, object] = {"api_host": US, "account_sid": ACCOUNT, "auth": ("SK1", "s")}
    with pytest.raises(ValueError) as caught:
        TwilioRegion(**{**fields, field: value})  # type: ignore[arg-type]
    assert "top-secret" not in str(caught.value) and "SKkey" not in str(caught.value)


def test_a_region_is_frozen_compares_by_value_and_hides_its_auth() -> None:
    assert region(US, "SKus") == REGIONS[0]
    assert "us-secret" not in repr(REGIONS[0]) and "SKus" not in repr(REGIONS[0])
    with pytest.raises(ValueError):
        REGIONS[0].api_host = IE  # type: ignore[misc]


async def test_a_slow_region_times_out_and_the_sweep_stops(api: Api) -> None:
    api.env.setenv("TWILIO_HTTP_TIMEOUT", "0.2")
    api.fake.stall = anyio.Event()
    try:
        with pytest.raises(requests.Timeout):
            await in_thread(lambda: hangup_call("CA1", regions=REGIONS))
    finally:
        api.fake.stall.set()
    assert [r.target for r in api.updates()] == [US]


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "0", "-1"])
async def test_a_bad_http_timeout_is_refused_before_any_request(api: Api, value: str) -> None:
    api.env.setenv("TWILIO_HTTP_TIMEOUT", value)
    with pytest.raises(ValueError, match="TWILIO_HTTP_TIMEOUT") as caught:
        hangup_call("CA1", regions=REGIONS)
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(ValueError, match="TWILIO_HTTP_TIMEOUT"):
        send_sms("+15550123", "hi")
    assert api.fake.requests == []


# --- send_sms and get_sms_transport ---


async def test_send_sms_returns_sid_status_and_recipient(api: Api) -> None:
    result = await in_thread(lambda: send_sms("+358401234567", "Hei"))
    (message,) = api.fake.messages
    assert result == {"message_sid": message["sid"], "status": "queued", "to": "+358401234567"}
    assert message["from"] == "+15550100" and message["body"] == "Hei"


@pytest.mark.parametrize(
    ("unset", "named"),
    [("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"), ("TWILIO_PHONE_NUMBER", "TWILIO_PHONE_NUMBER")],
)
async def test_send_sms_names_missing_settings(api: Api, unset: str, named: str) -> None:
    api.env.setenv(unset, "")
    with pytest.raises(RuntimeError, match=named) as caught:
        send_sms("+358401234567", "Hei")
    assert isinstance(caught.value, ConfigError)
    assert api.fake.requests == []


async def test_send_sms_hands_on_the_sdks_errors(api: Api) -> None:
    api.env.setenv("TWILIO_AUTH_TOKEN", "wrong")
    with pytest.raises(TwilioRestException) as caught:
        await in_thread(lambda: send_sms("+358401234567", "Hei"))
    assert caught.value.status == 401


def test_an_unknown_sms_transport_is_a_value_error_and_a_config_error() -> None:
    with pytest.raises(ValueError, match="Unknown SMS transport") as caught:
        get_sms_transport("carrier-pigeon")
    assert isinstance(caught.value, ConfigError)
    assert hasattr(get_sms_transport(), "send_sms")


# --- TwiML and the stream URL ---


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://example.test", "wss://example.test/voice"),
        ("https://example.test/", "wss://example.test/voice"),
        ("http://localhost:8080", "ws://localhost:8080/voice"),
        ("https://example.test/agent", "wss://example.test/agent/voice"),
        ("wss://example.test/voice", "wss://example.test/voice"),  # already the endpoint
    ],
)
def test_a_public_base_url_streams_to_its_voice_endpoint(
    monkeypatch: pytest.MonkeyPatch, base: str, url: str
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("FSM_VOICE_STREAM_KEY", raising=False)
    assert stream_of(build_stream_twiml(base)) == (url, {})


def test_a_routed_stream_url_carries_the_encoded_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("FSM_VOICE_STREAM_KEY", raising=False)
    xml = build_route_stream_xml("https://example.test/", "a/b c?")
    assert stream_of(xml) == ("wss://example.test/voice/a%2Fb%20c%3F", {})
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect>')


async def test_an_https_voice_stream_url_is_dialled_as_wss_voice(api: Api) -> None:
    api.env.setenv("VOICE_STREAM_URL", "https://h.test")
    sid = await in_thread(lambda: initiate_outbound_call("+15550199"))
    url, params = stream_of(api.fake.calls[sid].twiml)
    assert url == "wss://h.test/voice" and set(params) == {"call_id", "token"}


async def test_outbound_calls_name_missing_settings_as_runtime_errors(api: Api) -> None:
    api.env.setenv("VOICE_STREAM_URL", "")
    with pytest.raises(RuntimeError, match="VOICE_STREAM_URL") as no_url:
        initiate_outbound_call("+15550199")
    assert isinstance(no_url.value, MissingStreamUrlError)
    api.env.setenv("VOICE_STREAM_URL", "https://h.test")
    api.env.setenv("TWILIO_PHONE_NUMBER", "")
    with pytest.raises(RuntimeError, match="TWILIO_PHONE_NUMBER") as no_number:
        initiate_outbound_call("+15550199")
    assert isinstance(no_number.value, FsmVoiceError)
    assert api.fake.requests == []


def test_settings_take_voice_runtimes_https_stream_url() -> None:
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_PHONE_NUMBER": "+15550100",
        "VOICE_STREAM_URL": "https://voice.example.test",
    }
    settings = TwilioSettings.from_env(env)
    assert settings.voice_url == "wss://voice.example.test/voice"
    assert settings.webhook_url("/twiml") == "https://voice.example.test/twiml"


def test_the_native_client_ignores_ambient_region_and_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    assert TwilioRest(ACCOUNT, Secret(TOKEN), "+15550100").api_host == US
