"""What a server that checks who opens `/voice` needs in `start`, got the way Twilio gets it.

A server with an auth token refuses an unsigned upgrade, and a `start` without the
stream token it issued for the call. Twilio learns that token from the server itself:
when a call comes in it POSTs the number's voice webhook (`/twiml`, signed with
X-Twilio-Signature) and follows the TwiML it gets, `<Connect><Stream url=…>` with the
token among its `<Parameter>`s. `stream_setup` does the same.

A server without the webhooks (`fsm-voice serve` without `--twilio`) answers 404 there.
Then the token is minted here as that server's TwiML would mint it: with
`security.call_token` (the one place tokens are made), keyed by FSM_VOICE_STREAM_KEY or
else the key both sides derive from the auth token.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import anyio

from fsm_voice.call.config import derive_stream_key
from fsm_voice.clock import Clock, IdSource
from fsm_voice.errors import ConfigError
from fsm_voice.security import Secret, call_token
from fsm_voice.twilio.outbound import TWIML_PATH
from fsm_voice.twilio.settings import http_base
from fsm_voice.twilio.signature import SIGNATURE_HEADER, twilio_signature

__all__ = ["CALLED", "CALLER", "StreamSetup", "stream_setup", "webhook_url", "wss_url"]

CALLER: Final = "+15550100"  # the simulated caller's number (From)
CALLED: Final = "+15550199"  # the number it dials (To)
MAX_TWIML_BYTES: Final = 64 * 1024  # a <Connect><Stream> document is well under 2 KiB
TIMEOUT_S: Final = 10.0  # Twilio gives a voice webhook 15 s


@dataclass(frozen=True)
class StreamSetup:
    parameters: dict[str, str]  # the <Parameter>s for `start`
    stream_url: str | None  # the TwiML's <Stream url> (what Twilio signs); None if minted
    origin: str  # where they came from, said to the user


def wss_url(url: str) -> str:
    """`ws://host/voice` → `wss://host/voice`: Twilio dials only wss, and a server
    without a public URL checks the signature over wss:// + its Host + the path."""
    parts = urlsplit(url)
    return urlunsplit(("wss" if parts.scheme == "ws" else parts.scheme, *parts[1:]))


def webhook_url(stream_url: str) -> str:
    """`wss://host/voice` → `https://host/twiml`: the webhooks live beside the stream."""
    return http_base(stream_url) + TWIML_PATH


async def stream_setup(
    url: str,
    auth_token: Secret,
    *,
    signed_url: str,
    call_sid: str,
    account_sid: str,
    stream_key: Secret | None,
    clock: Clock,
    ids: IdSource,
) -> StreamSetup:
    """The `start` parameters for a call to the `/voice` at `url` (dialled; `signed_url`
    is its public name, which the server checks signatures against)."""
    # The fields Twilio posts for an inbound call (https://www.twilio.com/docs/voice/
    # twiml#request-parameters); the server signs over its public URL, so do we.
    form = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": CALLER,
        "To": CALLED,
    }
    posted, signed = webhook_url(url), webhook_url(signed_url)
    signature = twilio_signature(auth_token.reveal(), signed, form)
    status, body = await anyio.to_thread.run_sync(_post, posted, form, signature)
    if status == 200:
        stream, parameters = _stream_from_twiml(body, posted)
        return StreamSetup(parameters, stream, f"TwiML from POST {posted}")
    if status in (404, 405):  # no webhooks here: mint the token as its TwiML would
        key = stream_key or derive_stream_key(auth_token)
        call_id = ids.new_id("FV")
        token = call_token(key, call_id, issued_ms=clock.wall_ms(), call_sid=call_sid)
        origin = f"a stream token minted here (POST {posted}: HTTP {status}, no webhooks)"
        return StreamSetup({"call_id": call_id, "token": token}, None, origin)
    if status == 403:
        raise ConfigError(
            f"the server refused the signed POST {posted} (HTTP 403): is the auth token the "
            f"server's, and {signed_url} its public stream URL (--signed-url)?"
        )
    raise ConfigError(f"POST {posted} answered HTTP {status}, not TwiML")


def _post(url: str, form: dict[str, str], signature: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: signature,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return int(response.status), bytes(response.read(MAX_TWIML_BYTES))
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConfigError(f"could not reach {url}: {reason}") from e


def _stream_from_twiml(document: bytes, url: str) -> tuple[str, dict[str, str]]:
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as e:
        raise ConfigError(f"POST {url} answered with XML that does not parse: {e}") from e
    stream = root.find("./Connect/Stream")
    stream_url = None if stream is None else stream.get("url")
    if stream is None or not stream_url:
        raise ConfigError(f"POST {url} answered TwiML without <Connect><Stream url=…>")
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return stream_url, parameters
