"""Check that requirements.lock pins everything pyproject.toml asks for (run by `make setup`).

pyproject.toml keeps version ranges for people who install the library; the lock pins
one version of every package (with hashes) that `make setup` installs, for all the
extras the Makefile installs and for the build backend (`make setup` installs the
project itself without build isolation). A range edited in pyproject.toml without
`make lock` would leave the lock behind silently: this names what is missing or out
of range instead.

Usage: check_lock.py LOCK PYPROJECT EXTRA...   (exit 1 and a list of problems, or 0)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: str) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in lock.splitlines():
        match = _PIN.match(line)
        if match:
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def wanted(pyproject: dict[str, object], extras: list[str]) -> list[Requirement]:
    project = pyproject["project"]
    build = pyproject["build-system"]
    assert isinstance(project, dict) and isinstance(build, dict)
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"pyproject.toml has no extra {', '.join(unknown)}")
    texts = [*project.get("dependencies", []), *build["requires"]]
    for extra in extras:
        texts += optional[extra]
    return [Requirement(text) for text in texts]


def problems(pinned: dict[str, Version], requirements: list[Requirement]) -> list[str]:
    found = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # not for this Python or platform
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            found.append(f"{req} is not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            found.append(f"{req} but the lock pins {version}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    lock, pyproject, *extras = argv
    with open(pyproject, "rb") as f:
        spec = tomllib.load(f)
    found = problems(pins(Path(lock).read_text()), wanted(spec, extras))
    for problem in found:
        print(f"{lock}: {problem}", file=sys.stderr)
    if found:
        print(f"{pyproject} changed since {lock} was made: run `make lock`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
