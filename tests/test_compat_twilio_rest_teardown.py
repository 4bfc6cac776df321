"""`register_voice_websocket(..., hangup_regions=)`: a session's hangup ends the call over
Twilio's REST API in the regions given, in order, and Twilio then closes the stream.

Real sockets on 127.0.0.1: `initiate_outbound_call` creates the call at the fake Twilio
API through the SDK (in the region TWILIO_REGION/TWILIO_EDGE choose), the fake answers
like a phone on our `/voice`, and the session hangs up.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest
from starlette.applications import Starlette

from fsm_voice.clock import SystemClock
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.providers.scripted import ScriptedSynthesizer
from fsm_voice.server import serve_in_background
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.caller_script import parse_caller_script
from fsm_voice.transports.twilio_call import TwilioRegion, initiate_outbound_call
from fsm_voice.transports.twilio_ws import register_voice_websocket
from tests.fake_twilio_api import Answer, FakeTwilioApi, reserved_port

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

ACCOUNT = "AC" + "5" * 32
TOKEN = "teardown-token"
US, IE = "api.twilio.com", "api.dublin.ie1.twilio.com"
US_REGION = TwilioRegion(api_host=US, account_sid=ACCOUNT, auth=("SKus", "us-secret"))
IE_REGION = TwilioRegion(api_host=IE, account_sid=ACCOUNT, auth=("SKie", "ie-secret"))

LISTENER = """
name: listener
machine: voice_runtime
steps:
  - silence: {ms: 100}
"""


async def hang_up_a_call(
    monkeypatch: pytest.MonkeyPatch, regions: tuple[TwilioRegion, ...] | None
) -> tuple[FakeTwilioApi, str, MemoryEventLog]:
    """Place a call in Dublin, let the session hang it up; the fake, the sid, the log."""
    script = parse_caller_script(LISTENER, "listener.yaml")
    voice = ScriptedSynthesizer(ms_per_char=8, min_ms=200)
    fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock(), answer=Answer(script, voice))
    fake.api_keys = {"SKus": "us-secret", "SKie": "ie-secret"}
    log = MemoryEventLog()
    session = VoiceSession()
    async with fake.running() as api_base:
        with reserved_port() as port:
            for name, value in {
                "TWILIO_ACCOUNT_SID": ACCOUNT,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_PHONE_NUMBER": "+15550100",
                "TWILIO_API_BASE": api_base,
                "TWILIO_REGION": "ie1",  # the call is created (and lives) in Dublin
                "TWILIO_EDGE": "dublin",
                "VOICE_STREAM_URL": f"ws://127.0.0.1:{port}/voice",
            }.items():
                monkeypatch.setenv(name, value)
            app = Starlette()
            register_voice_websocket(app, session, log=log, hangup_regions=regions)
            async with serve_in_background(app, port=port):
                sid = await anyio.to_thread.run_sync(initiate_outbound_call, "+15550199")
                await anyio.to_thread.run_sync(session.wait_for_ws_connect, 30.0)
                session.request_disconnect()
                with anyio.fail_after(30):
                    await fake.calls[sid].done.wait()
    return fake, sid, log


def runtime_events(log: MemoryEventLog, kind: str) -> list[dict[str, object]]:
    return [e.data for c in log.calls() for e in log.events(c.call_id, kind=kind)]


async def test_the_hangup_sweeps_the_regions_in_order_and_twilio_closes_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, sid, log = await hang_up_a_call(monkeypatch, (US_REGION, IE_REGION))
    updates = fake.requests_to(f"/Calls/{sid}.json")
    assert [(r.target, r.one("Status")) for r in updates] == [(US, "completed"), (IE, "completed")]
    assert [r.authorized for r in updates] == [True, True]  # each with its own API key
    assert fake.calls[sid].ended_by == "rest_hangup"  # Twilio's side closed the stream
    assert runtime_events(log, "remote_hangup_requested") == [{"call_sid": sid}]
    assert runtime_events(log, "remote_hangup_failed") == []


async def test_a_call_no_region_knows_is_closed_by_us(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, sid, log = await hang_up_a_call(monkeypatch, (US_REGION,))
    assert [r.target for r in fake.requests_to(f"/Calls/{sid}.json")] == [US]
    (failed,) = runtime_events(log, "remote_hangup_failed")
    assert "TwilioCallNotFoundError" in str(failed["error"]) and "secret" not in str(failed)
    assert fake.calls[sid].ended_by == "stream_closed"  # we closed it ourselves


async def test_without_regions_the_ambient_account_and_routing_hang_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, sid, _ = await hang_up_a_call(monkeypatch, None)
    updates = fake.requests_to(f"/Calls/{sid}.json")
    assert [r.target for r in updates] == [IE]  # TWILIO_REGION/TWILIO_EDGE's host
    assert fake.calls[sid].ended_by == "rest_hangup"


@pytest.mark.parametrize(
    "regions",
    [(), [US_REGION], (US_REGION, US_REGION), (US_REGION, "api.twilio.com")],
    ids=["empty", "list", "duplicate", "not-a-region"],
)
def test_a_bad_region_tuple_fails_registration(regions: object) -> None:
    app = Starlette()
    with pytest.raises(ValueError) as caught:
        register_voice_websocket(
            app,
            VoiceSession(),
            log=MemoryEventLog(),
            hangup_regions=regions,  # type: ignore[arg-type]
        )
    assert app.router.routes == [] and "secret" not in str(caught.value)
