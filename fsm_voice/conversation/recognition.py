"""The recogniser's callbacks for one call: the conversation's hearing half.

`RecognitionListener` is the `SttListener` a `ConversationRunner` starts its
recogniser with. Every callback is logged (source `stt`) — results, discarded
transcripts, errors and the provider's moves — and the ones the machine acts on
(speech started, a committed transcript, a fatal error) are then dispatched as
conversation events. (`conversation.hearing` is the other side: what the machine
makes of those events.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm_voice.call.handle import CallHandle
from fsm_voice.conversation import events as ev
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.providers.base import SpeechRecognizer, Transcript
from fsm_voice.providers.state_log import StateRecorder

__all__ = ["RecognitionListener"]


class RecognitionListener:
    """The recogniser's callbacks: logged (source `stt`), then fed to the machine."""

    def __init__(
        self,
        call: CallHandle,
        recognizer: SpeechRecognizer,
        dispatch: Callable[[ev.ConversationEvent], None],
    ) -> None:
        self._call = call
        self._recognizer = recognizer  # only its name, read when a callback logs it
        self._dispatch = dispatch
        # The provider's moves, logged as every provider's are; its name is read at
        # each move (offline replay must know what made a recording's words), and the
        # first move's `from` is not known (None) as it always was for the recogniser.
        self.on_state = StateRecorder("stt", lambda: recognizer.name, self._record_stt, state=None)

    def on_speech_started(self, t_ms: int) -> None:
        self._call.record("stt", "speech_started", {"at_ms": t_ms})
        self._dispatch(ev.SpeechStarted(t_ms))

    def on_recognizing(self, text: str) -> None:
        self._call.record("stt", "transcript_partial", {"text": text})

    def on_committed(self, transcript: Transcript) -> None:
        self._call.record(
            "stt",
            "transcript_committed",
            {
                "text": transcript.text,
                "confidence": transcript.confidence,
                "start_ms": transcript.start_ms,
                "end_ms": transcript.end_ms,
                "alternatives": list(transcript.alternatives),
            },
        )
        rejected = not transcript.text.strip() and bool(transcript.alternatives)
        self._dispatch(
            ev.TranscriptReceived(
                transcript.text,
                transcript.confidence,
                transcript.start_ms,
                transcript.end_ms,
                rejected,
            )
        )

    def on_discarded(self, transcript: Transcript, reason: str) -> None:
        """A transcript the recogniser dropped (e.g. the agent's own voice as echo):
        logged, never fed to the machine, so the log explains the silence."""
        self._call.record(
            "stt",
            "transcript_discarded",
            {
                "text": transcript.text,
                "reason": reason,
                "start_ms": transcript.start_ms,
                "end_ms": transcript.end_ms,
            },
        )

    def on_error(self, reason: str, fatal: bool) -> None:
        self._call.record("stt", "provider_error", {"reason": reason, "fatal": fatal})
        if fatal:
            self._dispatch(ev.ProviderFailed(self._recognizer.name, reason))

    def _record_stt(self, kind: KindName, data: dict[str, Any]) -> None:
        self._call.record("stt", kind, data)
