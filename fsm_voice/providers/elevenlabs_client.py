"""The one module that imports the `elevenlabs` SDK: settings, TTS streaming, Scribe.

Both adapters (`elevenlabs_tts`, `elevenlabs_stt`) reach ElevenLabs only through this
seam, and every SDK, httpx or websockets error is translated here into one
`ElevenLabsError` that says whether a retry can help.

Wire facts this relies on (ElevenLabs API reference, and the SDK's own code):

- TTS: `POST {base}/v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000`,
  header `xi-api-key`, JSON `{"text", "model_id"}`; the body streams raw 8 kHz μ-law,
  so nothing is transcoded here.
- STT (Scribe realtime): WebSocket `{base}/v1/speech-to-text/realtime?model_id=…
  &audio_format=ulaw_8000&commit_strategy=vad&language_code=…`, header `xi-api-key`.
  Client → server: `{"message_type": "input_audio_chunk", "audio_base_64": …}`.
  Server → client: `session_started`, `partial_transcript`, `committed_transcript`,
  `committed_transcript_with_timestamps`, and one message type per error
  (`auth_error`, `quota_exceeded`, `queue_overflow`, `session_time_limit_exceeded`, …).
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.realtime import AudioFormat, CommitStrategy, RealtimeConnection, ScribeRealtime
from elevenlabs.realtime.connection import RealtimeEvents
from elevenlabs.realtime.scribe import RealtimeAudioOptions
from websockets.exceptions import InvalidStatus, WebSocketException

from fsm_voice.errors import FsmVoiceError
from fsm_voice.security import Secret

__all__ = [
    "DEFAULT_BASE_URL",
    "RECONNECTABLE",
    "TERMINAL",
    "ElevenLabsError",
    "ElevenLabsSettings",
    "ScribeSession",
    "TtsClient",
    "open_scribe",
]

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
RACHEL = "21m00Tcm4TlvDq8ikWAM"
TTS_MODEL = "eleven_multilingual_v2"
STT_MODEL = "scribe_v2_realtime"
LANGUAGE_CODE = "fi"

# Scribe error message types. Reconnectable: the service (or the link) had a bad
# moment and a new session may well work; terminal: no new session will fix it.
RECONNECTABLE = frozenset(
    {
        "queue_overflow",
        "resource_exhausted",
        "transcriber_error",
        "chunk_size_exceeded",
        "server_error",
        "error",
        "rate_limited",
        "commit_throttled",
        "insufficient_audio_activity",
    }
)
TERMINAL = frozenset(
    {"auth_error", "quota_exceeded", "input_error", "invalid_request", "unaccepted_terms"}
)
SESSION_LIMIT = "session_time_limit_exceeded"


class ElevenLabsError(FsmVoiceError):
    """A failed ElevenLabs request or session; `retryable` says if trying again may help."""

    def __init__(self, kind: str, detail: str = "", *, retryable: bool) -> None:
        super().__init__(f"elevenlabs {kind}" + (f": {detail}" if detail else ""))
        self.kind = kind
        self.detail = detail
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class ElevenLabsSettings:
    """Who to call and with what. Secrets stay masked (`Secret`) until sent."""

    api_key: Secret | None = None
    voice_id: str = RACHEL
    tts_model: str = TTS_MODEL
    stt_model: str = STT_MODEL
    language_code: str = LANGUAGE_CODE
    base_url: str = DEFAULT_BASE_URL  # a regional endpoint, or a local fake in tests

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ElevenLabsSettings:
        """The seed's variables (ELEVENLABS_API_KEY, ELEVENLABS_VOICE_ID, ELEVENLABS_MODEL,
        STT_MODEL_ID, STT_LANGUAGE_CODE, ELEVENLABS_BASE_URL); a keyword that is not None
        overrides its variable. A plain-str `api_key` is wrapped in a `Secret`."""
        env = os.environ if environ is None else environ
        settings = cls(
            api_key=Secret.from_env("ELEVENLABS_API_KEY", env),
            voice_id=env.get("ELEVENLABS_VOICE_ID") or RACHEL,
            tts_model=env.get("ELEVENLABS_MODEL") or TTS_MODEL,
            stt_model=env.get("STT_MODEL_ID") or STT_MODEL,
            language_code=env.get("STT_LANGUAGE_CODE") or LANGUAGE_CODE,
            base_url=env.get("ELEVENLABS_BASE_URL") or DEFAULT_BASE_URL,
        )
        chosen = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(chosen.get("api_key"), str):
            chosen["api_key"] = Secret(chosen["api_key"])
        return replace(settings, **chosen)

    def key(self) -> str:
        """The plain API key, for the request that sends it (and only there)."""
        if self.api_key is None:
            raise ElevenLabsError("auth_error", "ELEVENLABS_API_KEY is not set", retryable=False)
        return self.api_key.reveal()


def _http_error(status: int | None, body: Any) -> ElevenLabsError:
    detail = f"HTTP {status}"
    if isinstance(body, dict):
        message = body.get("detail") or body.get("error") or body.get("message")
        if message:
            detail += f" {message}"
    # 401/403: the key; 402: quota; 400/404/422: the request itself (voice, model, text).
    terminal = status in (400, 401, 402, 403, 404, 422)
    kind = "auth_error" if status in (401, 403) else f"http_{status}"
    return ElevenLabsError(kind, detail, retryable=not terminal)


class TtsClient:
    """Streams one text's speech as 8 kHz μ-law through the SDK's async client."""

    def __init__(self, settings: ElevenLabsSettings, *, chunk_bytes: int = 800) -> None:
        self.settings = settings
        self.chunk_bytes = chunk_bytes
        self._client: AsyncElevenLabs | None = None
        self._http: httpx.AsyncClient | None = None

    def _sdk(self) -> AsyncElevenLabs:
        if self._client is None:
            # Our own httpx client, so `aclose` can release its connections. Its timeout
            # is a last resort: the adapter times requests on the Clock. The SDK's own
            # retries are off (max_retries=0 below): the provider machine owns retrying.
            self._http = httpx.AsyncClient(timeout=60)
            self._client = AsyncElevenLabs(
                api_key=self.settings.key(),
                base_url=self.settings.base_url,
                httpx_client=self._http,
            )
        return self._client

    async def stream(self, text: str) -> AsyncIterator[bytes]:
        """Audio chunks as they arrive; errors come out as `ElevenLabsError`."""
        settings = self.settings
        try:
            chunks = self._sdk().text_to_speech.stream(
                settings.voice_id,
                text=text,
                model_id=settings.tts_model,
                output_format="ulaw_8000",
                request_options={"max_retries": 0, "chunk_size": self.chunk_bytes},
            )
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                # Closing the SDK's generator closes the HTTP response: the server sees
                # the request go away (barge-in stops synthesis, not just forwarding).
                await chunks.aclose()
        except ApiError as exc:
            raise _http_error(exc.status_code, exc.body) from exc
        except httpx.HTTPError as exc:
            raise ElevenLabsError(
                "connection", f"{type(exc).__name__}: {exc}", retryable=True
            ) from exc

    async def aclose(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()


MessageHandler = Callable[[str, dict[str, Any]], None]
CloseHandler = Callable[[int | None, str], None]

# What the adapter wants to hear about; the SDK also re-emits every error type as a
# generic ERROR, which is handled apart so nothing is reported twice.
_FORWARDED = (
    RealtimeEvents.SESSION_STARTED,
    RealtimeEvents.PARTIAL_TRANSCRIPT,
    RealtimeEvents.COMMITTED_TRANSCRIPT,
    RealtimeEvents.COMMITTED_TRANSCRIPT_WITH_TIMESTAMPS,
    *(e for e in RealtimeEvents if e.value in RECONNECTABLE | TERMINAL and e.value != "error"),
    RealtimeEvents.SESSION_TIME_LIMIT_EXCEEDED,
)


class ScribeSession:
    """One Scribe realtime WebSocket (the SDK's `RealtimeConnection`)."""

    def __init__(self, connection: RealtimeConnection) -> None:
        self._connection = connection

    async def send(self, mulaw: bytes) -> None:
        try:
            await self._connection.send({"audio_base_64": base64.b64encode(mulaw).decode()})
        except (WebSocketException, OSError, RuntimeError) as exc:
            raise ElevenLabsError("socket_closed", type(exc).__name__, retryable=True) from exc

    async def close(self) -> None:
        # Already gone is fine: closing is best effort.
        with contextlib.suppress(WebSocketException, OSError, RuntimeError):
            await self._connection.close()


async def open_scribe(
    settings: ElevenLabsSettings,
    on_message: MessageHandler,
    on_close: CloseHandler,
    *,
    vad_silence_threshold_secs: float | None = None,
    include_timestamps: bool = False,
) -> ScribeSession:
    """Open a Scribe realtime session (μ-law 8 kHz in, VAD commits) with the SDK.

    `on_message(message_type, payload)` gets every server message the adapter acts on;
    `on_close(code, reason)` is called once when the socket goes, whoever closed it.
    """
    options: RealtimeAudioOptions = {
        "model_id": settings.stt_model,
        "audio_format": AudioFormat.ULAW_8000,
        "sample_rate": 8000,
        "commit_strategy": CommitStrategy.VAD,
        "language_code": settings.language_code,
        "include_timestamps": include_timestamps,
    }
    if vad_silence_threshold_secs is not None:
        options["vad_silence_threshold_secs"] = vad_silence_threshold_secs
    realtime = ScribeRealtime(api_key=settings.key(), base_url=settings.base_url)
    try:
        connection = await realtime.connect(options)
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise _handshake_error(status) from exc
    except (WebSocketException, OSError) as exc:
        raise ElevenLabsError(
            "connect_failed", f"{type(exc).__name__}: {exc}", retryable=True
        ) from exc

    for event in _FORWARDED:
        connection.on(event, lambda data, kind=event.value: on_message(kind, data))

    def generic_error(data: dict[str, Any]) -> None:
        kind = data.get("message_type")
        if kind is None:  # the SDK's own report: the socket failed under it
            on_message("socket_closed", data)
        elif kind == "error":
            on_message("error", data)

    def closed(info: dict[str, Any] | None = None) -> None:
        info = info or {}
        on_close(info.get("code"), str(info.get("reason") or ""))

    connection.on(RealtimeEvents.ERROR, generic_error)
    connection.on(RealtimeEvents.CLOSE, closed)
    return ScribeSession(connection)


def _handshake_error(status: int) -> ElevenLabsError:
    if status in (401, 403):
        return ElevenLabsError("auth_error", f"handshake HTTP {status}", retryable=False)
    if status == 402:
        return ElevenLabsError("quota_exceeded", f"handshake HTTP {status}", retryable=False)
    return ElevenLabsError("connect_failed", f"handshake HTTP {status}", retryable=status >= 429)
