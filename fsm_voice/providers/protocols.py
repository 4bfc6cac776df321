"""voice_runtime's provider protocols, kept as they were so its consumers type-check.

They are structural: any object with these members is a provider. fsm_voice's own
`SpeechRecognizer`/`SpeechSynthesizer` (`base`) are what the engine runs; the compat
wing (`fsm_voice.stt`, `fsm_voice.tts`) adapts them to these. They live in the core
because the seed exports them from `providers` (the core must not import compat).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["EventSink", "SttProvider", "TtsProvider"]

EventSink = Callable[[str, dict[str, Any]], None]
"""Where a provider writes events into the call's log: (kind, data), source `stt`/`tts`."""


class SttProvider(Protocol):
    on_committed: Callable[[str], None] | None  # final transcript of an utterance
    on_recognizing: Callable[[str], None] | None  # interim hypothesis (may change)
    on_error: Callable[[str], None] | None  # fatal: the provider gave up

    def set_speaking(self, speaking: bool) -> None: ...

    async def start(self, inbound_queue: asyncio.Queue[bytes | None]) -> None: ...

    async def stop(self) -> None: ...


class TtsProvider(Protocol):
    on_error: Callable[[str], None] | None  # synthesis failed

    def speak(
        self,
        text: str,
        session: Any,  # a voice_runtime VoiceSession (fsm_voice.session), or one like it
        stop_event: threading.Event | None = ...,
    ) -> dict[str, Any]: ...
