"""register_voice_websocket reads the seed's security settings as the seed did.

VOICE_STREAM_URL may be voice_runtime's https base URL: Twilio then streams to (and
signs) `wss://host/voice`. TWILIO_SKIP_SIGNATURE_VALIDATION=1, the seed's switch, turns
the checks off for this endpoint as FSM_VOICE_INSECURE=1 does.
"""

from __future__ import annotations

import pytest
from compat_harness import ThreadedServer, in_thread, phone

from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import DialRejected, dial
from fsm_voice.transports.twilio_call import build_stream_twiml
from tests.fake_twilio_api import stream_of

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

AUTH_TOKEN = "compat-auth-token-SECRET"
BASE_URL = "https://voice.example.com"  # voice_runtime's VOICE_STREAM_URL
SIGNED_URL = "wss://voice.example.com/voice"  # what the TwiML says, so what Twilio signs
CALL_SID = "CA" + "6" * 32


@pytest.fixture
def seed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("VOICE_STREAM_URL", BASE_URL)
    for name in ("FSM_VOICE_INSECURE", "FSM_VOICE_STREAM_KEY", "TWILIO_SKIP_SIGNATURE_VALIDATION"):
        monkeypatch.delenv(name, raising=False)


async def test_an_https_base_url_is_checked_as_the_wss_url_twilio_signed(seed_env: None) -> None:
    url, params = stream_of(build_stream_twiml(BASE_URL, call_sid=CALL_SID))
    assert url == SIGNED_URL
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=SIGNED_URL) as sock:
            sim = phone(sock, **params)
            sim.call_sid = CALL_SID
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
        with pytest.raises(DialRejected) as refused:  # signed over the https URL: wrong
            async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=BASE_URL + "/voice"):
                pass
        assert refused.value.status == 403
        await server.wait_finished(1)
    assert session.call_sid == CALL_SID


async def test_skip_signature_validation_lets_unsigned_streams_in(
    seed_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_SKIP_SIGNATURE_VALIDATION", "1")
    session = VoiceSession()
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock, phone(sock):  # no signature, no token
            await in_thread(session.wait_for_ws_connect, 10)
        [call_id] = await server.wait_finished(1)
    [accepted] = server.events(call_id, "upgrade_accepted")
    assert accepted.data["verified"] is False  # loud, as FSM_VOICE_INSECURE is
