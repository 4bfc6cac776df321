"""voice_runtime's provider protocols, kept as they were so its consumers type-check.

They are structural: any object with these members is a provider. fsm_voice's own
`SpeechRecognizer`/`SpeechSynthesizer` (fsm_voice.providers.base) are what the engine
runs; `fsm_voice.stt` and `fsm_voice.tts` adapt them to these.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fsm_voice.session import VoiceSession

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
        session: VoiceSession,
        stop_event: threading.Event | None = ...,
    ) -> dict[str, Any]: ...
