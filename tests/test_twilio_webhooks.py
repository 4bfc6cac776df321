"""Twilio's webhooks on a real server: signatures, the TwiML, status and AMD events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx
import pytest

from fsm_voice.call.config import derive_stream_key
from fsm_voice.call.handle import CallHandle
from fsm_voice.clock import CountingIds, SystemClock
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.security import Secret, call_token_valid
from fsm_voice.server import RunningServer, create_app, serve_in_background
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.twilio.settings import TwilioSettings
from fsm_voice.twilio.signature import SIGNATURE_HEADER, twilio_signature
from fsm_voice.twilio.webhooks import TwilioService
from tests.fake_twilio_api import reserved_port, stream_of

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "2" * 32
TOKEN = "webhook-test-token"
PUBLIC = "https://voice.example.test"  # what Twilio posts to; we sit behind its proxy
CALL_SID = "CA" + "a" * 32

SETTINGS = TwilioSettings(
    account_sid=ACCOUNT,
    auth_token=Secret(TOKEN),
    from_number="+15550100",
    public_url=PUBLIC,
    api_base="http://127.0.0.1:9",  # no request reaches it in these tests
)


@dataclass
class Server:
    running: RunningServer
    log: MemoryEventLog
    notices: list[tuple[str, str, dict[str, Any]]]
    calls: list[CallHandle]

    def local(self, path: str) -> str:
        return f"http://{self.running.host}:{self.running.port}{path}"

    async def post(
        self, path: str, params: dict[str, str], signature: str | None = "sign"
    ) -> httpx.Response:
        headers = {}
        if signature == "sign":
            headers[SIGNATURE_HEADER] = twilio_signature(TOKEN, PUBLIC + path, params)
        elif signature is not None:
            headers[SIGNATURE_HEADER] = signature
        async with httpx.AsyncClient() as client:
            return await client.post(self.local(path), data=params, headers=headers)

    def leg(self, call_sid: str, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.log.events(call_sid, kind=kind)]

    def rejections(self) -> list[dict[str, Any]]:
        rows = [c for c in self.log.calls() if c.direction == "webhooks"]
        return [e.data for c in rows for e in self.log.events(c.call_id)]


async def listening_agent(server_notices: list[tuple[str, str, dict[str, Any]]]) -> Any:
    async def agent(call: CallHandle) -> None:
        call.on_notice(lambda kind, data: server_notices.append((call.call_sid or "", kind, data)))
        await call.wait_ended()

    return agent


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async for s in _server(SETTINGS):
        yield s


async def _server(settings: TwilioSettings) -> AsyncIterator[Server]:
    log = MemoryEventLog()
    notices: list[tuple[str, str, dict[str, Any]]] = []
    calls: list[CallHandle] = []
    app = create_app(
        log,
        agent=await listening_agent(notices),
        machine_name="appointment",
        clock=SystemClock(),
        ids=CountingIds(),
        on_call=calls.append,
        twilio=TwilioService.from_settings(settings),
    )
    async with serve_in_background(app) as running:
        yield Server(running, log, notices, calls)


INBOUND = {"AccountSid": ACCOUNT, "CallSid": CALL_SID, "From": "+15550123", "To": "+15550100"}


async def test_inbound_twiml_streams_to_voice_with_a_verifiable_token(server: Server) -> None:
    response = await server.post("/twiml", INBOUND)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    url, params = stream_of(response.text)
    assert url == "wss://voice.example.test/voice"
    assert set(params) == {"call_id", "token", "machine", "caller", "called"}
    assert params["machine"] == "appointment"
    assert (params["caller"], params["called"]) == ("+15550123", "+15550100")
    assert call_token_valid(derive_stream_key(Secret(TOKEN)), params["call_id"], params["token"])
    assert not call_token_valid(
        derive_stream_key(Secret(TOKEN)), params["call_id"] + "x", params["token"]
    )
    (answered,) = server.leg(CALL_SID, "twilio_call_answered")
    assert answered == {"call_id": params["call_id"], "machine": "appointment"}
    leg = server.log.call(CALL_SID)
    assert leg is not None and leg.direction == "inbound"
    assert "token" not in leg.custom_parameters  # a credential stays out of the log


async def test_each_inbound_call_gets_its_own_call_id(server: Server) -> None:
    first = stream_of((await server.post("/twiml", INBOUND)).text)[1]
    other = INBOUND | {"CallSid": "CA" + "b" * 32}
    second = stream_of((await server.post("/twiml", other)).text)[1]
    assert first["call_id"] != second["call_id"]
    assert first["token"] != second["token"]


@pytest.mark.parametrize(
    ("path", "signature", "reason"),
    [
        ("/twiml", None, "missing_signature"),
        ("/twiml", "bm90IGEgc2lnbmF0dXJl", "bad_signature"),
        ("/status", None, "missing_signature"),
        ("/amd", "bm90IGEgc2lnbmF0dXJl", "bad_signature"),
    ],
)
async def test_unsigned_or_badly_signed_requests_get_403_and_are_logged(
    server: Server, path: str, signature: str | None, reason: str
) -> None:
    response = await server.post(path, INBOUND, signature=signature)
    assert response.status_code == 403
    assert server.rejections() == [{"path": path, "reason": reason}]
    assert server.log.call(CALL_SID) is None  # nothing was taken from the request


async def test_a_signature_for_another_url_is_refused(server: Server) -> None:
    # Signed for the local address instead of the public URL Twilio was given.
    forged = twilio_signature(TOKEN, server.local("/twiml"), INBOUND)
    assert (await server.post("/twiml", INBOUND, signature=forged)).status_code == 403
    # Signed with another token for the right URL.
    other = twilio_signature("another-token", PUBLIC + "/twiml", INBOUND)
    assert (await server.post("/twiml", INBOUND, signature=other)).status_code == 403
    # Signed right, but a parameter changed on the way.
    good = twilio_signature(TOKEN, PUBLIC + "/twiml", INBOUND)
    tampered = INBOUND | {"From": "+15559999"}
    assert (await server.post("/twiml", tampered, signature=good)).status_code == 403
    assert len(server.rejections()) == 3


async def test_the_dev_switch_accepts_unsigned_requests_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="fsm_voice.twilio"):
        insecure = replace(SETTINGS, verify_signatures=False)
    assert "NOT verified" in caplog.text
    async for server in _server(insecure):
        response = await server.post("/twiml", INBOUND, signature=None)
        assert response.status_code == 200
        assert server.rejections() == []


async def test_status_callbacks_are_events_of_the_call_and_close_it(server: Server) -> None:
    for status in ("queued", "ringing", "in-progress"):
        params = {"AccountSid": ACCOUNT, "CallSid": CALL_SID, "CallStatus": status}
        assert (await server.post("/status", params)).status_code == 204
    final = {"AccountSid": ACCOUNT, "CallSid": CALL_SID, "CallStatus": "completed"}
    assert (await server.post("/status", final | {"CallDuration": "42"})).status_code == 204
    statuses = [e["status"] for e in server.leg(CALL_SID, "call_status_received")]
    assert statuses == ["queued", "ringing", "in-progress", "completed"]
    leg = server.log.call(CALL_SID)
    assert leg is not None
    assert (leg.outcome, leg.duration_ms) == ("completed", 42_000)


async def test_amd_verdict_reaches_the_live_call(server: Server) -> None:
    async with (
        dial(server.running.url) as sock,
        PhoneSimulator(sock, SystemClock(), CountingIds(), call_sid=CALL_SID),
    ):
        await _connected(server)
        params = {"CallSid": CALL_SID, "AnsweredBy": "machine_start"}
        assert (await server.post("/amd", params | {"AccountSid": ACCOUNT})).status_code == 204
        await _until(lambda: bool(server.notices))
    assert server.notices == [(CALL_SID, "amd", {"answered_by": "machine_start"})]
    assert server.leg(CALL_SID, "answering_machine_detected") == [{"answered_by": "machine_start"}]


async def test_amd_verdict_before_the_stream_starts_is_delivered_when_it_does(
    server: Server,
) -> None:
    params = {"AccountSid": ACCOUNT, "CallSid": CALL_SID, "AnsweredBy": "human"}
    params["MachineDetectionDuration"] = "900"
    assert (await server.post("/amd", params)).status_code == 204
    assert server.notices == []
    async with (
        dial(server.running.url) as sock,
        PhoneSimulator(sock, SystemClock(), CountingIds(), call_sid=CALL_SID),
    ):
        await _until(lambda: bool(server.notices))
    assert server.notices == [(CALL_SID, "amd", {"answered_by": "human", "detection_ms": "900"})]


async def test_amd_for_another_call_is_not_delivered(server: Server) -> None:
    async with (
        dial(server.running.url) as sock,
        PhoneSimulator(sock, SystemClock(), CountingIds(), call_sid=CALL_SID),
    ):
        await _connected(server)
        other = {"AccountSid": ACCOUNT, "CallSid": "CA" + "c" * 32, "AnsweredBy": "fax"}
        assert (await server.post("/amd", other)).status_code == 204
        mine = {"AccountSid": ACCOUNT, "CallSid": CALL_SID, "AnsweredBy": "human"}
        await server.post("/amd", mine)
        await _until(lambda: bool(server.notices))
    assert [n[2]["answered_by"] for n in server.notices] == ["human"]


async def _connected(server: Server) -> None:
    await _until(lambda: bool(server.calls))
    await server.calls[-1].wait_connected()


async def _until(ready: Any) -> None:
    """Yield to the loop until `ready()` (the server runs on this loop)."""
    with anyio.fail_after(10):  # a bound, not a timing assertion: a hang fails
        while not ready():
            await anyio.lowlevel.checkpoint()


async def test_an_inbound_stream_carries_the_twiml_parameters() -> None:
    """/twiml's TwiML, followed like Twilio does: the stream arrives bound to the call."""
    with reserved_port() as port:
        local = replace(SETTINGS, public_url=f"http://127.0.0.1:{port}")
        log = MemoryEventLog()
        calls: list[CallHandle] = []
        app = create_app(
            log,
            machine_name="appointment",
            clock=SystemClock(),
            ids=CountingIds(),
            on_call=calls.append,
            twilio=TwilioService.from_settings(local),
        )
        async with serve_in_background(app, port=port):
            path = "/twiml"
            headers = {SIGNATURE_HEADER: twilio_signature(TOKEN, local.base_url + path, INBOUND)}
            async with httpx.AsyncClient() as client:
                response = await client.post(local.base_url + path, data=INBOUND, headers=headers)
            url, params = stream_of(response.text)
            assert url == f"ws://127.0.0.1:{port}/voice"
            async with (
                dial(url, auth_token=TOKEN) as sock,
                PhoneSimulator(
                    sock, SystemClock(), CountingIds(), custom_parameters=params, call_sid=CALL_SID
                ),
            ):
                await _until(lambda: bool(calls))
                await calls[0].wait_connected()
                assert "token" in params  # checked by /voice, kept from the agent
                assert calls[0].custom_parameters == {
                    k: v for k, v in params.items() if k != "token"
                }
                assert calls[0].call_sid == CALL_SID
