"""voice_runtime's STT factories: `create_stt`, `get_stt_class`, and the adapter.

`SttAdapter` turns one of fsm_voice's native recognisers (`SpeechRecognizer`) into
voice_runtime's `SttProvider`: it reads caller frames from the queue `start()` is
given, and calls `on_committed` / `on_recognizing` / `on_error` (fatal only) on the
event loop. The transport sets `event_sink`, so results are in the call's log too.

The seed's policy, kept here: nothing the recogniser hears while the agent speaks
(`set_speaking(True)`) reaches `on_committed`, `on_recognizing` or `listen()` (it is
logged as `transcript_discarded`, reason `agent_speaking`). The ElevenLabs adapter
(`PersistentSttSession`, the seed's class name) builds its recogniser with the seed's
limits (`ELEVENLABS_SEED_POLICY`) and reports why it gave up in the seed's words.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from fsm_voice.audio.mulaw import SAMPLE_RATE
from fsm_voice.compat.mock_stt import MockStt
from fsm_voice.compat.options import fit_options
from fsm_voice.compat.protocols import EventSink, SttProvider
from fsm_voice.compat.settings import VoiceRuntimeSettings
from fsm_voice.errors import CallHangupError
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.providers import create_recognizer
from fsm_voice.providers.base import SpeechRecognizer, Transcript
from fsm_voice.providers.machine import ProviderMachine

if TYPE_CHECKING:
    from fsm_voice.session import VoiceSession

__all__ = [
    "AZURE_SEED_POLICY",
    "ELEVENLABS_SEED_POLICY",
    "STT_CLASSES",
    "AzurePersistentStt",
    "AzureStt",
    "ElevenLabsStt",
    "OfflineStt",
    "PersistentSttSession",
    "ScriptedStt",
    "SttAdapter",
    "create_stt",
    "get_stt_class",
]

DEFAULT_PROVIDER = "elevenlabs"  # voice_runtime's default

# The seed's documented ElevenLabs limits, passed by the compat factory only (the native
# recogniser keeps its own defaults: 5 retries, rate_limited retried, sends unbounded).
ELEVENLABS_SEED_POLICY: dict[str, Any] = {
    "max_retries": 3,  # the 3rd failed reconnect gives up
    "cap_ms": 30_000,  # backoff 1, 2, 4 s … capped at 30 s
    "max_send_failures": 3,  # 3 failed sends in a row end the feed
}
# Azure: the seed's reconnect limits too (its terminal errors are fsm_voice's already).
AZURE_SEED_POLICY: dict[str, Any] = {"max_retries": 3, "cap_ms": 30_000}
SEED_TERMINAL_ERRORS = frozenset({"auth_error", "quota_exceeded", "rate_limited", "input_error"})


class SttAdapter:
    """A native recogniser behind voice_runtime's `SttProvider` protocol."""

    provider: ClassVar[str] = ""

    def __init__(self, recognizer: SpeechRecognizer | None = None, **options: Any) -> None:
        self.on_committed: Callable[[str], None] | None = None
        self.on_recognizing: Callable[[str], None] | None = None
        self.on_error: Callable[[str], None] | None = None
        self.event_sink: EventSink | None = None
        if recognizer is None:
            defaults = _env_defaults(self.provider)
            options = fit_options("STT", self.provider, options, defaults)
            recognizer = create_recognizer(self.provider, **options)
        self.recognizer = recognizer
        self.agent_speaking = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the one start() ran on
        self._feeder: asyncio.Task[None] | None = None
        self._t_ms = 0  # caller time of the next frame, counted from the frames themselves
        self._lock = threading.Lock()
        self._listeners: list[concurrent.futures.Future[str]] = []

    def set_speaking(self, speaking: bool) -> None:
        """From any thread, as in the seed: the recogniser acts on it on its loop (a
        long turn's end may replace its session, which is loop work)."""
        self.agent_speaking = speaking  # the filter applies at once
        loop = self._loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            self.recognizer.set_speaking(speaking)
        else:
            loop.call_soon_threadsafe(self.recognizer.set_speaking, speaking)

    async def start(self, inbound_queue: asyncio.Queue[bytes | None]) -> None:
        """Connect, then feed frames from `inbound_queue` until None; idempotent."""
        if self._feeder is not None:
            return  # a second start must not add a second reader of the same queue
        # An end-of-input None left by an earlier call's cleanup would end this feed at
        # once; audio already queued is this call's and is kept (a tee relies on it).
        pending = [inbound_queue.get_nowait() for _ in range(inbound_queue.qsize())]
        for frame in pending:
            if frame is not None:
                inbound_queue.put_nowait(frame)
        self._loop = asyncio.get_running_loop()
        try:
            await self.recognizer.start(_Listener(self))
        except BaseException:
            with contextlib.suppress(Exception):  # release what the failed start took
                await self.recognizer.stop()
            raise
        self._feeder = asyncio.ensure_future(self._feed(inbound_queue))

    async def _feed(self, queue: asyncio.Queue[bytes | None]) -> None:
        while True:
            frame = await queue.get()
            if frame is None:
                return
            self.recognizer.feed(frame, self._t_ms)
            self._t_ms += len(frame) * 1000 // SAMPLE_RATE

    async def stop(self) -> None:
        feeder, self._feeder = self._feeder, None
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        await self.recognizer.stop()

    def listen(self, session: VoiceSession, timeout: float | None = 30.0) -> str | None:
        """Block until the next committed transcript; None on timeout.

        Raises CallHangupError when the call ends during the wait (or has ended).
        The STT must be running (the transport starts it from `session.stt_factory`).
        """
        waiter: concurrent.futures.Future[str] = concurrent.futures.Future()
        with self._lock:
            self._listeners.append(waiter)

        def hung_up() -> None:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                waiter.set_exception(CallHangupError("the call ended while listening"))

        unwatch = session.watch_hangup(hung_up)
        try:
            return waiter.result(timeout)
        except concurrent.futures.TimeoutError:
            return None
        finally:
            unwatch()
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(waiter)

    # --- results, on the loop ---
    def _event(self, kind: KindName, data: dict[str, Any]) -> None:
        if self.event_sink is not None:
            self.event_sink(kind, data)

    def _call(self, name: str, callback: Callable[[str], None] | None, text: str) -> None:
        if callback is None:
            return
        try:
            callback(text)
        except Exception as e:  # consumer code: its failure is an event, not the STT's end
            self._event("callback_failed", {"callback": name, "error": f"{type(e).__name__}: {e}"})

    def fatal_reason(self, reason: str) -> str:
        """The reason `on_error` gets when the recogniser gave up (`reason`: its own):
        out of retries, the seed's `reconnect_exhausted_after_N_attempts`."""
        machine = getattr(self.recognizer, "machine", None)
        if isinstance(machine, ProviderMachine) and machine.exhausted:
            return f"reconnect_exhausted_after_{machine.retries}_attempts"
        return reason

    def _committed(self, text: str) -> None:
        with self._lock:
            waiters, self._listeners = self._listeners, []
        for waiter in waiters:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                waiter.set_result(text)
        self._call("on_committed", self.on_committed, text)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Listener:
    """Native results → voice_runtime callbacks, logged as the conversation runner does."""

    def __init__(self, adapter: SttAdapter) -> None:
        self._adapter = adapter
        self._state: str | None = None  # the recogniser's last reported state

    def on_speech_started(self, t_ms: int) -> None:
        self._adapter._event("speech_started", {"at_ms": t_ms})

    def _agent_heard(self, text: str) -> bool:
        """While the agent speaks, what the line carries is (mostly) its own voice: the
        seed delivered none of it, so compat consumers never act on their own echo."""
        if not self._adapter.agent_speaking:
            return False
        self._adapter._event("transcript_discarded", {"text": text, "reason": "agent_speaking"})
        return True

    def on_recognizing(self, text: str) -> None:
        if self._agent_heard(text):
            return
        self._adapter._event("transcript_partial", {"text": text})
        self._adapter._call("on_recognizing", self._adapter.on_recognizing, text)

    def on_committed(self, transcript: Transcript) -> None:
        if self._agent_heard(transcript.text):
            return
        data = {"text": transcript.text, "confidence": transcript.confidence}
        self._adapter._event("transcript_committed", data)
        if transcript.text.strip():  # voice_runtime committed words, not noise
            self._adapter._committed(transcript.text.strip())

    def on_discarded(self, transcript: Transcript, reason: str) -> None:
        self._adapter._event("transcript_discarded", {"text": transcript.text, "reason": reason})

    def on_error(self, reason: str, fatal: bool) -> None:
        self._adapter._event("provider_error", {"reason": reason, "fatal": fatal})
        if fatal:  # voice_runtime's on_error means "gave up", not every hiccup
            adapter = self._adapter
            adapter._call("on_error", adapter.on_error, adapter.fatal_reason(reason))

    def on_state(self, state: str, detail: str) -> None:
        # Logged as every machine's move (v2); `on`: the callback does not say.
        moved = {"machine": "stt", "state": state, "from": self._state, "on": None}
        self._state = state
        self._adapter._event("state_entered", {**moved, "detail": detail})


class PersistentSttSession(SttAdapter):
    """ElevenLabs Scribe realtime, one session per call (the seed's class name)."""

    provider = "elevenlabs"

    def fatal_reason(self, reason: str) -> str:
        """The seed's words: the error type (`auth_error`, `rate_limited`, ...),
        `reconnect_exhausted_after_N_attempts`, `feed_audio_N_consecutive_send_failures`."""
        failure = getattr(self.recognizer, "failure", None)
        kind = getattr(failure, "kind", None)
        if not isinstance(kind, str) or kind == "reconnect_exhausted":
            return super().fatal_reason(reason)
        if kind == "send_failures":
            sent = getattr(self.recognizer, "send_failures", 0)
            return f"feed_audio_{sent}_consecutive_send_failures"
        return kind


class AzurePersistentStt(SttAdapter):
    """Azure Speech continuous recognition (the seed's class name)."""

    provider = "azure"


ElevenLabsStt = PersistentSttSession  # fsm_voice's earlier names
AzureStt = AzurePersistentStt


class OfflineStt(SttAdapter):
    provider = "offline"


class ScriptedStt(SttAdapter):
    provider = "scripted"


# provider name → class: `get_stt_class` / `create_stt` look providers up here only.
STT_CLASSES: dict[str, type[SttAdapter]] = {
    cls.provider: cls for cls in (PersistentSttSession, AzurePersistentStt, OfflineStt, ScriptedStt)
}


def _env_defaults(provider: str) -> dict[str, Any]:
    settings = VoiceRuntimeSettings.from_env()
    if provider == "elevenlabs":
        from fsm_voice.providers.elevenlabs_client import TERMINAL  # the SDK, when chosen

        return {
            "api_key": settings.elevenlabs_api_key,
            "model_id": settings.stt_model_id,
            "language_code": settings.stt_language_code,
            "terminal_errors": TERMINAL | SEED_TERMINAL_ERRORS,
            **ELEVENLABS_SEED_POLICY,
        }
    if provider == "azure":
        return {
            "key": settings.azure_speech_key,
            "region": settings.azure_speech_region,
            **AZURE_SEED_POLICY,
        }
    return {}


# A provider held in a plain `str` variable may be "mock" too: the second overload's
# type is then too narrow, the usual price of a Literal overload (mypy flags it).
@overload
def get_stt_class(provider: Literal["mock"]) -> type[MockStt]: ...  # type: ignore[overload-overlap]
@overload
def get_stt_class(provider: str = DEFAULT_PROVIDER) -> type[SttAdapter]: ...
def get_stt_class(provider: str = DEFAULT_PROVIDER) -> type[SttAdapter] | type[MockStt]:
    """The adapter class for `provider`, not instantiated (for factory arguments)."""
    if provider == "mock":  # scripted transcripts (fsm_voice.mock), not a recogniser
        return MockStt
    try:
        return STT_CLASSES[provider]
    except KeyError:
        known = ", ".join(sorted([*STT_CLASSES, "mock"]))
        raise ValueError(f"Unknown STT provider: {provider} (known: {known})") from None


@overload
def create_stt(provider: Literal["mock"], **options: Any) -> MockStt: ...
@overload
def create_stt(provider: str = DEFAULT_PROVIDER, **options: Any) -> SttAdapter: ...
def create_stt(provider: str = DEFAULT_PROVIDER, **options: Any) -> SttAdapter | MockStt:
    """A new STT for one call; options go to the provider (see compat.options)."""
    return get_stt_class(provider)(**options)


if TYPE_CHECKING:
    _provider: SttProvider = SttAdapter()
