"""`MachineDriver`: the inbox, the logged moves, refusals, effects and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fsm_voice.driver import MachineDriver, Move
from fsm_voice.machine import Edge, PureMachine, Step


@dataclass(frozen=True)
class Go:
    trigger: str
    then: str | None = None  # an event the effect feeds back while it is handled


class Door:
    """closed --open--> opened --close--> closed; `knock` is internal in both."""

    def __init__(self) -> None:
        self._m: PureMachine[str] = PureMachine(
            "door",
            ["closed", "opened"],
            "closed",
            [
                Edge("open", "closed", "opened", effects=[self._emit("swing")]),
                Edge("close", "opened", "closed", effects=[self._emit("slam")]),
                Edge("knock", ["closed", "opened"], None, effects=[self._emit("echo")]),
            ],
        )

    def _emit(self, effect: str) -> Any:
        return lambda event: self._m.emit(f"{effect}:{event.then or ''}")

    @property
    def state(self) -> str:
        return self._m.state

    def fire(self, event: Go) -> Step[str]:
        return self._m.fire(event.trigger, event)


class Harness:
    def __init__(self, fail_on: str | None = None) -> None:
        self.log: list[tuple[str, Any]] = []
        self.fail_on = fail_on
        self.driver: MachineDriver[Go, str] = MachineDriver(
            "door",
            Door(),
            record=lambda kind, data: self.log.append((kind, data)),
            execute=self.execute,
            before=lambda event: self.log.append(("event", event.trigger)),
            refused=lambda event, step: self.log.append(("refused", (step.source, event.trigger))),
        )

    def execute(self, effect: str) -> None:
        self.log.append(("effect", effect))
        then = effect.split(":")[1]
        if then:
            self.driver.feed(Go(then))
        if self.fail_on is not None and effect.startswith(self.fail_on):
            raise RuntimeError(effect)


def test_a_move_is_logged_as_state_entered_before_the_effects() -> None:
    h = Harness()
    h.driver.feed(Go("open"))
    assert h.log == [
        ("event", "open"),
        ("state_entered", {"machine": "door", "state": "opened", "from": "closed", "on": "open"}),
        ("effect", "swing:"),
    ]
    assert h.driver.state == "opened"


def test_an_internal_transition_is_not_a_move() -> None:
    h = Harness()
    h.driver.feed(Go("knock"))
    assert h.log == [("event", "knock"), ("effect", "echo:")]


def test_extra_fields_join_the_move() -> None:
    h = Harness()
    h.driver.feed(Go("open"), {"detail": "by hand"})
    entered = [data for kind, data in h.log if kind == "state_entered"]
    assert entered == [
        {"machine": "door", "state": "opened", "from": "closed", "on": "open", "detail": "by hand"}
    ]


def test_events_fed_by_an_effect_wait_their_turn() -> None:
    h = Harness()
    h.driver.feed(Go("open", then="close"))  # swing feeds close; slam feeds knock
    assert [entry for entry in h.log if entry[0] in ("event", "effect")] == [
        ("event", "open"),
        ("effect", "swing:close"),  # close is queued, not handled inside swing
        ("event", "close"),
        ("effect", "slam:"),
    ]
    assert not h.driver.busy


def test_no_reentry_while_handling() -> None:
    seen: list[tuple[bool, int]] = []  # (busy, events begun) as each effect ends
    h = Harness()
    original = h.execute

    def execute(effect: str) -> None:
        original(effect)  # swing feeds knock: it must not begin inside swing
        seen.append((h.driver.busy, [kind for kind, _ in h.log].count("event")))

    h.driver._execute = execute
    h.driver.feed(Go("open", then="knock"))
    assert seen == [(True, 1), (True, 2)]


def test_a_refused_event_goes_to_refused_and_nothing_else() -> None:
    h = Harness()
    h.driver.feed(Go("close"))  # closed cannot close
    assert h.log == [("event", "close"), ("refused", ("closed", "close"))]
    assert h.driver.state == "closed"


def test_an_executor_error_propagates_and_leaves_the_driver_usable() -> None:
    h = Harness(fail_on="swing")
    with pytest.raises(RuntimeError, match="swing"):
        h.driver.feed(Go("open"))
    assert not h.driver.busy
    h.fail_on = None
    h.driver.feed(Go("close"))  # the next event runs normally
    assert h.log[-1] == ("effect", "slam:")


def test_events_queued_behind_a_failure_run_at_the_next_feed() -> None:
    h = Harness(fail_on="swing")
    with pytest.raises(RuntimeError):
        h.driver.feed(Go("open", then="close"))  # swing queues close, then fails
    h.fail_on = None
    h.log.clear()
    h.driver.feed(Go("knock"))
    assert [entry[1] for entry in h.log if entry[0] == "event"] == ["close", "knock"]


def test_events_queued_behind_a_failure_can_be_dropped() -> None:
    h = Harness(fail_on="swing")
    with pytest.raises(RuntimeError):
        h.driver.feed(Go("open", then="close"))
    h.driver.drop_queued()  # what the call's failure guard does
    h.fail_on = None
    h.log.clear()
    h.driver.feed(Go("knock"))
    assert [entry[1] for entry in h.log if entry[0] == "event"] == ["knock"]


def test_drop_queued_forgets_what_waits() -> None:
    h = Harness()
    calls: list[str] = []

    def execute(effect: str) -> None:
        calls.append(effect)
        h.driver.feed(Go("knock"))
        h.driver.drop_queued()

    h.driver._execute = execute
    h.driver.feed(Go("open"))
    assert calls == ["swing:"]  # the knock fed inside was dropped


def test_moves_reported_among_the_effects_are_logged_in_place() -> None:
    log: list[tuple[str, Any]] = []

    class Walker:
        state = "a"

        def fire(self, event: str) -> Step[object]:
            effects = ("first", Move("b", "a", event), "second", Move("c", "b", event))
            self.state = "c"
            return Step(event, "a", "c", True, effects)

    driver: MachineDriver[str, object] = MachineDriver(
        "walker",
        Walker(),
        record=lambda kind, data: log.append((kind, data["state"])),
        execute=lambda effect: log.append(("effect", effect)),
        moves_in_effects=lambda e: e if isinstance(e, Move) else None,
    )
    driver.feed("go")
    assert log == [
        ("effect", "first"),
        ("state_entered", "b"),
        ("effect", "second"),
        ("state_entered", "c"),  # and no extra state_entered for the step's a -> c
    ]
