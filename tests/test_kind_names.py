"""`KindName`, the type of the writers' `kind` parameter, is generated from the catalogue
and must be current: a kind declared (or removed) there changes what mypy accepts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

from fsm_voice.eventlog.catalogue import catalogue
from fsm_voice.eventlog.catalogue_docs import KIND_NAMES_MODULE, render_kind_names
from fsm_voice.eventlog.kind_names import KindName

ROOT = Path(__file__).resolve().parent.parent


def test_the_generated_module_is_current() -> None:
    written = (ROOT / KIND_NAMES_MODULE).read_text(encoding="utf-8")
    assert written == render_kind_names(), "run scripts/event_catalogue.py"


def test_kind_name_holds_every_declared_kind_once() -> None:
    names = get_args(KindName)
    assert len(names) == len(set(names))
    assert set(names) == {declared.kind for declared in catalogue()}


def test_a_new_declaration_changes_the_module() -> None:
    # The check above can fail: one more declaration renders a different module.
    declared = catalogue()
    extra = [*declared, declared[0].__class__(**{**_fields(declared[0]), "kind": "zz_new"})]
    assert '"zz_new"' in render_kind_names(extra)
    assert render_kind_names(extra) != render_kind_names(declared)


def _fields(declared: object) -> dict[str, object]:
    return {name: getattr(declared, name) for name in declared.__slots__}  # type: ignore[attr-defined]


def _subclasses(base: type) -> list[type]:
    """Every subclass its module names (a slots dataclass leaves its first class behind)."""
    found = []
    for cls in base.__subclasses__():
        if getattr(sys.modules[cls.__module__], cls.__name__, None) is cls:
            found.append(cls)
        found += _subclasses(cls)
    return found


def test_every_logged_event_and_effect_class_names_a_declared_kind() -> None:
    # Generic writers log a class's kind (`effect.kind`, `event.trigger`): mypy sees
    # KindName there for call events and effects and conversation effects; the
    # conversation's events are logged under their kind too, checked here.
    from fsm_voice.call import effects as call_fx
    from fsm_voice.call import events as call_ev
    from fsm_voice.conversation import effects as conv_fx  # Note: logged under note_kind
    from fsm_voice.conversation import events as conv_ev
    from fsm_voice.conversation.runner import _LOGGED_ELSEWHERE
    from fsm_voice.eventlog.catalogue import declaration

    missing = []
    for cls in _subclasses(call_ev.CallEvent):
        if declaration(cls.source, cls.trigger) is None:
            missing.append(f"{cls.__name__}: {cls.source} {cls.trigger}")
    for cls in _subclasses(call_fx.Effect):
        if declaration("call", cls.kind) is None:
            missing.append(f"{cls.__name__}: call {cls.kind}")
    for cls in _subclasses(conv_fx.ConversationEffect):
        if cls is not conv_fx.Note and declaration("conversation", cls.kind) is None:
            missing.append(f"{cls.__name__}: conversation {cls.kind}")
    for cls in _subclasses(conv_ev.ConversationEvent):
        if cls not in _LOGGED_ELSEWHERE and declaration("conversation", cls.kind) is None:
            missing.append(f"{cls.__name__}: conversation {cls.kind}")
    assert not missing, missing
