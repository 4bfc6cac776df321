"""voice_runtime's TTS factory: `create_tts` and the adapter behind `TtsProvider`.

`TtsAdapter.speak(text, session)` runs on a consumer thread: synthesis runs on the
session's loop, sentence by sentence, and the audio goes into the session's ordered
outbound queue as it is produced. Then, as in the seed, it waits (up to 30 s) for a
`tts_complete` mark: it returns once the caller has heard it all, and the STT hears
the agent as the agent until then. It returns voice_runtime's result dict:
`last_spoken` (the sentences queued whole), plus `interrupted` when `stop_event` cut
it, `call_disconnected` when the call ended first, and `error` when synthesis failed
(after `on_error` was called, so a consumer's machine never waits in "speaking").

A hang-up ends `speak` at once, even in the middle of a sentence whose audio has not
come yet: the synthesis is cancelled (its request closed), not waited for. The
`on_error` reason names the provider and the failure, in the seed's words
(`elevenlabs_tts_failed: ...`, `azure_synthesis_failed: ...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from fsm_voice.compat.mock_tts import MockTts
from fsm_voice.compat.options import fit_options
from fsm_voice.compat.protocols import TtsProvider
from fsm_voice.compat.settings import VoiceRuntimeSettings
from fsm_voice.errors import FsmVoiceError
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.providers import create_synthesizer
from fsm_voice.providers.base import SpeechSynthesizer, split_sentences
from fsm_voice.providers.state_log import watch_states

if TYPE_CHECKING:
    from fsm_voice.session import VoiceSession

__all__ = [
    "TTS_CLASSES",
    "AzureTTS",
    "AzureTts",
    "ElevenLabsTTS",
    "ElevenLabsTts",
    "OfflineTts",
    "ScriptedTts",
    "TtsAdapter",
    "create_tts",
]

DEFAULT_PROVIDER = "elevenlabs"  # voice_runtime's default
MARK_NAME = "tts_complete"  # the seed's: queued behind the audio, echoed once played
MARK_TIMEOUT_S = 30.0


class TtsAdapter:
    provider: ClassVar[str] = ""
    failure: ClassVar[str] = "tts_failed"  # what `on_error` reasons start with

    def __init__(self, synthesizer: SpeechSynthesizer | None = None, **options: Any) -> None:
        self.on_error: Callable[[str], None] | None = None
        if synthesizer is None:
            defaults = _env_defaults(self.provider)
            options = fit_options("TTS", self.provider, options, defaults)
            synthesizer = create_synthesizer(self.provider, **options)
        self.synthesizer = synthesizer

    def speak(
        self, text: str, session: VoiceSession, stop_event: threading.Event | None = None
    ) -> dict[str, Any]:
        """Queue `text` as audio for the live call; blocks until it is all queued."""
        loop = session.loop
        if loop is None or not loop.is_running():
            raise RuntimeError("speak needs a session whose transport loop is running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("speak blocks: call it from a consumer thread or await speak_async")
        future = asyncio.run_coroutine_threadsafe(self.speak_async(text, session, stop_event), loop)
        return future.result()

    async def speak_async(
        self, text: str, session: VoiceSession, stop_event: threading.Event | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        spoken: list[str] = []
        if not text.strip():  # nothing to say: no request, no mark to wait for
            return {"last_spoken": ""}
        if session.is_disconnected:
            return {"last_spoken": "", "call_disconnected": True}
        _record(session, "speak_started", {"chars": len(text)})
        hung_up = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_hangup() -> None:  # any thread; the loop may be closing with the call
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(hung_up.set)

        unwatch = session.watch_hangup(on_hangup)
        speaking = asyncio.ensure_future(self._speak(text, session, stop_event, result, spoken))
        hangup = asyncio.ensure_future(hung_up.wait())
        try:
            await asyncio.wait({speaking, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unwatch()
            hangup.cancel()
            if not speaking.done():  # the call ended mid-synthesis: stop it, now
                result["call_disconnected"] = True
                speaking.cancel()
            await asyncio.wait({speaking, hangup})
        result["last_spoken"] = " ".join(spoken)
        _record(session, "speak_finished", {k: v for k, v in result.items() if k != "error"})
        return result

    async def _speak(
        self,
        text: str,
        session: VoiceSession,
        stop_event: threading.Event | None,
        result: dict[str, Any],
        spoken: list[str],
    ) -> None:
        stt = session.stt
        if stt is not None:
            stt.set_speaking(True)
        # The synthesiser's moves (its start, a drop and retry mid-sentence) happen
        # while it speaks: logged into this session's call meanwhile.
        unwatch = watch_states(self.synthesizer, lambda kind, data: _record(session, kind, data))
        try:
            await self.synthesizer.start()
            for sentence in split_sentences(text):
                stopped = await self._queue_sentence(sentence, session, stop_event, result)
                if stopped:
                    break
                spoken.append(sentence)
            else:
                await self._played(session)
        except Exception as e:  # a provider failure ends this utterance, not the call
            message = self.failure_reason(e)
            result["error"] = message
            _record(session, "provider_failed", {"error": message})
            if self.on_error is not None:
                self.on_error(message)
        finally:
            unwatch()
            if stt is not None:
                stt.set_speaking(False)

    async def _played(self, session: VoiceSession) -> None:
        """Wait until the caller has heard what was queued (a hang-up or a cleared
        buffer ends the wait at once; a mark that never comes back, after 30 s)."""
        try:
            await asyncio.to_thread(session.send_mark_and_wait, MARK_NAME, MARK_TIMEOUT_S)
        except TimeoutError:  # the seed warned and went on: the audio may be cut off
            _record(session, "mark_timeout", {"mark": MARK_NAME, "timeout_s": MARK_TIMEOUT_S})

    def failure_reason(self, error: Exception) -> str:
        """`on_error`'s reason: which provider failed, and how (our errors say it in
        their message; anything else is named by its type)."""
        what = (
            str(error) if isinstance(error, FsmVoiceError) else f"{type(error).__name__}: {error}"
        )
        return f"{self.failure}: {what}"

    async def _queue_sentence(
        self,
        sentence: str,
        session: VoiceSession,
        stop_event: threading.Event | None,
        result: dict[str, Any],
    ) -> bool:
        """Queue one sentence's audio; True when it was cut short (stop or hang-up)."""
        chunks = self.synthesizer.synthesize(sentence)
        try:
            async for chunk in chunks:
                if stop_event is not None and stop_event.is_set():
                    result["interrupted"] = True
                    return True
                if session.is_disconnected:
                    result["call_disconnected"] = True
                    return True
                await session.put_outbound(chunk)
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()  # stops the synthesis itself, not just the forwarding
        if stop_event is not None and stop_event.is_set():
            result["interrupted"] = True
            return True
        return False


def _record(session: VoiceSession, kind: KindName, data: dict[str, Any]) -> None:
    session.record("tts", kind, data)


class ElevenLabsTTS(TtsAdapter):
    """ElevenLabs streaming TTS (the seed's class name)."""

    provider = "elevenlabs"
    failure = "elevenlabs_tts_failed"


class AzureTTS(TtsAdapter):
    """Azure Speech TTS (the seed's class name)."""

    provider = "azure"
    failure = "azure_synthesis_failed"


ElevenLabsTts = ElevenLabsTTS  # fsm_voice's earlier names
AzureTts = AzureTTS


class OfflineTts(TtsAdapter):
    provider = "offline"


class ScriptedTts(TtsAdapter):
    provider = "scripted"


# provider name → class: `create_tts` looks providers up here only.
TTS_CLASSES: dict[str, type[TtsAdapter]] = {
    cls.provider: cls for cls in (ElevenLabsTTS, AzureTTS, OfflineTts, ScriptedTts)
}


def _env_defaults(provider: str) -> dict[str, Any]:
    settings = VoiceRuntimeSettings.from_env()
    if provider == "elevenlabs":
        return {
            "api_key": settings.elevenlabs_api_key,
            "voice_id": settings.elevenlabs_voice_id,
            "model_id": settings.elevenlabs_model,
        }
    if provider == "azure":
        return {
            "key": settings.azure_speech_key,
            "region": settings.azure_speech_region,
            "voice": settings.azure_tts_voice,
        }
    return {}


@overload
def create_tts(provider: Literal["mock"], **options: Any) -> MockTts: ...
@overload
def create_tts(provider: str = DEFAULT_PROVIDER, **options: Any) -> TtsAdapter: ...
def create_tts(provider: str = DEFAULT_PROVIDER, **options: Any) -> TtsAdapter | MockTts:
    """A TTS for `speak(text, session)`; options go to the provider (see compat.options)."""
    if provider == "mock":  # records and relays text (fsm_voice.mock), synthesises nothing
        return MockTts(**options)
    try:
        cls = TTS_CLASSES[provider]
    except KeyError:
        known = ", ".join(sorted([*TTS_CLASSES, "mock"]))
        raise ValueError(f"Unknown TTS provider: {provider} (known: {known})") from None
    return cls(**options)


if TYPE_CHECKING:
    _provider: TtsProvider = TtsAdapter()
