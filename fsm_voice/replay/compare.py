"""What replay compares: the machines' decisions, in order, at their times.

Decisions are every event of the conversation machine and of the call machine, and
the runtime's requests and sends that carry them out (marks, clear, hangup). Inputs
(transport facts, stt results) are not compared: replay feeds them itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.decisions import decisions, state_changes

__all__ = ["ReplayDivergence", "decisions", "first_divergence"]

# A call recorded on the real clock has a few ms of scheduling jitter between an input
# and the decisions it causes; replay feeds the inputs at their recorded times, so a
# decision made within this much of its recorded time is the same decision. (A call
# recorded on the virtual clock replays to the exact ms; tests check that separately.)
TIME_TOLERANCE_MS = 50


# Where in the machine file a decision came from: kept in the log for people, not
# compared (a comment or a blank line added to the file moves every line after it).
SOURCE_POSITION_FIELDS = frozenset(("line",))


def _decided(data: dict[str, Any]) -> dict[str, Any]:
    if SOURCE_POSITION_FIELDS.isdisjoint(data):
        return data
    return {k: v for k, v in data.items() if k not in SOURCE_POSITION_FIELDS}


def _same(want: EventRecord, got: EventRecord) -> bool:
    return (
        want.source == got.source
        and want.kind == got.kind
        and abs(want.t_ms - got.t_ms) <= TIME_TOLERANCE_MS
        and (want.data == got.data or _decided(want.data) == _decided(got.data))
    )


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


# Decisions of different tasks in the same few ms (an SMS result and a hangup, say)
# may interleave either way on the real clock: a decision may be matched among the
# next few replayed ones. A different decision still diverges (its data differs).
REORDER_WINDOW = 8


def first_divergence(
    call_id: str,
    recorded: tuple[EventRecord, ...],
    replayed: tuple[EventRecord, ...],
    *,
    cut_off: bool = False,
) -> Comparison:
    """The first recorded decision the replay did not make (or its first extra one).

    `cut_off`: the recording stops before the call ended (a crash): what the replay
    decided after its last event is not compared.
    """
    expected, pending = decisions(recorded), decisions(replayed)
    if cut_off:
        last_ms = recorded[-1].t_ms if recorded else 0
        pending = [e for e in pending if e.t_ms <= last_ms + TIME_TOLERANCE_MS]
    for index, want in enumerate(expected):
        hit = next((i for i, got in enumerate(pending[:REORDER_WINDOW]) if _same(want, got)), None)
        if hit is None:
            got = pending[0] if pending else None
            state = _state_before(recorded, want.seq)
            return Comparison(index, ReplayDivergence(call_id, want.seq, want, got, state))
        del pending[hit]
    if pending and not cut_off:
        extra = pending[0]
        state = _state_before(replayed, extra.seq)
        return Comparison(len(expected), ReplayDivergence(call_id, extra.seq, None, extra, state))
    return Comparison(len(expected), None)


def _state_before(events: tuple[EventRecord, ...], seq: int) -> str | None:
    """The conversation machine's state when event `seq` happened."""
    before = (s for s in state_changes(events) if s.seq < seq and s.machine == "conversation")
    return next((s.state for s in reversed(list(before))), None)


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
