"""Pure, synchronous state machines on `transitions` (the only module importing it).

A machine takes one event at a time through `fire(trigger, event)` and returns a
`Step`: where it was, where it went, and the effects its callbacks emitted. It never
awaits, sleeps, reads a clock or touches a socket; the runtime executes the effects.
An event the current state cannot take is a rejected `Step`, never an exception that
kills the call.

`fire` walks the `transitions.Machine`'s own transition table rather than calling its
trigger: for the plain machines declared here (no prepare/before/enter/exit callbacks,
conditions that must all hold, `after` callbacks as effects) it is the same walk
transitions makes, minus its EventData, queue and debug logging, which cost several
times the step itself. Call machines fire several times a second per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from transitions import EventData, Machine, MachineError, Transition

__all__ = ["Edge", "MachineTable", "PureMachine", "Step"]

E = TypeVar("E")  # the effect type a machine emits


@dataclass(frozen=True, slots=True)
class Edge:
    """One declared transition. `dest=None` is an internal transition (no exit/enter).

    Callbacks take `(event)` in `PureMachine(...)` edges, `(owner, event)` in a
    `MachineTable`'s.
    """

    trigger: str
    source: str | Sequence[str]
    dest: str | None
    conditions: Sequence[Callable[..., bool]] = ()
    effects: Sequence[Callable[..., None]] = ()


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
    """The object `transitions` drives: the state, and the owner callbacks act on."""

    state: str
    owner: object


class MachineTable:
    """A machine's states and edges, declared once as a `transitions.Machine`.

    Callbacks take `(owner, event)`: one table serves every instance of a machine,
    each with its own owner. A call machine runs once per live call, and a
    `transitions.Machine` of its own would be ~1,000 objects per call for the
    garbage collector to walk on every full collection.
    """

    def __init__(self, name: str, states: Sequence[str], initial: str, edges: Sequence[Edge]):
        self.name = name
        self.initial = initial
        self.machine = Machine(
            model=None,
            states=list(states),
            initial=initial,
            auto_transitions=False,
            queued=True,
            send_event=True,
            model_override=False,
        )
        for edge in edges:
            self.machine.add_transition(
                edge.trigger,
                list(edge.source) if not isinstance(edge.source, str) else edge.source,
                edge.dest if edge.dest is not None else None,
                conditions=[_adapt(c) for c in edge.conditions],
                after=[_adapt(e) for e in edge.effects],
            )
        # trigger → source state → [(conditions, dest, effects)], in transitions' order.
        self.table: dict[str, dict[str, list[_Compiled]]] = {
            name: {
                source: [_compile(t) for t in transitions]
                for source, transitions in event.transitions.items()
            }
            for name, event in self.machine.events.items()
        }
        for edge in edges:  # transitions would refuse an unknown state only when fired
            if edge.dest is not None and edge.dest not in self.machine.states:
                raise ValueError(f"{name}: {edge.trigger!r} goes to unknown state {edge.dest!r}")


class PureMachine(Generic[E]):
    """A declarative `transitions.Machine` with one typed entry point, `fire`.

    Either `PureMachine(name, states, initial, edges)`, whose callbacks receive the
    event passed to `fire`, or `PureMachine.on(table, owner)`, sharing a
    `MachineTable` whose callbacks receive `(owner, event)`. Effect callbacks emit
    effects through `emit`.
    """

    def __init__(self, name: str, states: Sequence[str], initial: str, edges: Sequence[Edge]):
        own = [
            Edge(
                e.trigger,
                e.source,
                e.dest,
                [_event_only(c) for c in e.conditions],
                [_event_only(f) for f in e.effects],
            )
            for e in edges
        ]
        self._init(MachineTable(name, states, initial, own), None)

    @classmethod
    def on(cls, table: MachineTable, owner: object) -> PureMachine[E]:
        machine = cls.__new__(cls)
        machine._init(table, owner)
        return machine

    def _init(self, table: MachineTable, owner: object) -> None:
        self.name = table.name
        self._spec = table
        self._table = table.table
        self._owner = owner
        self._state = table.initial
        self._pending: list[E] = []

    @property
    def state(self) -> str:
        return self._state

    @property
    def triggers(self) -> list[str]:
        machine = self._spec.machine
        return sorted(set(machine.get_triggers(*machine.states)))

    def emit(self, effect: E) -> None:
        self._pending.append(effect)

    def fire(self, trigger: str, event: object = None) -> Step[E]:
        source = self._state
        candidates = self._table.get(trigger, {}).get(source)
        if candidates:
            owner = self._owner
            for conditions, dest, effects in candidates:
                if all(condition(owner, event) for condition in conditions):
                    if dest is not None:
                        self._state = dest
                    pending: list[E] = []
                    self._pending = pending
                    try:
                        for effect in effects:
                            effect(owner, event)
                    finally:
                        self._pending = []
                    return Step(trigger, source, self._state, True, tuple(pending))
            # As transitions does with `queued=True`: a trigger the state has transitions
            # for is accepted even when no condition holds (nothing happens).
            return Step(trigger, source, source, True)
        return Step(trigger, source, source, False)

    def fire_with_transitions(self, trigger: str, event: object = None) -> Step[E]:
        """`fire` through transitions' own trigger (the tests check both agree)."""
        source = self._state
        model = _Model()
        model.owner = self._owner
        machine = self._spec.machine
        machine.add_model(model, initial=source)
        self._pending = []
        try:
            accepted = bool(machine.events[trigger].trigger(model, event=event))
        except (MachineError, KeyError):
            accepted = False
        finally:
            machine.remove_model(model)
        self._state = model.state
        effects = tuple(self._pending)
        self._pending = []
        return Step(trigger, source, self._state, accepted, effects if accepted else ())


def _event_only(callback: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    def call(owner: object, event: object) -> Any:
        return callback(event)

    call.__name__ = getattr(callback, "__name__", "callback")
    return call


def _adapt(callback: Callable[[Any, Any], Any]) -> Callable[[EventData], Any]:
    def call(event_data: EventData) -> Any:
        return callback(cast(_Model, event_data.model).owner, event_data.kwargs.get("event"))

    call.__name__ = getattr(callback, "__name__", "callback")
    call.__wrapped__ = callback  # type: ignore[attr-defined]
    return call


_Callback = Callable[[Any, Any], Any]
_Compiled = tuple[tuple[_Callback, ...], str | None, tuple[_Callback, ...]]


def _compile(transition: Transition) -> _Compiled:
    """One transitions `Transition` as (conditions, dest, effects) on (owner, event)."""
    if transition.prepare or transition.before:
        raise ValueError("PureMachine transitions take conditions and effects only")
    conditions = []
    for condition in transition.conditions:
        func: _Callback = getattr(condition.func, "__wrapped__")  # noqa: B009
        conditions.append(func if condition.target else _negate(func))
    effects = tuple(getattr(callback, "__wrapped__") for callback in transition.after)  # noqa: B009
    return tuple(conditions), transition.dest, effects


def _negate(func: _Callback) -> _Callback:
    return lambda owner, event: not func(owner, event)
