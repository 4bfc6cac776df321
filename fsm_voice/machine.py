"""Pure, synchronous state machines on `transitions` (the only module importing it).

A machine takes one event at a time through `fire(trigger, event)` and returns a
`Step`: where it was, where it went, and the effects its callbacks emitted. It never
awaits, sleeps, reads a clock or touches a socket; the runtime executes the effects.
An event the current state cannot take is a rejected `Step`, never an exception that
kills the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from transitions import EventData, Machine, MachineError

__all__ = ["Edge", "PureMachine", "Step"]

E = TypeVar("E")  # the effect type a machine emits


@dataclass(frozen=True, slots=True)
class Edge:
    """One declared transition. `dest=None` is an internal transition (no exit/enter)."""

    trigger: str
    source: str | Sequence[str]
    dest: str | None
    conditions: Sequence[Callable[[Any], bool]] = ()
    effects: Sequence[Callable[[Any], None]] = ()


@dataclass(frozen=True, slots=True)
class Step(Generic[E]):
    trigger: str
    source: str
    dest: str
    accepted: bool
    effects: tuple[E, ...] = field(default=())

    @property
    def changed_state(self) -> bool:
        return self.accepted and self.source != self.dest


class _Model:
    """The object `transitions` drives; holds nothing but the current state."""

    state: str


class PureMachine(Generic[E]):
    """A declarative `transitions.Machine` with one typed entry point, `fire`.

    Callbacks in `Edge.conditions`/`Edge.effects` receive the event object passed to
    `fire`; effect callbacks emit effects through `emit`.
    """

    def __init__(self, name: str, states: Sequence[str], initial: str, edges: Sequence[Edge]):
        self.name = name
        self._model = _Model()
        self._pending: list[E] = []
        self._machine = Machine(
            model=self._model,
            states=list(states),
            initial=initial,
            auto_transitions=False,
            queued=True,
            send_event=True,
            model_override=False,
        )
        for edge in edges:
            self._machine.add_transition(
                edge.trigger,
                list(edge.source) if not isinstance(edge.source, str) else edge.source,
                edge.dest if edge.dest is not None else None,
                conditions=[_unwrap(c) for c in edge.conditions],
                after=[_unwrap(e) for e in edge.effects],
            )

    @property
    def state(self) -> str:
        return self._model.state

    @property
    def triggers(self) -> list[str]:
        return sorted(set(self._machine.get_triggers(*self._machine.states)))

    def emit(self, effect: E) -> None:
        self._pending.append(effect)

    def fire(self, trigger: str, event: object = None) -> Step[E]:
        source = self._model.state
        self._pending = []
        try:
            accepted = bool(self._machine.events[trigger].trigger(self._model, event=event))
        except (MachineError, KeyError):
            accepted = False
        effects = tuple(self._pending)
        self._pending = []
        return Step(trigger, source, self._model.state, accepted, effects if accepted else ())


def _unwrap(callback: Callable[[Any], Any]) -> Callable[[EventData], Any]:
    def call(event_data: EventData) -> Any:
        return callback(event_data.kwargs.get("event"))

    call.__name__ = getattr(callback, "__name__", "callback")
    return call
