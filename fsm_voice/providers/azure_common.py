"""The Azure Speech SDK boundary shared by the STT and TTS adapters.

- `load_sdk` imports `azure.cognitiveservices.speech` lazily (only the Azure
  adapters import it, and only when one is built), so the base install works; a
  missing extra is an error that names it.
- `AzureSettings` reads the seed's environment variables (AZURE_SPEECH_KEY,
  AZURE_SPEECH_REGION, AZURE_TTS_VOICE, …); keyword arguments override them. The key
  is a `Secret`: it is revealed only into the SDK's `SpeechConfig`.
- `AzureSpeechError` is how a `Canceled` result enters our exception tree: its
  `code` is the SDK's `CancellationErrorCode` name, and `fatal` says whether a
  retry could help (a bad key or a refused request never gets better).
- `post_to_loop` hands an SDK callback's payload to the event loop: the SDK fires
  its events on its own threads, and every listener method runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fsm_voice.errors import ConfigError, FsmVoiceError
from fsm_voice.security import Secret

__all__ = [
    "DEFAULT_LANGUAGE",
    "DEFAULT_REGION",
    "DEFAULT_VOICE",
    "FATAL_CODES",
    "AzureSettings",
    "AzureSpeechError",
    "cancellation_error",
    "load_sdk",
    "post_to_loop",
]

DEFAULT_REGION = "westeurope"
DEFAULT_VOICE = "fi-FI-NooraNeural"
DEFAULT_LANGUAGE = "fi-FI"
DEFAULT_SILENCE_TIMEOUT_MS = 1000

# Cancellation codes no retry can fix: the key or the request itself is wrong.
# Everything else (ConnectionFailure, ServiceTimeout, TooManyRequests, …) may pass.
FATAL_CODES = frozenset({"AuthenticationFailure", "Forbidden", "BadRequest"})


class AzureSpeechError(FsmVoiceError):
    """Azure Speech refused or cancelled a request (`code`: a CancellationErrorCode name)."""

    def __init__(self, message: str, *, code: str = "", fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


def load_sdk() -> Any:
    """The real `azure.cognitiveservices.speech` module, or a ConfigError naming the extra."""
    try:
        import azure.cognitiveservices.speech as speechsdk
    except ImportError as exc:
        raise ConfigError(
            "the Azure Speech SDK is not installed (pip install 'fsm-voice[azure]')"
        ) from exc
    return speechsdk


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """Where and as whom to reach Azure Speech, and how to speak and listen."""

    key: Secret | None
    region: str = DEFAULT_REGION
    language: str = DEFAULT_LANGUAGE
    voice: str = DEFAULT_VOICE
    silence_timeout_ms: int = DEFAULT_SILENCE_TIMEOUT_MS

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        key: Secret | str | None = None,
        region: str | None = None,
        language: str | None = None,
        voice: str | None = None,
        silence_timeout_ms: int | None = None,
    ) -> AzureSettings:
        """The environment's settings with any keyword given taking precedence."""
        env = os.environ if environ is None else environ
        secret = Secret(key) if isinstance(key, str) else key
        if secret is None:
            secret = Secret.from_env("AZURE_SPEECH_KEY", env)
        timeout_text = env.get("AZURE_STT_SILENCE_TIMEOUT_MS", "")
        try:
            env_timeout = int(timeout_text) if timeout_text else DEFAULT_SILENCE_TIMEOUT_MS
        except ValueError:
            raise ConfigError(
                f"AZURE_STT_SILENCE_TIMEOUT_MS must be whole milliseconds, not {timeout_text!r}"
            ) from None
        timeout = silence_timeout_ms if silence_timeout_ms is not None else env_timeout
        if timeout <= 0:
            raise ConfigError(f"silence_timeout_ms must be positive, not {timeout}")
        return cls(
            key=secret,
            region=region or env.get("AZURE_SPEECH_REGION") or DEFAULT_REGION,
            language=language or env.get("AZURE_SPEECH_LANGUAGE") or DEFAULT_LANGUAGE,
            voice=voice or env.get("AZURE_TTS_VOICE") or DEFAULT_VOICE,
            silence_timeout_ms=timeout,
        )

    def speech_config(self, sdk: Any) -> Any:
        """A new SDK `SpeechConfig` (blocking: native code; call it off the loop)."""
        if not self.key:
            raise AzureSpeechError(
                "AZURE_SPEECH_KEY is not set", code="AuthenticationFailure", fatal=True
            )
        return sdk.SpeechConfig(subscription=self.key.reveal(), region=self.region)


def cancellation_error(details: Any, what: str) -> AzureSpeechError:
    """Our error for the SDK's cancellation details (recognition or synthesis)."""
    reason = _enum_name(getattr(details, "reason", None))
    code = _enum_name(getattr(details, "error_code", getattr(details, "code", None)))
    text = str(getattr(details, "error_details", "") or "").strip()
    message = f"{what} cancelled: {reason}"
    if code and code != "NoError":
        message += f" ({code})"
    if text:
        message += f": {text.splitlines()[0]}"
    return AzureSpeechError(message, code=code, fatal=code in FATAL_CODES)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value or ""))


def post_to_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any
) -> None:
    """Run `callback(*args)` on `loop` (from an SDK thread). Once the loop is closed the
    call and its listener are gone, so a late event is dropped."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
