"""The machines and caller scripts that ship with fsm_voice, found without a clone.

The wheel carries the repository's `machines/` and `callers/` as package data under
`fsm_voice/_data/` (pyproject's force-include; the repo folders stay where the tests,
docs and README point). A dev or editable install has no `_data`: there the folders of
the checkout are the shipped ones.

A machine or caller argument is a path or a name: an existing file wins (absolute or
relative to the cwd), so a user's own `machines/appointment.yaml` is never shadowed;
otherwise a shipped file of that name (`appointment`, `appointment.yaml`, or the docs'
`machines/appointment.yaml` run from outside a clone). A missing path stays a path, for
the loader's "cannot read"; a bare name matching nothing lists the shipped names.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from fsm_voice.errors import ConfigError

__all__ = [
    "Kind",
    "resolve_caller",
    "resolve_machine",
    "shipped_folder",
    "shipped_names",
]

Kind = Literal["machines", "callers"]
_SUFFIXES = (".yaml", ".yml")


def shipped_folder(kind: Kind) -> Path | None:
    """Where the shipped files of `kind` are: the wheel's package data, else the
    checkout's folder (an editable install runs from a clone)."""
    package = Path(str(files("fsm_voice")))
    data = package / "_data" / kind
    if data.is_dir():
        return data
    checkout = package.parent
    # pyproject.toml beside the package: a clone, not some site-packages/machines folder
    if (checkout / "pyproject.toml").is_file() and (checkout / kind).is_dir():
        return checkout / kind
    return None


def shipped_names(kind: Kind) -> list[str]:
    folder = shipped_folder(kind)
    if folder is None:
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in _SUFFIXES)


def resolve_machine(argument: str | Path) -> Path:
    """The machine file for `argument` (a path, or a shipped machine's name)."""
    return _resolve("machines", argument)


def resolve_caller(argument: str | Path) -> Path:
    """The caller script for `argument` (a path, or a shipped caller script's name)."""
    return _resolve("callers", argument)


def _resolve(kind: Kind, argument: str | Path) -> Path:
    path = Path(argument)
    if path.exists():
        return path
    name = _shipped_name(kind, path)
    folder = shipped_folder(kind)
    if name is not None and folder is not None:
        for suffix in _SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    if path.suffix or len(path.parts) > 1:
        return path  # a file that is not there: the loader says so, naming it
    what = "machine" if kind == "machines" else "caller script"
    shipped = ", ".join(shipped_names(kind)) or "none"
    raise ConfigError(
        f"no {what} file {str(argument)!r} and no shipped one of that name (shipped: {shipped})"
    )


def _shipped_name(kind: Kind, path: Path) -> str | None:
    """The shipped name `path` may mean: a bare name, or `<kind>/<name>.yaml` as the
    docs write it; any other missing path is only a missing file."""
    parts = path.parts
    if len(parts) == 2 and parts[0] == kind and path.suffix in _SUFFIXES:
        return path.stem
    if len(parts) == 1:
        return path.stem if path.suffix in _SUFFIXES else path.name
    return None
