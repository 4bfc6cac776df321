"""The machines' decisions and moves: read alike from a recording and from its replay.

`decisions` are what replay compares; `state_change` reads a machine's move (as
upcast on reading). Both serve the recording's views (`replay.view_parser`) and
the comparison, which reads the replayed log the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.views import StateChange

__all__ = ["decisions", "is_decision", "state_change", "state_changes"]

# The decisions replay compares: every event of the two machines, and the runtime's
# requests that carry them out. Not the transport's `mark_sent`/`clear_sent`: they
# carry out requests that are compared, from the socket's own task, so on the real
# clock their interleaving with the next request is up to the scheduler.
_DECIDING_SOURCES = frozenset(("conversation", "call"))
_RUNTIME_DECISIONS = frozenset(
    ("mark_requested", "clear_requested", "hangup_requested", "agent_failed", "agent_cancelled")
)


def is_decision(e: EventRecord) -> bool:
    return e.source in _DECIDING_SOURCES or (e.source == "runtime" and e.kind in _RUNTIME_DECISIONS)


def decisions(events: Iterable[EventRecord]) -> list[EventRecord]:
    return [e for e in events if is_decision(e)]


def state_change(e: EventRecord) -> StateChange | None:
    """The machine move `e` logs: a `state_entered` (v2: its machine, `from`, `on`).

    Every read path upcasts (`eventlog.upcast`), so the older forms (the call's v1,
    the conversation's `previous`/`event`, the recogniser's `provider_state_entered`)
    arrive here as v2 already.
    """
    if e.kind != "state_entered":
        return None
    d = e.data
    provider = d.get("provider")
    return StateChange(
        e.seq,
        e.t_ms,
        str(d.get("machine") or e.source),
        _text(d.get("state")),
        _text(d.get("from")),
        _text(d.get("on")),
        _text(d.get("detail")),
        None if provider is None else str(provider),
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def state_changes(events: Iterable[EventRecord]) -> list[StateChange]:
    return [s for s in map(state_change, events) if s is not None]
