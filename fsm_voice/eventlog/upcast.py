"""Upcasters: an event written by an older fsm_voice, read as the catalogue declares it now.

The catalogue (`catalogue_kinds*.py`) declares each kind's current payload version `v`.
When a payload changes, its declaration gets the next `v`, and an upcaster registered
here under the old (source, kind, v) turns the old event into the next form: it may
change the payload, the kind (a renamed kind) and must raise `v`. `upcast` chains them
until the event is current.

Events are upcast when they are read, never migrated where they are stored: an old
SQLite file, an exported fixture and the corpus under `replays/` stay byte for byte
as they were written (see docs/design.md, "Versions and upcasters"). Every read path
that hands events to Python code (the logs' `events`, fixture reading, replay's
recordings) goes through `upcast`; writes always use the current version
(`current_v`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.catalogue import declaration
from fsm_voice.eventlog.records import EventRecord

__all__ = [
    "UPCASTERS",
    "UpcastError",
    "Upcaster",
    "current_v",
    "stored_kinds",
    "upcast",
    "upcast_filtered",
]

# (kind, data) of an old event → (kind, data, v) of the next form.
Upcaster = Callable[[str, dict[str, Any]], tuple[str, dict[str, Any], int]]

# A chain longer than this is a registry bug (an upcaster that does not raise v).
_MAX_STEPS: Final = 16


class UpcastError(EventLogError):
    """An event of an older version than its kind's current one, with no upcaster."""


def current_v(source: str, kind: str) -> int:
    """The version a writer stamps on (source, kind): its declaration's, 1 if undeclared."""
    declared = declaration(source, kind)
    return 1 if declared is None else declared.v


# --- the upcasters, by the (source, kind, v) they read ---


def _call_state_entered_v1(kind: str, d: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    # v1: {state, from, on}; v2 names the machine (one naming for every machine).
    return "state_entered", {"machine": "call", **d}, 2


def _conversation_state_entered_v1(kind: str, d: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    # v1: {state, previous, event}; v2 spells them as the call machine does.
    rest = {k: v for k, v in d.items() if k not in ("previous", "event")}
    moved = {"from": d.get("previous"), "on": d.get("event")}
    return "state_entered", {"machine": "conversation", **rest, **moved}, 2


def _stt_provider_state_entered_v1(kind: str, d: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    # v1 `provider_state_entered` {state, detail, provider?}: the provider reported its
    # new state only, so the state it left and the event that moved it are unknown.
    return "state_entered", {"machine": "stt", "from": None, "on": None, **d}, 2


UPCASTERS: Final[Mapping[tuple[str, str, int], Upcaster]] = {
    ("call", "state_entered", 1): _call_state_entered_v1,
    ("conversation", "state_entered", 1): _conversation_state_entered_v1,
    ("stt", "provider_state_entered", 1): _stt_provider_state_entered_v1,
}

# Kinds renamed by an upcaster: the stored kinds that read back as each current one.
_RENAMED: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("stt", "state_entered"): ("provider_state_entered",),
}


def stored_kinds(kind: str, source: str | None = None) -> tuple[str, ...]:
    """The kinds a stored row may have to read back as `kind` (from `source`, or any):
    `kind` itself and the old names an upcaster renames to it. A query by kind selects
    these, upcasts, then keeps the rows whose upcast kind is `kind`."""
    old = {
        name
        for (src, current), names in _RENAMED.items()
        if current == kind and (source is None or src == source)
        for name in names
    }
    return (kind, *sorted(old))


def upcast(event: EventRecord) -> EventRecord:
    """`event` in its kind's current form (itself when it is current already).

    An undeclared kind, or a version newer than the catalogue's, is returned as it
    is (`payload_problems` reports it). An older version with no upcaster raises
    `UpcastError`, naming the source, kind and version.
    """
    declared = declaration(event.source, event.kind)
    if declared is not None and declared.v == event.v:
        return event  # the common case: one look-up
    kind, data, v = event.kind, event.data, event.v
    for _ in range(_MAX_STEPS):
        step = UPCASTERS.get((event.source, kind, v))
        if step is None:
            declared = declaration(event.source, kind)
            if declared is not None and v < declared.v:
                raise UpcastError(
                    f"event {event.call_id!r} seq {event.seq}: {event.source} {kind!r} v{v}"
                    f" has no upcaster to v{declared.v} (register one in"
                    " fsm_voice/eventlog/upcast.py)"
                )
            break
        kind, data, next_v = step(kind, dict(data))
        if next_v <= v:
            raise UpcastError(f"{event.source} {kind!r}: the upcaster of v{v} did not raise v")
        v = next_v
    else:
        raise UpcastError(f"{event.source} {event.kind!r} v{event.v}: upcasters loop")
    if (kind, data, v) == (event.kind, event.data, event.v):
        return event
    return replace(event, kind=kind, data=data, v=v)


def upcast_filtered(
    events: Iterable[EventRecord], *, kind: str | None, source: str | None
) -> list[EventRecord]:
    """`events` (selected by `stored_kinds`) upcast, keeping those of `kind`/`source`."""
    found = (upcast(e) for e in events)
    return [
        e
        for e in found
        if (kind is None or e.kind == kind) and (source is None or e.source == source)
    ]
