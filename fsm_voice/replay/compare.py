"""What replay compares: the machines' decisions, in order, with their times.

Decisions are every event of the conversation machine and of the call machine, and
the runtime's requests and sends that carry them out (marks, clear, hangup). Inputs
(transport facts, stt results) are not compared: replay feeds them itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fsm_voice.eventlog.records import EventRecord

__all__ = ["ReplayDivergence", "decisions", "first_divergence"]

_SOURCES = frozenset(("conversation", "call"))
_KINDS = frozenset(
    (
        ("runtime", "mark_requested"),
        ("runtime", "clear_requested"),
        ("runtime", "hangup_requested"),
        ("runtime", "agent_failed"),
        ("runtime", "agent_cancelled"),
        ("transport", "mark_sent"),
        ("transport", "clear_sent"),
    )
)


def decisions(events: tuple[EventRecord, ...] | list[EventRecord]) -> list[EventRecord]:
    return [e for e in events if e.source in _SOURCES or (e.source, e.kind) in _KINDS]


def _key(event: EventRecord) -> tuple[int, str, str, Any]:
    return (event.t_ms, event.source, event.kind, event.data)


class ReplayDivergence(AssertionError):
    """The replayed call decided differently from the recording.

    `seq` is the recorded event's seq (the replayed one's when the recording had no
    more decisions); `expected`/`actual` are None where one side ran out; `state` is
    the conversation machine's state there.
    """

    def __init__(
        self,
        call_id: str,
        seq: int,
        expected: EventRecord | None,
        actual: EventRecord | None,
        state: str | None,
    ) -> None:
        self.call_id = call_id
        self.seq = seq
        self.expected = expected
        self.actual = actual
        self.state = state
        super().__init__(self.describe())

    def describe(self) -> str:
        return (
            f"call {self.call_id} diverged at seq {self.seq} (state {self.state}):\n"
            f"  expected {_show(self.expected)}\n  actual   {_show(self.actual)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "seq": self.seq,
            "state": self.state,
            "expected": _as_dict(self.expected),
            "actual": _as_dict(self.actual),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    compared: int  # decisions that matched before the first difference (or all of them)
    divergence: ReplayDivergence | None


def first_divergence(
    call_id: str, recorded: tuple[EventRecord, ...], replayed: tuple[EventRecord, ...]
) -> Comparison:
    expected, actual = decisions(recorded), decisions(replayed)
    for index in range(max(len(expected), len(actual))):
        want = expected[index] if index < len(expected) else None
        got = actual[index] if index < len(actual) else None
        if want is not None and got is not None and _key(want) == _key(got):
            continue
        where = want or got
        assert where is not None
        stream = replayed if got is not None else recorded
        state = _state_before(stream, where.seq)
        return Comparison(index, ReplayDivergence(call_id, where.seq, want, got, state))
    return Comparison(len(expected), None)


def _state_before(events: tuple[EventRecord, ...], seq: int) -> str | None:
    state = None
    for e in events:
        if e.seq >= seq:
            break
        if e.source == "conversation" and e.kind == "state_entered":
            state = e.data.get("state")
    return state


def _as_dict(event: EventRecord | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {
        "seq": event.seq,
        "t_ms": event.t_ms,
        "source": event.source,
        "kind": event.kind,
        "data": event.data,
    }


def _show(event: EventRecord | None) -> str:
    if event is None:
        return "(nothing)"
    data = json.dumps(event.data, sort_keys=True, ensure_ascii=False)
    return f"seq {event.seq} t={event.t_ms} ms {event.source} {event.kind} {data}"
