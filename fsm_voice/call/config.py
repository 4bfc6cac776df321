"""Server and per-call settings: read-only, shared by every call of a server.

- `CallConfig`: what each `CallRuntime` needs (timeouts, limits, the stream-token key).
- `Limits`: the abuse limits of a server, as a user sets them.
- `SecuritySettings`: who may open `/voice`, and what the log may show.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from fsm_voice.call.recorder import CHUNK_FRAMES
from fsm_voice.call.stream_guard import DEFAULT_STREAM_TOKEN_TTL_MS
from fsm_voice.errors import ConfigError
from fsm_voice.security import Secret

__all__ = ["CallConfig", "Limits", "SecuritySettings", "derive_stream_key", "env_flag"]

_STREAM_KEY_LABEL = b"fsm-voice stream token key v1"


@dataclass(frozen=True, slots=True)
class CallConfig:
    connect_timeout_ms: int = 10_000  # socket open → `start` must arrive
    # A mark not echoed by then is released as "timeout"; 0: none unless the mark asks
    # (a call's end releases every mark, and a timer per mark is two log rows and a
    # loop timer for marks that are echoed within a second).
    mark_timeout_ms: int = 0
    hangup_grace_ms: int = 2_000  # after we close, stop waiting for the socket to go
    agent_grace_ms: int = 2_000  # after the call ends, the agent's time to return
    max_violations: int = 100  # protocol violations on one socket before we close it
    # Frames per recorded audio chunk (5 × 20 ms = 100 ms): a crash loses at most the
    # chunk being filled (recorder.py). Bigger chunks are fewer rows and a bigger loss.
    audio_chunk_frames: int = CHUNK_FRAMES
    max_buffered_frames: int = 3_000  # per caller-audio subscriber (60 s) before dropping
    max_message_bytes: int = 256 * 1024  # the server closes a bigger message with 1009
    max_call_ms: int = 0  # the call is hung up this long after the socket opened; 0: never
    idle_stream_ms: int = 0  # no inbound message for this long hangs up; 0: never
    # With a key, `start` must carry <Parameter>s `call_id` and `token` that the
    # server's `StreamGuard` admits (signed, fresh, unused), or it is closed with 1008.
    stream_key: Secret | None = None
    stream_token_ttl_ms: int = DEFAULT_STREAM_TOKEN_TTL_MS  # a token opens a stream this long
    mask_phone_numbers: bool = False  # phone numbers reach the log as +********4567


@dataclass(frozen=True, slots=True)
class Limits:
    """What one server lets a caller (or an attacker) use. 0 means no limit."""

    max_message_bytes: int = 256 * 1024  # Twilio's messages are < 1 KiB; closes with 1009
    max_concurrent_calls: int = 0  # one more upgrade is refused with HTTP 503
    max_call_ms: int = 0  # Twilio's own cap on a call is 4 hours
    idle_stream_ms: int = 0  # Twilio sends media every 20 ms: seconds of nothing is dead

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_concurrent_calls", "max_call_ms", "idle_stream_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"limit {name} must be ≥ 0, not {getattr(self, name)}")
        if self.max_message_bytes == 0:
            raise ConfigError("limit max_message_bytes must be > 0")

    def apply_to(self, config: CallConfig) -> CallConfig:
        """`config` with this server's per-call limits."""
        return replace(
            config,
            max_message_bytes=self.max_message_bytes,
            max_call_ms=self.max_call_ms,
            idle_stream_ms=self.idle_stream_ms,
        )


def derive_stream_key(auth_token: Secret) -> Secret:
    """The stream-token key derived from the auth token, when none is configured.

    A separate key (not the auth token itself), so a stream token never acts as an
    oracle for the account's credential. Everything that issues tokens (the TwiML) and
    everything that checks them (`/voice`) derives the same key from the same token.
    """
    digest = hmac.new(auth_token.reveal().encode(), _STREAM_KEY_LABEL, hashlib.sha256)
    return Secret(digest.hexdigest())


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Who may open `/voice` and what reaches the log.

    With an `auth_token`, every upgrade must carry a valid `X-Twilio-Signature` over
    `public_url` (the `wss://` URL Twilio was given; without it, `wss://` + the Host
    header + the path) or it is refused with 403 before the socket is accepted.
    `insecure_dev` turns the signature and stream-token checks off, loudly: a warning
    at startup and an `upgrade_accepted` event with `"verified": false` on every call.
    """

    auth_token: Secret | None = None
    public_url: str | None = None
    stream_key: Secret | None = None  # None: derived from the auth token
    insecure_dev: bool = False
    mask_phone_numbers: bool = False
    stream_token_ttl_ms: int = DEFAULT_STREAM_TOKEN_TTL_MS

    def __post_init__(self) -> None:
        if self.stream_token_ttl_ms <= 0:
            raise ConfigError(f"the stream token TTL must be > 0, not {self.stream_token_ttl_ms}")

    @property
    def verifies(self) -> bool:
        """Whether upgrades are checked (a token is configured and not switched off)."""
        return self.auth_token is not None and not self.insecure_dev

    @property
    def effective_stream_key(self) -> Secret | None:
        """The key `start` tokens are checked with; None when they are not checked."""
        if self.insecure_dev:
            return None
        if self.stream_key is not None:
            return self.stream_key
        return derive_stream_key(self.auth_token) if self.auth_token is not None else None

    @property
    def unverified_reason(self) -> str | None:
        """Why upgrades are not checked, or None when they are."""
        if self.insecure_dev:
            return "insecure_dev"
        return None if self.auth_token is not None else "no_auth_token"

    def apply_to(self, config: CallConfig) -> CallConfig:
        """`config` with this server's stream key, token TTL and phone masking."""
        return replace(
            config,
            stream_key=self.effective_stream_key,
            stream_token_ttl_ms=self.stream_token_ttl_ms,
            mask_phone_numbers=self.mask_phone_numbers,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecuritySettings:
        """TWILIO_AUTH_TOKEN, VOICE_STREAM_URL, FSM_VOICE_STREAM_KEY, FSM_VOICE_INSECURE=1,
        FSM_VOICE_MASK_PHONE_NUMBERS=1, FSM_VOICE_STREAM_TOKEN_TTL_SECONDS."""
        env = os.environ if environ is None else environ
        ttl = env.get("FSM_VOICE_STREAM_TOKEN_TTL_SECONDS") or ""
        try:
            ttl_ms = round(float(ttl) * 1000) if ttl else DEFAULT_STREAM_TOKEN_TTL_MS
        except ValueError:
            raise ConfigError(
                f"FSM_VOICE_STREAM_TOKEN_TTL_SECONDS must be a number of seconds, not {ttl!r}"
            ) from None
        return cls(
            auth_token=Secret.from_env("TWILIO_AUTH_TOKEN", env),
            public_url=env.get("VOICE_STREAM_URL") or None,
            stream_key=Secret.from_env("FSM_VOICE_STREAM_KEY", env),
            insecure_dev=env_flag(env.get("FSM_VOICE_INSECURE", "")),
            mask_phone_numbers=env_flag(env.get("FSM_VOICE_MASK_PHONE_NUMBERS", "")),
            stream_token_ttl_ms=ttl_ms,
        )


def env_flag(value: str) -> bool:
    """An on/off environment variable: 1, true, yes or on (any case) is on."""
    return value.strip().lower() in ("1", "true", "yes", "on")
