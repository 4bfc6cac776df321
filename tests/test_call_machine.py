"""Table-driven tests of the call machine: (state, event) → (next state, effects)."""

from __future__ import annotations

import random

import pytest

from fsm_voice.call import effects as fx
from fsm_voice.call import events as ev
from fsm_voice.call.machine import STATES, CallMachine
from fsm_voice.machine import Edge, PureMachine

START = ev.StreamStarted("MZ1", call_sid="CA1")

# How to reach each state from a fresh machine.
PATHS: dict[str, list[ev.CallEvent]] = {
    "connecting": [ev.SocketOpened()],
    "listening": [ev.SocketOpened(), START],
    "speaking": [ev.SocketOpened(), START, ev.AgentAudioQueued()],
    "awaiting_mark": [
        ev.SocketOpened(),
        START,
        ev.AgentAudioQueued(),
        ev.MarkRequested(1, "m", 500),
    ],
    "hangup_requested": [ev.SocketOpened(), START, ev.HangupRequested("agent_hangup")],
    "ended": [ev.SocketOpened(), START, ev.StreamStopped()],
    "error": [ev.SocketOpened(), START, ev.FatalError("boom")],
}


def machine_in(state: str) -> CallMachine:
    machine = CallMachine(connect_timeout_ms=1000, hangup_grace_ms=200)
    for event in PATHS[state]:
        assert machine.fire(event).accepted, (state, event)
    assert machine.state == state
    return machine


def kinds(effects: tuple[fx.Effect, ...]) -> list[str]:
    return [type(e).__name__ for e in effects]


# (state, event, next state, effect class names)
TABLE: list[tuple[str, ev.CallEvent, str, list[str]]] = [
    ("connecting", ev.Connected("Call", "1.0.0"), "connecting", []),
    ("connecting", START, "listening", ["CancelTimer", "StartAgent"]),
    ("connecting", ev.MediaReceived("inbound", 1), "connecting", ["ReportViolation"]),
    ("connecting", ev.DtmfReceived("1"), "connecting", ["ReportViolation"]),
    ("connecting", ev.MarkRequested(7, "m", 100), "connecting", ["ReleaseMark"]),
    ("connecting", ev.ConnectTimedOut(), "ended", ["CloseSocket", "CancelTimer", "EndCall"]),
    (
        "connecting",
        ev.StreamRejected("stream_token_invalid"),
        "hangup_requested",
        ["CancelTimer", "CloseSocket", "StartTimer"],
    ),
    ("connecting", ev.StreamStopped(), "ended", ["CancelTimer", "EndCall"]),
    ("connecting", ev.SocketClosed(1006), "ended", ["CancelTimer", "EndCall"]),
    ("listening", ev.Connected(), "listening", ["ReportViolation"]),
    ("listening", START, "listening", ["ReportViolation"]),
    (
        "listening",
        ev.StreamStarted("MZ2"),
        "hangup_requested",
        ["ReportViolation", "CancelTimer", "CloseSocket", "StartTimer"],
    ),
    ("listening", ev.DtmfReceived("#"), "listening", ["DeliverDtmf"]),
    ("listening", ev.AgentAudioQueued(), "speaking", []),
    ("listening", ev.MarkRequested(2, "m2", 100), "awaiting_mark", ["SendMark", "StartTimer"]),
    ("listening", ev.MarkRequested(2, "m2", 0), "awaiting_mark", ["SendMark"]),
    ("listening", ev.MarkEchoed("never-sent"), "listening", ["ReportViolation"]),
    ("listening", ev.ClearRequested(), "listening", ["ClearPlayback"]),
    ("listening", ev.StreamStopped(), "ended", ["CancelTimer", "EndCall"]),
    ("listening", ev.SocketClosed(1006), "ended", ["CancelTimer", "EndCall"]),
    (
        "listening",
        ev.HangupRequested("bye"),
        "hangup_requested",
        ["CancelTimer", "CloseSocket", "StartTimer"],
    ),
    ("listening", ev.FatalError("x"), "error", ["CloseSocket", "CancelTimer", "EndCall"]),
    (
        "listening",
        ev.ViolationLimitReached(100),
        "hangup_requested",
        ["CancelTimer", "CloseSocket", "StartTimer"],
    ),
    ("speaking", ev.AgentAudioQueued(), "speaking", []),
    ("speaking", ev.MarkRequested(2, "m2", 100), "awaiting_mark", ["SendMark", "StartTimer"]),
    ("speaking", ev.ClearRequested(), "listening", ["ClearPlayback"]),
    ("awaiting_mark", ev.MarkEchoed("m"), "listening", ["CancelTimer", "ReleaseMark"]),
    ("awaiting_mark", ev.MarkTimedOut(1), "listening", ["ReleaseMark"]),
    ("awaiting_mark", ev.MarkTimedOut(99), "awaiting_mark", []),
    ("awaiting_mark", ev.AgentAudioQueued(), "speaking", []),
    (
        "awaiting_mark",
        ev.ClearRequested(),
        "listening",
        ["ClearPlayback", "CancelTimer", "ReleaseMark"],
    ),
    (
        "awaiting_mark",
        ev.StreamStopped(),
        "ended",
        ["CancelTimer", "ReleaseMark", "CancelTimer", "EndCall"],
    ),
    (
        "awaiting_mark",
        ev.HangupRequested("bye"),
        "hangup_requested",
        ["CancelTimer", "ReleaseMark", "CancelTimer", "CloseSocket", "StartTimer"],
    ),
    ("hangup_requested", ev.SocketClosed(1000), "ended", ["CancelTimer", "CancelTimer", "EndCall"]),
    ("hangup_requested", ev.StreamStopped(), "ended", ["CancelTimer", "CancelTimer", "EndCall"]),
    ("hangup_requested", ev.HangupTimedOut(), "ended", ["CancelTimer", "CancelTimer", "EndCall"]),
    ("hangup_requested", ev.HangupRequested("again"), "hangup_requested", []),
    ("hangup_requested", ev.MarkRequested(5, "late", 100), "hangup_requested", ["ReleaseMark"]),
    ("hangup_requested", ev.ClearRequested(), "hangup_requested", []),
    ("ended", ev.MarkRequested(5, "late", 100), "ended", ["ReleaseMark"]),
    ("ended", ev.SocketClosed(1000), "ended", []),
    ("ended", ev.HangupRequested(), "ended", []),
    ("ended", ev.ClearRequested(), "ended", []),
    ("error", ev.MarkRequested(5, "late", 100), "error", ["ReleaseMark"]),
]


@pytest.mark.parametrize(("state", "event", "dest", "effects"), TABLE)
def test_transition_table(state: str, event: ev.CallEvent, dest: str, effects: list[str]) -> None:
    machine = machine_in(state)
    step = machine.fire(event)
    assert step.accepted
    assert (step.source, step.dest) == (state, dest)
    assert kinds(step.effects) == effects


ALL_EVENTS: list[ev.CallEvent] = [
    ev.SocketOpened(),
    ev.Connected(),
    START,
    ev.MediaReceived(),
    ev.DtmfReceived("1"),
    ev.MarkEchoed("m"),
    ev.StreamStopped(),
    ev.SocketClosed(),
    ev.AgentAudioQueued(),
    ev.MarkRequested(9, "n", 10),
    ev.MarkTimedOut(1),
    ev.ClearRequested(),
    ev.HangupRequested(),
    ev.ConnectTimedOut(),
    ev.HangupTimedOut(),
    ev.FatalError("f"),
    ev.ViolationLimitReached(1),
    ev.StreamRejected("stream_token_invalid"),
]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: e.trigger)
def test_every_event_in_every_state_is_an_answer_not_an_exception(
    state: str, event: ev.CallEvent
) -> None:
    machine = machine_in(state)
    step = machine.fire(event)  # must not raise, whatever the pair
    if not step.accepted:
        assert step.effects == () and machine.state == state
    listed = any(s == state and type(e) is type(event) for s, e, _, _ in TABLE)
    if listed:
        assert step.accepted


REJECTED = [
    ("ended", ev.StreamStopped()),
    ("ended", ev.DtmfReceived("1")),
    ("ended", START),
    ("ended", ev.AgentAudioQueued()),
    ("error", ev.StreamStopped()),
    ("connecting", ev.AgentAudioQueued()),
    ("connecting", ev.MarkEchoed("m")),
    ("listening", ev.ConnectTimedOut()),
    ("listening", ev.HangupTimedOut()),
    ("hangup_requested", ev.AgentAudioQueued()),
    ("hangup_requested", ev.DtmfReceived("5")),
    ("speaking", ev.SocketOpened()),
]


@pytest.mark.parametrize(("state", "event"), REJECTED)
def test_events_invalid_in_a_state_are_rejected(state: str, event: ev.CallEvent) -> None:
    machine = machine_in(state)
    step = machine.fire(event)
    assert not step.accepted
    assert machine.state == state


def test_two_marks_with_one_label_release_one_at_a_time() -> None:
    machine = machine_in("listening")
    machine.fire(ev.MarkRequested(1, "same", 100))
    machine.fire(ev.MarkRequested(2, "same", 100))
    first = machine.fire(ev.MarkEchoed("same"))
    assert [e for e in first.effects if isinstance(e, fx.ReleaseMark)] == [
        fx.ReleaseMark(1, "same", "played")
    ]
    assert machine.state == "awaiting_mark"
    second = machine.fire(ev.MarkEchoed("same"))
    assert fx.ReleaseMark(2, "same", "played") in second.effects
    assert machine.state == "listening"


def test_marks_echoed_after_a_clear_are_expected_not_violations() -> None:
    machine = machine_in("awaiting_mark")
    clear = machine.fire(ev.ClearRequested())
    assert fx.ReleaseMark(1, "m", "cleared") in clear.effects
    echo = machine.fire(ev.MarkEchoed("m"))  # Twilio echoes marks a clear dropped
    assert echo.accepted and echo.effects == ()
    again = machine.fire(ev.MarkEchoed("m"))
    assert [type(e) for e in again.effects] == [fx.ReportViolation]


def test_audio_after_a_mark_keeps_speaking_until_the_next_mark_is_echoed() -> None:
    machine = machine_in("awaiting_mark")
    machine.fire(ev.AgentAudioQueued())
    assert machine.fire(ev.MarkEchoed("m")).dest == "speaking"
    machine.fire(ev.MarkRequested(2, "n", 100))
    assert machine.fire(ev.MarkEchoed("n")).dest == "listening"


def test_a_mark_without_a_timeout_starts_and_cancels_no_timer() -> None:
    machine = machine_in("listening")
    assert kinds(machine.fire(ev.MarkRequested(1, "a", 0)).effects) == ["SendMark"]
    assert kinds(machine.fire(ev.MarkEchoed("a")).effects) == ["ReleaseMark"]
    machine.fire(ev.MarkRequested(2, "b", 0))
    machine.fire(ev.MarkRequested(3, "c", 500))
    clear = machine.fire(ev.ClearRequested())
    assert clear.effects == (
        fx.ClearPlayback(),
        fx.ReleaseMark(2, "b", "cleared"),
        fx.CancelTimer("mark:3"),
        fx.ReleaseMark(3, "c", "cleared"),
    )
    assert machine.timed == set()


def test_a_timed_out_mark_cancels_no_timer_later() -> None:
    machine = machine_in("listening")
    machine.fire(ev.MarkRequested(1, "a", 500))
    machine.fire(ev.MarkRequested(2, "b", 500))
    assert kinds(machine.fire(ev.MarkTimedOut(1)).effects) == ["ReleaseMark"]
    hangup = machine.fire(ev.HangupRequested("bye"))
    assert [e for e in hangup.effects if isinstance(e, fx.CancelTimer)] == [
        fx.CancelTimer("mark:2"),
        fx.CancelTimer("connect"),
    ]


def test_hangup_reason_survives_to_the_end() -> None:
    machine = machine_in("listening")
    machine.fire(ev.HangupRequested("done_talking"))
    step = machine.fire(ev.SocketClosed(1000))
    assert fx.EndCall("done_talking") in step.effects


def _walk(seed: int, steps: int = 60) -> list[ev.CallEvent]:
    """A reproducible random sequence of events (marks with labels that get echoed)."""
    rng = random.Random(seed)
    events: list[ev.CallEvent] = [ev.SocketOpened()]
    for n in range(steps):
        events.append(
            rng.choice(
                [
                    *ALL_EVENTS,
                    ev.MarkRequested(n, f"m{n % 3}", rng.choice([0, 100])),
                    ev.MarkEchoed(f"m{rng.randrange(3)}"),
                    ev.MarkTimedOut(rng.randrange(n + 1)),
                    ev.AgentAudioQueued(),
                    START,
                ]
            )
        )
    return events


@pytest.mark.parametrize("seed", range(40))
def test_fire_walks_the_same_table_as_transitions_own_trigger(seed: int) -> None:
    """`fire`'s direct walk and transitions' `trigger` give the same steps and effects."""
    fast = CallMachine(connect_timeout_ms=1000, hangup_grace_ms=200)
    slow = CallMachine(connect_timeout_ms=1000, hangup_grace_ms=200)
    for event in _walk(seed):
        expected = slow._m.fire_with_transitions(event.trigger, event)
        assert fast.fire(event) == expected, event
        assert (fast.state, fast.pending, fast.timed, list(fast.cleared)) == (
            slow.state,
            slow.pending,
            slow.timed,
            list(slow.cleared),
        )


def test_a_table_refuses_an_edge_to_an_unknown_state() -> None:
    with pytest.raises(ValueError, match="unknown state 'nowhere'"):
        PureMachine("m", ["a", "b"], "a", [Edge("go", "a", "nowhere")])


def test_a_rejected_stream_closes_with_policy_code_and_never_goes_live() -> None:
    machine = machine_in("connecting")
    step = machine.fire(ev.StreamRejected("stream_token_invalid"))
    assert fx.CloseSocket(1008, "stream_token_invalid") in step.effects
    assert machine.stream_sid is None
    assert machine.fire(START).dest == "hangup_requested"  # a later start cannot revive it
