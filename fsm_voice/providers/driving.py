"""A provider's connection machine, run by the one `MachineDriver`.

Every adapter (offline, scripted, ElevenLabs, Azure; STT and TTS) feeds its
`ProviderMachine` through a `ProviderDriver`: events queue behind the one being
handled (an effect that fires the next event, e.g. "connected" right after
"connect" for stateless HTTP, runs once the current step is done, never inside it),
each move goes to the adapter's state callback as `(state, detail)`, and each
effect to the adapter's `execute`. Adapters never call `machine.fire` themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm_voice.driver import MachineDriver
from fsm_voice.providers.machine import (
    ProviderEffect,
    ProviderEvent,
    ProviderMachine,
    StateCallback,
)

__all__ = ["ProviderDriver"]


class ProviderDriver:
    """Runs `machine`; `on_state()` is read at each move (an STT's listener comes
    with `start`), `execute` carries out each effect."""

    def __init__(
        self,
        machine: ProviderMachine,
        *,
        on_state: Callable[[], StateCallback | None],
        execute: Callable[[ProviderEffect], None],
    ) -> None:
        self._on_state = on_state
        self._driver: MachineDriver[ProviderEvent, ProviderEffect] = MachineDriver(
            "provider", machine, record=self._moved, execute=execute
        )

    def feed(self, event: ProviderEvent, detail: str) -> None:
        """Feed `event`; `detail` says why, next to the state it moves to."""
        self._driver.feed(event, {"detail": detail})

    def _moved(self, kind: str, data: dict[str, Any]) -> None:
        on_state = self._on_state()
        if on_state is not None:
            on_state(str(data["state"]), str(data.get("detail", "")))
