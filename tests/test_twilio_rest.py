"""`TwilioRest` through the real `twilio` SDK against the local fake of Twilio's API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
import pytest

from fsm_voice.clock import SystemClock
from fsm_voice.errors import ConfigError, TwilioApiError
from fsm_voice.security import Secret
from fsm_voice.twilio.rest import DEFAULT_TIMEOUT_S, HangupResult, TwilioRest
from fsm_voice.twilio.telephony import TwilioTelephony
from fsm_voice.twilio.twiml import dial_twiml, stream_twiml
from tests.fake_twilio_api import FakeTwilioApi, stream_of

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token-0123456789abcdef"
FROM = "+15550100"


@dataclass
class Setup:
    fake: FakeTwilioApi
    base: str

    def rest(self, token: str = TOKEN, **options: object) -> TwilioRest:
        return TwilioRest(ACCOUNT, Secret(token), FROM, api_base=self.base, **options)  # type: ignore[arg-type]


@pytest.fixture
async def api() -> AsyncIterator[Setup]:
    fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock())
    async with fake.running() as base:
        yield Setup(fake, base)


async def in_thread(func: object, *args: object) -> object:
    return await anyio.to_thread.run_sync(func, *args)  # type: ignore[arg-type]


async def test_create_call_sends_twiml_status_callback_and_returns_the_sid(api: Setup) -> None:
    twiml = stream_twiml("wss://example.test/voice", {"call_id": "FV1", "token": "t"})
    rest = api.rest()
    sid = await in_thread(rest.create_call, "+15550199", twiml, "https://example.test/status")
    (request,) = api.fake.requests_to("/Calls.json")
    assert sid == next(iter(api.fake.calls))
    assert str(sid).startswith("CA") and len(str(sid)) == 34
    assert request.authorized
    assert request.one("To") == "+15550199" and request.one("From") == FROM
    assert request.one("Twiml") == twiml
    assert request.one("StatusCallback") == "https://example.test/status"
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert request.one("MachineDetection") is None  # AMD only when asked


async def test_create_call_with_async_answering_machine_detection(api: Setup) -> None:
    rest = api.rest()
    await in_thread(
        lambda: rest.create_call(
            "+15550199", "<Response/>", None, "Enable", "https://example.test/amd"
        )
    )
    (request,) = api.fake.requests_to("/Calls.json")
    assert request.one("MachineDetection") == "Enable"
    assert request.one("AsyncAmd") == "true"
    assert request.one("AsyncAmdStatusCallback") == "https://example.test/amd"
    assert request.one("StatusCallback") is None


def test_detection_without_a_callback_is_a_config_error() -> None:
    rest = TwilioRest(ACCOUNT, Secret(TOKEN), FROM, api_base="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="amd_callback"):
        rest.create_call("+15550199", "<Response/>", None, "Enable")


async def test_hangup_completes_a_live_call_then_reports_it_already_ended(api: Setup) -> None:
    rest = api.rest()
    sid = str(await in_thread(rest.create_call, "+15550199", "<Response/>", None))
    assert await in_thread(rest.hangup, sid) == HangupResult.COMPLETED
    assert api.fake.calls[sid].status == "completed"
    update = api.fake.requests_to(f"/Calls/{sid}.json")[0]
    assert update.one("Status") == "completed"
    # 400/21220: the call is not in progress any more; not an error for a hangup
    assert await in_thread(rest.hangup, sid) == HangupResult.ALREADY_ENDED


async def test_hangup_of_an_unknown_call_is_already_ended(api: Setup) -> None:
    rest = api.rest()
    assert await in_thread(rest.hangup, "CA" + "f" * 32) == HangupResult.ALREADY_ENDED  # 20404


async def test_redirect_sends_the_dial_twiml(api: Setup) -> None:
    rest = api.rest()
    sid = str(await in_thread(rest.create_call, "+15550199", "<Response/>", None))
    await in_thread(rest.redirect, sid, dial_twiml("+15550142"))
    assert api.fake.calls[sid].redirects == [
        '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15550142</Dial></Response>'
    ]


async def test_redirect_of_an_ended_call_raises_21220(api: Setup) -> None:
    rest = api.rest()
    sid = str(await in_thread(rest.create_call, "+15550199", "<Response/>", None))
    await in_thread(rest.hangup, sid)
    with pytest.raises(TwilioApiError) as caught:
        await in_thread(rest.redirect, sid, dial_twiml("+15550142"))
    assert (caught.value.status, caught.value.code) == (400, 21220)


async def test_redirect_of_an_unknown_call_raises_20404(api: Setup) -> None:
    with pytest.raises(TwilioApiError) as caught:
        await in_thread(api.rest().redirect, "CA" + "e" * 32, "<Response/>")
    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert "not found" in caught.value.message


async def test_send_sms_returns_sid_status_and_recipient(api: Setup) -> None:
    result = await in_thread(api.rest().send_sms, "+15550123", "See you Tuesday.")
    (message,) = api.fake.messages
    assert result == {"message_sid": message["sid"], "status": "queued", "to": "+15550123"}
    assert str(message["sid"]).startswith("SM")
    assert (message["from"], message["body"]) == (FROM, "See you Tuesday.")


async def test_bad_credentials_raise_20003_without_the_token(api: Setup) -> None:
    wrong = "wrong-token-which-must-not-leak"
    with pytest.raises(TwilioApiError) as caught:
        await in_thread(api.rest(wrong).send_sms, "+15550123", "hi")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert wrong not in str(caught.value) and TOKEN not in str(caught.value)
    assert not api.fake.requests[0].authorized


async def test_the_timeout_is_honoured(api: Setup) -> None:
    api.fake.stall = anyio.Event()
    rest = api.rest(timeout_s=0.2)
    try:
        with pytest.raises(TwilioApiError, match=r"no answer within 0\.2 s") as caught:
            await in_thread(rest.send_sms, "+15550123", "hi")
    finally:
        api.fake.stall.set()
    assert caught.value.status is None
    assert api.fake.messages == []


def test_the_default_timeout_is_fifteen_seconds() -> None:
    rest = TwilioRest(ACCOUNT, Secret(TOKEN), FROM)
    assert rest.timeout_s == DEFAULT_TIMEOUT_S == 15.0
    assert rest._http.timeout == 15.0


@pytest.mark.parametrize(
    ("region", "edge", "host"),
    [
        (None, None, "api.twilio.com"),
        ("ie1", None, "api.ie1.twilio.com"),
        ("au1", "sydney", "api.sydney.au1.twilio.com"),
        (None, "dublin", "api.dublin.us1.twilio.com"),  # an edge alone implies us1
    ],
)
async def test_region_and_edge_choose_the_host(
    api: Setup, region: str | None, edge: str | None, host: str
) -> None:
    rest = api.rest(region=region, edge=edge)
    assert rest.api_host == host
    await in_thread(rest.send_sms, "+15550123", "hi")
    assert api.fake.requests[-1].target == host


def test_missing_credentials_and_bad_timeouts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        TwilioRest(ACCOUNT, Secret(""), FROM)
    with pytest.raises(ConfigError, match="positive"):
        TwilioRest(ACCOUNT, Secret(TOKEN), FROM, timeout_s=0)


def test_the_client_repr_and_errors_never_show_the_token() -> None:
    rest = TwilioRest(ACCOUNT, Secret(TOKEN), FROM)
    assert TOKEN not in repr(rest.__dict__.get("_http"))
    assert TOKEN not in repr(TwilioApiError("x", status=401, code=20003))


def test_stream_twiml_carries_url_and_parameters_escaped() -> None:
    twiml = stream_twiml("wss://h.test/voice", {"call_id": "FV1", "note": 'a<b & "c"'})
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect>')
    assert stream_of(twiml) == ("wss://h.test/voice", {"call_id": "FV1", "note": 'a<b & "c"'})


async def test_telephony_runs_rest_in_threads_and_skips_hangup_after_transfer(
    api: Setup,
) -> None:
    telephony = TwilioTelephony(api.rest())
    sid = str(await in_thread(telephony.rest.create_call, "+15550199", "<Response/>", None))
    sms = await telephony.send_sms("+15550123", "hello")
    assert sms["sid"] == sms["message_sid"] == api.fake.messages[0]["sid"]
    transfer = await telephony.transfer(sid, "+15550142")
    assert transfer == {"status": "redirected", "to": "+15550142", "call_sid": sid}
    assert await telephony.hangup(sid) == "transferred"  # the transferred call lives on
    assert api.fake.calls[sid].status == "queued"  # not hung up (the fake did not answer)
    assert await telephony.hangup(sid) == "completed"
