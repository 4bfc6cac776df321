"""`TwilioSettings`: what the REST client and the webhooks need, from env or arguments."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from fsm_voice.call.config import SecuritySettings, derive_stream_key
from fsm_voice.errors import ConfigError
from fsm_voice.security import Secret
from fsm_voice.twilio.rest import DEFAULT_TIMEOUT_S, TwilioRest
from fsm_voice.twilio.twiml import stream_endpoint

__all__ = ["TwilioSettings", "http_base"]

logger = logging.getLogger("fsm_voice.twilio")


@dataclass(frozen=True)
class TwilioSettings:
    """One Twilio account as this server uses it.

    `public_url` is the https base Twilio reaches us at (webhook signatures are checked
    against it + path); `stream_url` the wss URL of `/voice` (default: derived from
    `public_url`). `stream_key` signs the per-call stream tokens (default: derived from
    the auth token, as `/voice` derives it to check them). `verify_signatures=False`
    is a development switch, logged loudly.
    """

    account_sid: str
    auth_token: Secret
    from_number: str
    public_url: str
    stream_url: str | None = None
    stream_key: Secret | None = None
    region: str | None = None
    edge: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    api_base: str | None = None  # a local fake of the REST API (tests)
    verify_signatures: bool = True

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("https://", "http://")):
            raise ConfigError(f"the public URL must be http(s)://host, not {self.public_url!r}")
        if not self.verify_signatures:
            logger.warning(
                "Twilio webhook signatures are NOT verified: anyone can post to the webhooks"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> TwilioSettings:
        """TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER, VOICE_PUBLIC_URL
        (or VOICE_STREAM_URL), TWILIO_REGION, TWILIO_EDGE; `overrides` win."""
        env = os.environ if environ is None else environ
        token = Secret.from_env("TWILIO_AUTH_TOKEN", env)
        stream_url = env.get("VOICE_STREAM_URL") or None
        public_url = env.get("VOICE_PUBLIC_URL") or (http_base(stream_url) if stream_url else None)
        values: dict[str, object] = {
            "account_sid": env.get("TWILIO_ACCOUNT_SID", ""),
            "auth_token": token,
            "from_number": env.get("TWILIO_PHONE_NUMBER", ""),
            "public_url": public_url,
            "stream_url": stream_url,
            "stream_key": Secret.from_env("FSM_VOICE_STREAM_KEY", env),
            "region": env.get("TWILIO_REGION") or None,
            "edge": env.get("TWILIO_EDGE") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        missing = [
            name
            for name, key in (
                ("TWILIO_ACCOUNT_SID", "account_sid"),
                ("TWILIO_AUTH_TOKEN", "auth_token"),
                ("TWILIO_PHONE_NUMBER", "from_number"),
                ("VOICE_PUBLIC_URL (or VOICE_STREAM_URL, or --public-url)", "public_url"),
            )
            if not values.get(key)
        ]
        if missing:
            raise ConfigError(f"Twilio settings missing: {', '.join(missing)}")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def voice_url(self) -> str:
        """The wss URL of `/voice` that TwiML tells Twilio to stream to."""
        if self.stream_url:  # an https base URL (voice_runtime's style) streams to /voice
            return stream_endpoint(self.stream_url)
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + "/voice", "", ""))

    @property
    def token_key(self) -> Secret:
        """The key of the per-call stream tokens: the same one `/voice` checks with."""
        return self.stream_key or derive_stream_key(self.auth_token)

    def security(self, *, mask_phone_numbers: bool = False) -> SecuritySettings:
        """`/voice`'s checks for calls this account places or answers."""
        return SecuritySettings(
            auth_token=self.auth_token,
            public_url=self.voice_url,
            stream_key=self.stream_key,
            insecure_dev=not self.verify_signatures,
            mask_phone_numbers=mask_phone_numbers,
        )

    def webhook_url(self, path: str) -> str:
        return self.base_url + path

    def rest(self) -> TwilioRest:
        return TwilioRest(
            self.account_sid,
            self.auth_token,
            self.from_number,
            region=self.region,
            edge=self.edge,
            timeout_s=self.timeout_s,
            api_base=self.api_base,
        )


def http_base(stream_url: str) -> str:
    """`wss://host/voice` (or voice_runtime's `https://host`) → `https://host`: the
    webhooks live beside the stream."""
    parts = urlsplit(stream_endpoint(stream_url))
    scheme = "https" if parts.scheme == "wss" else "http"
    path = parts.path.removesuffix("/voice")
    return urlunsplit((scheme, parts.netloc, path, "", ""))
