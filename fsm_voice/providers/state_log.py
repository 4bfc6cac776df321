"""A provider machine's moves, to the call's log, as every machine logs its moves.

A provider reports each change of its machine's state as `(state, detail)` (the STT
through `SttListener.on_state`, the TTS through its `state_watchers`). `StateRecorder`
turns that into `state_entered` {machine, state, from, on, detail, provider}: `from`
is the state it last reported, `on` None (the callback does not say which event
moved it).

A TTS serves every call of a process, so one callback would log into one call only:
`StateWatchers` fans its moves out to every call watching it (each call watches
while it lives, see `watch_states`), and remembers the last state so a call that
starts watching a TTS already streaming logs the right `from`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.providers.machine import IDLE, StateCallback

__all__ = ["Record", "StateRecorder", "StateWatchers", "watch_states"]

Record = Callable[[KindName, dict[str, Any]], None]
"""`(kind, data)`: log one event under the provider's source (stt or tts)."""


class StateWatchers:
    """A shared provider's state callback: calls every watcher with each move."""

    def __init__(self, first: StateCallback | None = None) -> None:
        self.state = IDLE  # the last state reported
        self._watchers: list[StateCallback] = [first] if first is not None else []

    def watch(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback` with every move from now on; returns the unwatch."""
        self._watchers.append(callback)

        def unwatch() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return unwatch

    def __call__(self, state: str, detail: str) -> None:
        self.state = state
        for callback in list(self._watchers):  # a watcher may unwatch as it is told
            callback(state, detail)


class StateRecorder:
    """`(state, detail)` → `state_entered` of machine `machine` (stt or tts).

    `provider`: its name, or how to read it at each move (a call's recogniser is
    named when it logs). `state`: the `from` of the first move (None: not known).
    """

    def __init__(
        self,
        machine: Literal["stt", "tts"],
        provider: str | Callable[[], str],
        record: Record,
        *,
        state: str | None = IDLE,
    ) -> None:
        self.machine = machine
        self._provider = provider
        self.state = state  # the `from` of the next move
        self._record = record

    def __call__(self, state: str, detail: str) -> None:
        moved = {"machine": self.machine, "state": state, "from": self.state, "on": None}
        self.state = state
        provider = self._provider if isinstance(self._provider, str) else self._provider()
        self._record("state_entered", {**moved, "detail": detail, "provider": provider})


def watch_states(synthesizer: object, record: Record) -> Callable[[], None]:
    """Log `synthesizer`'s moves through `record` until the returned unwatch is
    called; nothing for a synthesiser without `state_watchers` (e.g. replay's)."""
    watchers = getattr(synthesizer, "state_watchers", None)
    if not isinstance(watchers, StateWatchers):
        return lambda: None
    name = str(getattr(synthesizer, "name", ""))
    return watchers.watch(StateRecorder("tts", name, record, state=watchers.state))
