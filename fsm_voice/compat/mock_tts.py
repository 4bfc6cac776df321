"""`MockTts`: voice_runtime's scripted TTS (`provider="mock"`), a real `TtsProvider`.

`speak(text, session)` synthesises nothing: it records `text` in `spoken`, hands it to
`on_spoken` (e.g. `create_text_relay`, which posts it to a peer's STT), then blocks
until a `tts_complete` mark has come back from the call, as a real TTS blocks until its
audio has played. So the consumer's turn-taking runs at the call's pace, not at once.

It returns what the seed's providers return: `last_spoken`, `interrupted` (whether
`stop_event` was set), and `call_disconnected` once the call has ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fsm_voice.compat.protocols import TtsProvider

if TYPE_CHECKING:
    from fsm_voice.session import VoiceSession

__all__ = ["MockTts"]

logger = logging.getLogger(__name__)

MARK_NAME = "tts_complete"  # the seed's real TTSs wait on the same mark
MARK_TIMEOUT_S = 10.0


class MockTts:
    """A TTS that records what it was asked to say, relays it, and waits for the mark."""

    def __init__(self, on_spoken: Callable[[str], None] | None = None, **options: Any) -> None:
        self.on_error: Callable[[str], None] | None = None  # never called: nothing can fail
        self.on_spoken = on_spoken
        self.spoken: list[str] = []  # every text spoken, in order
        self._kwargs = dict(options)  # what the factory was given (a mock has no use for it)

    @property
    def options(self) -> dict[str, Any]:
        """The provider options the factory passed (recorded, not used)."""
        return self._kwargs

    def speak(
        self, text: str, session: VoiceSession, stop_event: threading.Event | None = None
    ) -> dict[str, Any]:
        """Record and relay `text`, then block until the call has played up to here."""
        # `is True`: only a session that says so has hung up (a test double says anything).
        if session.is_disconnected is True:
            return {"last_spoken": "", "call_disconnected": True}
        self.spoken.append(text)
        interrupted = stop_event is not None and stop_event.is_set()
        if self.on_spoken is not None:
            try:
                self.on_spoken(text)
            except Exception:  # the relay is the consumer's: its failure is not the turn's
                logger.exception("on_spoken failed for %r", text[:60])
        # Barge-in already cut this turn: nothing to wait for, as with a real TTS.
        # No loop yet: no call can echo the mark (a session used outside a call).
        if not interrupted and session.loop is not None:
            session.send_mark_and_wait(MARK_NAME, timeout=MARK_TIMEOUT_S)
        result: dict[str, Any] = {"last_spoken": text, "interrupted": interrupted}
        if session.is_disconnected is True:
            result["call_disconnected"] = True
        return result


if TYPE_CHECKING:
    _provider: TtsProvider = MockTts()
