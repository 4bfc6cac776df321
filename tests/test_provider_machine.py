"""Table-driven tests of the provider machine: (state, event) → (next state, effects)."""

from __future__ import annotations

import pytest

from fsm_voice.providers import machine as pm

# How to reach each state from a fresh machine.
PATHS: dict[str, list[pm.ProviderEvent]] = {
    "idle": [],
    "connecting": [pm.Start()],
    "streaming": [pm.Start(), pm.Connected()],
    "reconnecting": [pm.Start(), pm.Connected(), pm.Dropped("reset")],
    "closed": [pm.Start(), pm.Stop()],
    "error": [pm.Start(), pm.Fatal("bad key")],
}


def machine_in(state: str, max_retries: int = 3) -> pm.ProviderMachine:
    machine = pm.ProviderMachine("stt", jitter=lambda: 0.5, max_retries=max_retries)
    for event in PATHS[state]:
        assert machine.fire(event).accepted, (state, event)
    assert machine.state == state
    return machine


def names(effects: tuple[pm.ProviderEffect, ...]) -> list[str]:
    return [type(e).__name__ for e in effects]


TABLE: list[tuple[str, pm.ProviderEvent, str, list[str]]] = [
    ("idle", pm.Start(), "connecting", ["Connect"]),
    ("idle", pm.Stop(), "closed", ["CancelRetry", "Disconnect"]),
    ("idle", pm.Fatal("x"), "error", ["CancelRetry", "Disconnect", "ReportError"]),
    ("idle", pm.Dropped("x"), "idle", []),
    ("connecting", pm.Start(), "connecting", []),
    ("connecting", pm.Connected(), "streaming", []),
    ("connecting", pm.Dropped("refused"), "reconnecting", ["ScheduleRetry", "ReportError"]),
    ("connecting", pm.GaveUp("no"), "error", ["CancelRetry", "Disconnect", "ReportError"]),
    ("connecting", pm.Stop(), "closed", ["CancelRetry", "Disconnect"]),
    ("streaming", pm.Dropped("eof"), "reconnecting", ["ScheduleRetry", "ReportError"]),
    ("streaming", pm.Fatal("auth"), "error", ["CancelRetry", "Disconnect", "ReportError"]),
    ("streaming", pm.Stop(), "closed", ["CancelRetry", "Disconnect"]),
    ("streaming", pm.Start(), "streaming", []),
    ("reconnecting", pm.Retry(), "connecting", ["Connect"]),
    ("reconnecting", pm.Dropped("late"), "reconnecting", []),
    ("reconnecting", pm.GaveUp(), "error", ["CancelRetry", "Disconnect", "ReportError"]),
    ("reconnecting", pm.Stop(), "closed", ["CancelRetry", "Disconnect"]),
    ("closed", pm.Stop(), "closed", []),
    ("closed", pm.Retry(), "closed", []),
    ("closed", pm.Dropped("x"), "closed", []),
    ("error", pm.Stop(), "error", []),
    ("error", pm.Retry(), "error", []),
]


@pytest.mark.parametrize(("state", "event", "dest", "effects"), TABLE)
def test_transition_table(
    state: str, event: pm.ProviderEvent, dest: str, effects: list[str]
) -> None:
    step = machine_in(state).fire(event)
    assert step.accepted
    assert (step.dest, names(step.effects)) == (dest, effects)


REJECTED = [
    ("idle", pm.Connected()),
    ("idle", pm.Retry()),
    ("streaming", pm.Connected()),
    ("streaming", pm.Retry()),
    ("closed", pm.Start()),
    ("closed", pm.Fatal("x")),
    ("error", pm.Start()),
]


@pytest.mark.parametrize(("state", "event"), REJECTED)
def test_events_a_state_cannot_take_are_rejected_not_raised(
    state: str, event: pm.ProviderEvent
) -> None:
    step = machine_in(state).fire(event)
    assert not step.accepted
    assert step.dest == state
    assert step.effects == ()


def test_retries_back_off_exponentially_then_give_up() -> None:
    machine = machine_in("streaming", max_retries=3)
    delays: list[int] = []
    for _ in range(3):
        step = machine.fire(pm.Dropped("eof"))
        retry = step.effects[0]
        assert isinstance(retry, pm.ScheduleRetry)
        delays.append(retry.delay_ms)
        assert machine.fire(pm.Retry()).effects == (pm.Connect(retry.attempt),)
    assert delays == [1000, 2000, 4000]
    step = machine.fire(pm.Dropped("eof"))
    assert step.dest == "error"
    assert step.effects[-1] == pm.ReportError("eof (after 3 retries)", fatal=True)


def test_a_successful_connection_resets_the_retry_count() -> None:
    machine = machine_in("streaming", max_retries=1)
    machine.fire(pm.Dropped("eof"))
    machine.fire(pm.Retry())
    machine.fire(pm.Connected())
    step = machine.fire(pm.Dropped("eof again"))
    assert step.dest == "reconnecting"


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 0.5, 1000),
        (2, 0.5, 2000),
        (3, 0.5, 4000),
        (4, 0.0, 6000),  # -25 %
        (4, 1.0, 10_000),  # +25 %
        (9, 0.5, 16_000),  # capped
        (20, 0.999, 19_992),
    ],
)
def test_backoff(attempt: int, jitter: float, expected: int) -> None:
    assert pm.backoff_ms(attempt, jitter) == expected


def test_jitter_comes_from_the_injected_source() -> None:
    values = iter([0.0, 1.0])
    machine = pm.ProviderMachine("tts", jitter=lambda: next(values), max_retries=5)
    machine.fire(pm.Start())
    first = machine.fire(pm.Dropped("a")).effects[0]
    machine.fire(pm.Retry())
    second = machine.fire(pm.Dropped("b")).effects[0]
    assert isinstance(first, pm.ScheduleRetry) and isinstance(second, pm.ScheduleRetry)
    assert (first.delay_ms, second.delay_ms) == (750, 2500)
