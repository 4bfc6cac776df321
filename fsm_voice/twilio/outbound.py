"""The TwiML that binds a Twilio call to our `/voice` stream, inbound or outbound.

The stream token in it is bound to the Twilio CallSid where we know it when the TwiML
is made: an inbound call's `/twiml` webhook carries it. An outbound call's TwiML goes
into the REST request that creates the call, before Twilio assigns its CallSid, so
that token binds our `call_id` only; single use, its TTL and one stream per CallSid
(`call.stream_guard`) still hold for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsm_voice.clock import Clock, IdSource, SystemClock
from fsm_voice.security import call_token
from fsm_voice.twilio.rest import TwilioRest
from fsm_voice.twilio.settings import TwilioSettings
from fsm_voice.twilio.twiml import stream_twiml

__all__ = ["AMD_PATH", "STATUS_PATH", "TWIML_PATH", "OutboundCall", "place_call", "stream_for_call"]

TWIML_PATH = "/twiml"
STATUS_PATH = "/status"
AMD_PATH = "/amd"


def stream_for_call(
    settings: TwilioSettings,
    call_id: str,
    machine: str | None,
    *,
    issued_ms: int,
    call_sid: str | None = None,
    caller: str = "",
    called: str = "",
) -> tuple[str, dict[str, str]]:
    """The `<Connect><Stream>` TwiML for `call_id` and its parameters.

    `call_id` and `token` (an HMAC of the call id, `call_sid` when known, and
    `issued_ms`: the Clock's `wall_ms()`) let `/voice` check that the stream belongs
    to a call we answered or placed, once, within the token's TTL; `machine` names the conversation;
    `caller`/`called` are the numbers (Twilio's `start` message has none): `caller`
    is always the person on the line, so a machine's `sms` (to `{caller}` by default)
    reaches them whichever way the call went.
    """
    token = call_token(settings.token_key, call_id, issued_ms=issued_ms, call_sid=call_sid)
    parameters = {"call_id": call_id, "token": token}
    if machine:
        parameters["machine"] = machine
    if caller:
        parameters["caller"] = caller
    if called:
        parameters["called"] = called
    return stream_twiml(settings.voice_url, parameters), parameters


@dataclass(frozen=True)
class OutboundCall:
    call_id: str  # ours, in the stream's parameters
    call_sid: str  # Twilio's
    parameters: dict[str, str]


def place_call(
    settings: TwilioSettings,
    to: str,
    machine: str | None,
    ids: IdSource,
    *,
    amd: bool = False,
    rest: TwilioRest | None = None,
    clock: Clock | None = None,
) -> OutboundCall:
    """Create the call over REST (blocking: run it in a thread from async code)."""
    call_id = ids.new_id("FV")
    issued_ms = (clock or SystemClock()).wall_ms()
    # The person we dial is the "caller" of the conversation (see stream_for_call).
    twiml, parameters = stream_for_call(
        settings, call_id, machine, issued_ms=issued_ms, caller=to, called=settings.from_number
    )
    call_sid = (rest or settings.rest()).create_call(
        to,
        twiml,
        settings.webhook_url(STATUS_PATH),
        machine_detection="Enable" if amd else None,
        amd_callback=settings.webhook_url(AMD_PATH) if amd else None,
    )
    return OutboundCall(call_id, call_sid, parameters)
