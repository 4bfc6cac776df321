"""`KindName`, the type of the writers' `kind` parameter, is generated from the catalogue
and must be current: a kind declared (or removed) there changes what mypy accepts."""

from __future__ import annotations

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
