"""voice_runtime's provider protocols (`SttProvider`, `TtsProvider`) and `EventSink`.

Defined in the core (`fsm_voice.providers.protocols`), because the seed exports them
from `providers` too; the compat wing uses them from here.
"""

from __future__ import annotations

from fsm_voice.providers.protocols import EventSink, SttProvider, TtsProvider

__all__ = ["EventSink", "SttProvider", "TtsProvider"]
