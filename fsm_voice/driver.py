"""`MachineDriver`: the one place that runs a machine (event in, moves logged, effects out).

Every machine of a call (the call machine, the conversation, each provider's
connection machine) is pure: it takes one event and returns a `Step`. The driver is
the loop around it, written once:

- **inbox** — `feed(event)` queues the event; an event fed while another is being
  handled (by an effect, a callback) waits behind it: events run in the order fed,
  one at a time, never re-entered;
- **moves** — each move is logged as `state_entered` with the payload
  `{"machine": name, "state": dest, "from": source, "on": trigger}` (plus the
  `extra` fields `feed` was given, e.g. a provider's `detail`);
- **refusals** — a step the machine did not accept goes to `refused(event, step)`,
  which logs it the way that machine always has (the call: `event_rejected`);
- **effects** — each effect goes, in order, to `execute(effect)`, which logs and
  carries it out.

`before(event)` runs first for each event (the call logs the event itself there).

A machine that passes through several states on one event (the conversation: a goto,
an end) reports each move in place among its effects: give `moves_in_effects`, which
returns the `Move` an effect stands for (None: an ordinary effect). Such a move is
logged where it stands instead of being executed, and the step's own source → dest
is not logged again.

Errors: an exception from a callback (or the machine) propagates out of `feed`; the
driver is not left busy, the rest of that step's effects are not run, and events
still queued stay queued until the next `feed` or `drop_queued()` (the call's
failure guard drops them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.machine import Step

__all__ = ["Machine", "MachineDriver", "Move"]

Ev = TypeVar("Ev")  # the events a machine takes
Eff = TypeVar("Eff")  # the effects it returns
_In = TypeVar("_In", contravariant=True)


class Machine(Protocol[_In, Eff]):
    """A pure machine: `fire` takes one event and returns what happened."""

    @property
    def state(self) -> str: ...

    def fire(self, event: _In) -> Step[Eff]: ...


class Move(NamedTuple):
    """A move a machine reports among its effects (see `moves_in_effects`)."""

    state: str
    source: str
    on: str


Record = Callable[[KindName, dict[str, Any]], None]  # (kind, data), logged under the machine


class MachineDriver(Generic[Ev, Eff]):
    """Runs `machine` (named `name` in the log): see the module docstring."""

    def __init__(
        self,
        name: str,
        machine: Machine[Ev, Eff],
        *,
        record: Record,
        execute: Callable[[Eff], None],
        before: Callable[[Ev], None] | None = None,
        refused: Callable[[Ev, Step[Eff]], None] | None = None,
        moves_in_effects: Callable[[Eff], Move | None] | None = None,
    ) -> None:
        self.name = name
        self.machine = machine
        self._record = record
        self._execute = execute
        self._before = before
        self._refused = refused
        self._moves_in = moves_in_effects
        self._inbox: deque[tuple[Ev, Mapping[str, Any] | None]] = deque()
        self._busy = False

    @property
    def state(self) -> str:
        return self.machine.state

    @property
    def busy(self) -> bool:
        """Whether an event is being handled right now (a `feed` would queue)."""
        return self._busy

    def feed(self, event: Ev, extra: Mapping[str, Any] | None = None) -> None:
        """Handle `event` now, or after the event being handled (never re-entered).

        `extra`: fields added to this event's `state_entered` payload.
        """
        self._inbox.append((event, extra))
        if self._busy:
            return
        self._busy = True
        try:
            inbox = self._inbox
            while inbox:
                self._handle(*inbox.popleft())
        finally:
            self._busy = False

    def drop_queued(self) -> None:
        """Forget the events waiting behind the one being handled."""
        self._inbox.clear()

    def _handle(self, event: Ev, extra: Mapping[str, Any] | None) -> None:
        if self._before is not None:
            self._before(event)
        step = self.machine.fire(event)
        if not step.accepted:
            if self._refused is not None:
                self._refused(event, step)
            return
        moves_in = self._moves_in
        if moves_in is None:
            if step.changed_state:
                self._entered(step.dest, step.source, step.trigger, extra)
            for effect in step.effects:
                self._execute(effect)
            return
        for effect in step.effects:
            move = moves_in(effect)
            if move is None:
                self._execute(effect)
            else:
                self._entered(move.state, move.source, move.on, extra)

    def _entered(self, state: str, source: str, on: str, extra: Mapping[str, Any] | None) -> None:
        data: dict[str, Any] = {"machine": self.name, "state": state, "from": source, "on": on}
        if extra:
            data.update(extra)
        self._record("state_entered", data)
