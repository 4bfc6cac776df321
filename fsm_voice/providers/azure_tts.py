"""Azure Speech text-to-speech, streamed as it is synthesised, in the telephone's format.

Each sentence is one `speak_text_async` on an SDK `SpeechSynthesizer` configured for
`Raw8Khz8BitMonoMULaw` (8 kHz μ-law, no header: Twilio's own format, nothing to
transcode) with no audio output device (`audio_config=None`). The SDK fires
`synthesizing` on its threads with each new piece of audio; the piece is handed to
the event loop (`call_soon_threadsafe`) and yielded at once, so the first audio
leaves long before the sentence is done. `synthesis_completed` ends the sentence.

`synthesis_canceled` ends it with an `AzureSpeechError` as soon as the SDK says so:
a bad key or an exhausted quota fails the sentence at once instead of leaving the
caller in silence until some timeout. A bad key (AuthenticationFailure, Forbidden,
BadRequest) also moves the provider machine to `error`, and every later sentence
fails without asking the service again.

Closing the iterator early (barge-in) calls `stop_speaking_async`, which stops the
synthesis itself; that synthesiser is then thrown away rather than reused, so no
late event of the stopped sentence can leak into the next one.

The synthesiser is shared by the calls of a process: SDK synthesisers speak one
request at a time, so each sentence in flight borrows its own from a small pool of
idle ones (reused, so their connections stay warm). Building, speaking, stopping
and releasing run on worker threads, never on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsm_voice.errors import ConfigError
from fsm_voice.providers import machine as pm
from fsm_voice.providers.azure_common import (
    AzureSettings,
    AzureSpeechError,
    cancellation_error,
    load_sdk,
    post_to_loop,
)
from fsm_voice.providers.base import SpeechSynthesizer
from fsm_voice.providers.driving import ProviderDriver
from fsm_voice.providers.state_log import StateWatchers
from fsm_voice.security import Secret

__all__ = ["AzureSynthesizer"]

log = logging.getLogger(__name__)

OUTPUT_FORMAT = "Raw8Khz8BitMonoMULaw"


@dataclass(frozen=True, slots=True)
class _Done:
    pass


@dataclass(frozen=True, slots=True)
class _Failed:
    error: AzureSpeechError


_Item = bytes | _Done | _Failed


@dataclass(slots=True)
class _Voice:
    """One SDK synthesiser and where its events go while it speaks a sentence."""

    synthesizer: Any
    sink: Callable[[_Item], None] | None = None
    signals: list[Any] = field(default_factory=list)


class AzureSynthesizer:
    """SpeechSynthesizer on Azure Speech; one instance serves every call of a process."""

    def __init__(
        self,
        *,
        key: Secret | str | None = None,
        region: str | None = None,
        voice: str | None = None,
        sdk: Any = None,
        on_state: pm.StateCallback | None = None,
        max_idle: int = 4,
        environ: Mapping[str, str] | None = None,
        name: str = "azure",
    ) -> None:
        self.name = name
        self.settings = AzureSettings.from_env(environ, key=key, region=region, voice=voice)
        self.state_watchers = StateWatchers(on_state)
        self.machine = pm.ProviderMachine(f"tts:{name}")
        # Building a voice is `start`'s and each sentence's own work: the machine's
        # effects (connect, release) need nothing more from the driver.
        self._driver = ProviderDriver(
            self.machine, on_state=lambda: self.state_watchers, execute=lambda _: None
        )
        self.max_idle = max_idle
        self._sdk = sdk
        self._config: Any = None
        self._idle: list[_Voice] = []
        self._lock = asyncio.Lock()
        self._threads = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="azure-tts")

    # --- SpeechSynthesizer ---

    async def start(self) -> None:
        async with self._lock:
            if self.machine.state != pm.IDLE:
                self._raise_if_failed()
                return
            self._driver.feed(pm.Start(), "connecting")
            try:
                voice = await self._in_thread(self._build_voice)
            except (AzureSpeechError, ConfigError) as exc:  # no key, no SDK: no retry helps
                self._driver.feed(pm.Fatal(str(exc)), str(exc))
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self._driver.feed(pm.Fatal(reason), reason)
                raise AzureSpeechError(f"azure TTS could not start: {reason}") from exc
            self._idle.append(voice)
            detail = f"{self.settings.region}, {self.settings.voice}, {OUTPUT_FORMAT}"
            self._driver.feed(pm.Connected(detail), detail)

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._stream(text)

    async def stop(self) -> None:
        if self.machine.state in pm.FINAL:
            return
        self._driver.feed(pm.Stop(), "stopped")
        idle, self._idle = self._idle, []
        for voice in idle:
            self._background(self._release, voice)
        self._threads.shutdown(wait=False)

    # --- one sentence ---

    async def _stream(self, text: str) -> AsyncIterator[bytes]:
        if self.machine.state == pm.IDLE:
            await self.start()
        self._raise_if_failed()
        voice = await self._borrow()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        voice.sink = lambda item: post_to_loop(loop, queue.put_nowait, item)
        outcome = "interrupted"  # until the SDK says completed or cancelled
        speak = self._threads.submit(voice.synthesizer.speak_text_async, text)
        try:
            try:
                speaking = await asyncio.wrap_future(speak)
            except Exception as exc:  # the SDK refused the request outright
                outcome = "failed"
                raise AzureSpeechError(f"synthesis refused: {type(exc).__name__}: {exc}") from exc
            # Its result repeats the audio we stream; `get` only releases its handle.
            self._background(self._settle, speaking)
            while True:
                item = await queue.get()
                if isinstance(item, bytes):
                    if item:
                        yield item
                elif isinstance(item, _Done):
                    outcome = "completed"
                    return
                else:
                    outcome = "failed"
                    self._fail(item.error)
        finally:
            voice.sink = None
            if outcome == "completed":
                self._give_back(voice)
            elif outcome == "failed":  # the service ended it: not trusted again
                self._background(self._release, voice)
            else:
                # Barge-in: stop the synthesis itself (once it has been asked for: the
                # stop must not overtake the request) and never reuse this synthesiser.
                speak.add_done_callback(lambda _: self._background(self._interrupt, voice))

    def _fail(self, error: AzureSpeechError) -> None:
        if error.fatal and self.machine.state not in pm.FINAL:
            self._driver.feed(pm.Fatal(str(error)), str(error))
        raise error

    def _raise_if_failed(self) -> None:
        if self.machine.state == pm.ERROR:
            raise AzureSpeechError(f"azure TTS is in error: {self.machine.last_reason}", fatal=True)
        if self.machine.state == pm.CLOSED:
            raise AzureSpeechError("azure TTS is stopped")

    async def _borrow(self) -> _Voice:
        if self._idle:
            return self._idle.pop()
        return await self._in_thread(self._build_voice)

    def _give_back(self, voice: _Voice) -> None:
        if self.machine.is_streaming and len(self._idle) < self.max_idle:
            self._idle.append(voice)
        else:
            self._background(self._release, voice)

    def _background(self, work: Callable[[Any], None], arg: Any) -> None:
        """Run `work(arg)` on a worker thread; nothing once stopped (threads are gone)."""
        with contextlib.suppress(RuntimeError):  # cannot schedule after shutdown
            self._threads.submit(work, arg)

    async def _in_thread(self, build: Callable[[], _Voice]) -> _Voice:
        return await asyncio.wrap_future(self._threads.submit(build))

    # --- on worker threads ---

    def _build_voice(self) -> _Voice:
        sdk = self._sdk if self._sdk is not None else load_sdk()
        self._sdk = sdk
        if self._config is None:
            config = self.settings.speech_config(sdk)
            config.speech_synthesis_voice_name = self.settings.voice
            config.set_speech_synthesis_output_format(
                getattr(sdk.SpeechSynthesisOutputFormat, OUTPUT_FORMAT)
            )
            self._config = config
        # audio_config=None: the SDK plays nothing; the audio reaches us in events.
        synthesizer = sdk.SpeechSynthesizer(speech_config=self._config, audio_config=None)
        voice = _Voice(synthesizer)
        relays: list[tuple[Any, Callable[[Any], _Item]]] = [
            (synthesizer.synthesizing, lambda e: bytes(e.result.audio_data or b"")),
            (synthesizer.synthesis_completed, lambda e: _Done()),
            (synthesizer.synthesis_canceled, self._cancelled),
        ]
        for signal, convert in relays:
            signal.connect(self._relay(voice, convert))
            voice.signals.append(signal)
        return voice

    @staticmethod
    def _relay(voice: _Voice, convert: Callable[[Any], _Item]) -> Callable[[Any], None]:
        def on_sdk_thread(evt: Any) -> None:
            sink = voice.sink  # read once: the sentence it belongs to may end meanwhile
            if sink is not None:
                sink(convert(evt))  # copied here: the SDK releases the event after this

        return on_sdk_thread

    @staticmethod
    def _cancelled(evt: Any) -> _Failed:
        return _Failed(cancellation_error(evt.result.cancellation_details, "synthesis"))

    @staticmethod
    def _settle(speaking: Any) -> None:
        try:
            speaking.get()
        except Exception as exc:
            log.debug("speak_text_async failed: %s", exc)

    def _interrupt(self, voice: _Voice) -> None:
        try:
            voice.synthesizer.stop_speaking_async().get()
        except Exception as exc:
            log.debug("stop_speaking_async failed: %s", exc)
        self._release(voice)

    @staticmethod
    def _release(voice: _Voice) -> None:
        voice.sink = None
        for signal in voice.signals:
            signal.disconnect_all()


if TYPE_CHECKING:  # mypy checks that it satisfies the protocol
    _synthesizer: SpeechSynthesizer = AzureSynthesizer()
