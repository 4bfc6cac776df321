"""voice_runtime's `register_voice_websocket` checks what `fsm-voice serve` checks.

With TWILIO_AUTH_TOKEN in the environment (as a voice_runtime deployment has it), an
upgrade without a valid X-Twilio-Signature over VOICE_STREAM_URL is refused with 403
before accept, and a `start` without its stream token is closed with 1008: fail closed,
through the same endpoint. `build_stream_twiml` adds the token for inbound calls.
"""

from __future__ import annotations

import anyio
import pytest
from compat_harness import ThreadedServer, in_thread, phone

from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import DialRejected, dial
from fsm_voice.transports.twilio_call import build_stream_twiml
from tests.fake_twilio_api import stream_of

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

AUTH_TOKEN = "compat-auth-token-SECRET"
PUBLIC_URL = "wss://voice.example.com/voice"
ENV = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "VOICE_STREAM_URL": PUBLIC_URL}
CALL_SID = "CA" + "5" * 32


@pytest.fixture
def twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FSM_VOICE_INSECURE", raising=False)
    monkeypatch.delenv("FSM_VOICE_STREAM_KEY", raising=False)


@pytest.mark.parametrize("auth_token", [None, "another-accounts-token"])
async def test_an_unsigned_or_missigned_upgrade_never_becomes_a_call(
    twilio_env: None, auth_token: str | None
) -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        with pytest.raises(DialRejected) as refused:
            async with dial(server.url, auth_token=auth_token, signed_url=PUBLIC_URL):
                pass
        assert refused.value.status == 403
        await server.on_server(server.log.flush())
    reason = "signature_missing" if auth_token is None else "signature_invalid"
    [counted] = server.log.refusals()
    assert (counted.reason, counted.status, counted.count) == (reason, 403, 1)
    assert server.log.calls() == [] and session.generation == 0


async def test_a_signed_upgrade_without_its_stream_token_is_closed_with_1008(
    twilio_env: None,
) -> None:
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as sock:
            sim = phone(sock)  # no <Parameter>s: a stream URL that leaked alone
            async with sim:
                assert await sim.wait_closed() == 1008
        [call_id] = await server.wait_finished(1)
    call = server.log.call(call_id)
    assert call is not None and call.end_reason == "stream_call_id_missing"
    assert session.generation == 0  # the session never saw it


async def test_build_stream_twiml_lets_its_call_in_once(twilio_env: None) -> None:
    session = VoiceSession()
    url, params = stream_of(build_stream_twiml(PUBLIC_URL, {"machine": "x"}, call_sid=CALL_SID))
    assert url == PUBLIC_URL and params["machine"] == "x" and params["token"]
    with ThreadedServer(session) as server:
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as sock:
            sim = phone(sock, **params)
            sim.call_sid = CALL_SID
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as sock:
            again = phone(sock, **params)  # the same TwiML, replayed
            again.call_sid = CALL_SID
            async with again:
                with anyio.fail_after(10):  # a stream let in would never close
                    assert await again.wait_closed() == 1008
        finished = await server.wait_finished(2)
    assert session.call_sid == CALL_SID and session.generation == 1
    ended = sorted(str(c.end_reason) for c in map(server.log.call, finished) if c is not None)
    assert ended == ["caller_hangup", "stream_token_used"]
    assert server.log.refusals() == []  # both upgrades were signed: neither was refused


def test_build_stream_twiml_adds_nothing_without_a_stream_key() -> None:
    assert stream_of(build_stream_twiml(PUBLIC_URL, environ={})) == (PUBLIC_URL, {})
    _, params = stream_of(build_stream_twiml(PUBLIC_URL, {"token": "mine"}, environ=ENV))
    assert params == {"token": "mine"}  # a token of the caller's own is kept
