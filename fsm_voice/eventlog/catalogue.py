"""The catalogue of event kinds: every kind the log may hold, declared once.

Each `EventKind` says who logs it (its source, or sources when several layers log the
same fact the same way), its payload fields (name → type, required or not), its
schema version `v` and what it means. A kind whose payload differs by source
(`state_entered`) has one declaration per source. The declarations live in
`catalogue_kinds` (runtime, call, transport), `catalogue_kinds_conversation` and
`catalogue_kinds_providers` (STT, TTS); this module holds the model, the look-up and
the checks.

The logs refuse a (source, kind) the catalogue does not know (see
`MemoryEventLog` and `SqliteEventLog`):

- The SQLite log, which is what `serve`, `call` and `demo` write to, treats it as
  any other row it cannot store: the row is skipped and the error is kept in the
  call's `FailedWrites`, told by that call's next `flush`. The runtime's last flush
  logs it as `runtime` `log_write_failed` and the call ends as it would have: a call
  never dies because a kind is missing here.
- The in-memory log (tests, replay, `fsm_voice.testing`) raises
  `UnknownEventKindError` at `append`, so a test that logs an undeclared kind fails
  where it is logged.

Both take `kinds=` (a `KindCheck`: "raise", "refuse" or "off") to choose otherwise;
"off" is for storage tests that write made-up rows.

Payload fields are checked by `payload_problems` in tests (the corpus of recordings),
not on every write: the hot path only looks up the kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.records import SOURCES, EventRecord, Source

__all__ = [
    "EventKind",
    "KindCheck",
    "PayloadField",
    "UnknownEventKindError",
    "catalogue",
    "check_kind",
    "declaration",
    "payload_problems",
    "unknown_kind",
]

# The JSON types a payload field may hold, by the name used in declarations.
_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),  # JSON does not keep 1.0 apart from 1
    "bool": (bool,),
    "list": (list, tuple),  # a tuple is written as a JSON list
    "dict": (dict,),
    "None": (type(None),),
}


# What a log does with an event of an undeclared (source, kind): "raise" at `append`,
# "refuse" it as a failed write (told by the call's next flush), or "off": store any
# kind (storage tests of made-up rows, tools that copy logs written before a kind
# was declared).
KindCheck = Literal["raise", "refuse", "off"]


class UnknownEventKindError(EventLogError):
    """An event whose (source, kind) is not declared in the catalogue."""


@dataclass(frozen=True, slots=True)
class PayloadField:
    """One payload field: `types` are names from `_TYPES`; `required`: always present."""

    name: str
    types: tuple[str, ...]
    required: bool

    @classmethod
    def parse(cls, name: str, spec: str) -> PayloadField:
        """`"int"`, `"str|None"` (may be null), `"float?"` (may be absent)."""
        required = not spec.endswith("?")
        types = tuple(spec.rstrip("?").split("|"))
        unknown = [t for t in types if t not in _TYPES]
        if unknown:
            raise ValueError(f"field {name!r}: unknown type(s) {unknown} in {spec!r}")
        return cls(name, types, required)

    @property
    def spec(self) -> str:
        return "|".join(self.types) + ("" if self.required else "?")

    def accepts(self, value: object) -> bool:
        # bool is an int in Python: an "int" field must not take True.
        if isinstance(value, bool):
            return "bool" in self.types
        return any(isinstance(value, _TYPES[t]) for t in self.types)


@dataclass(frozen=True, slots=True)
class EventKind:
    """One kind as logged by `sources`; `fields` in declaration order."""

    kind: str
    sources: tuple[Source, ...]
    meaning: str
    fields: tuple[PayloadField, ...] = ()
    v: int = 1
    open_payload: bool = False  # fields beyond `fields` are allowed (e.g. a limit's value)

    def field(self, name: str) -> PayloadField | None:
        return next((f for f in self.fields if f.name == name), None)


def kind(
    name: str,
    sources: Source | tuple[Source, ...],
    meaning: str,
    /,
    *,
    v: int = 1,
    open_payload: bool = False,
    **fields: str,
) -> EventKind:
    """A declaration: `kind("mark_sent", "transport", "…", mark_id="int", name="str")`.

    A field named like a Python keyword (`from`) is written with a trailing `_`."""
    parsed = tuple(PayloadField.parse(n.removesuffix("_"), s) for n, s in fields.items())
    sources = sources if isinstance(sources, tuple) else (sources,)
    return EventKind(name, sources, meaning, parsed, v, open_payload)


def _index(kinds: Iterable[EventKind]) -> dict[tuple[str, str], EventKind]:
    index: dict[tuple[str, str], EventKind] = {}
    for declared in kinds:
        for source in declared.sources:
            if source not in SOURCES:
                raise ValueError(f"{declared.kind}: unknown source {source!r}")
            key = (source, declared.kind)
            if key in index:
                raise ValueError(f"{source} {declared.kind} is declared twice")
            index[key] = declared
    return index


def _build() -> tuple[tuple[EventKind, ...], dict[tuple[str, str], EventKind]]:
    # Imported here: the declaration modules use `kind` from this one.
    from fsm_voice.eventlog.catalogue_kinds import KINDS
    from fsm_voice.eventlog.catalogue_kinds_conversation import CONVERSATION_KINDS
    from fsm_voice.eventlog.catalogue_kinds_providers import PROVIDER_KINDS

    kinds = (*KINDS, *CONVERSATION_KINDS, *PROVIDER_KINDS)
    return kinds, _index(kinds)


_CATALOGUE: tuple[tuple[EventKind, ...], dict[tuple[str, str], EventKind]] | None = None


def _catalogue() -> tuple[tuple[EventKind, ...], dict[tuple[str, str], EventKind]]:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = _build()
    return _CATALOGUE


def catalogue() -> tuple[EventKind, ...]:
    """Every declaration, in the order declared (by source, then as a call goes)."""
    return _catalogue()[0]


def declaration(source: str, kind: str) -> EventKind | None:
    """The declaration of `kind` as logged by `source`, or None if there is none."""
    return _catalogue()[1].get((source, kind))


def check_kind(source: str, kind: str) -> None:
    """Raise `UnknownEventKindError` unless `source` may log `kind`."""
    error = unknown_kind(source, kind)
    if error is not None:
        raise error


def unknown_kind(source: str, kind: str) -> UnknownEventKindError | None:
    """The error for an undeclared (source, kind), or None when it is declared: the
    logs' check on every `append`, so the declared case is one dictionary look-up."""
    if (source, kind) in _catalogue()[1]:
        return None
    others = sorted(s for s, k in _catalogue()[1] if k == kind)
    hint = f" (declared for {', '.join(others)})" if others else ""
    return UnknownEventKindError(
        f"event kind {kind!r} from {source!r} is not in the catalogue{hint}:"
        " declare it in fsm_voice/eventlog/catalogue_kinds*.py"
    )


def payload_problems(event: EventRecord) -> list[str]:
    """What in `event` does not match its declaration (empty: it matches)."""
    declared = declaration(event.source, event.kind)
    if declared is None:
        return [f"{event.source} {event.kind}: not in the catalogue"]
    where = f"{event.source} {event.kind}"
    problems: list[str] = []
    if event.v != declared.v:
        problems.append(f"{where}: v {event.v}, declared {declared.v}")
    data: dict[str, Any] = event.data
    for f in declared.fields:
        if f.name not in data:
            if f.required:
                problems.append(f"{where}: required field {f.name!r} is missing")
        elif not f.accepts(data[f.name]):
            got = type(data[f.name]).__name__
            problems.append(f"{where}: field {f.name!r} is {got}, declared {f.spec}")
    if not declared.open_payload:
        extra = sorted(data.keys() - {f.name for f in declared.fields})
        if extra:
            problems.append(f"{where}: undeclared field(s) {extra}")
    return problems
