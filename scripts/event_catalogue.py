"""Write what is generated from the event catalogue (`--check`: compare only): the
README's table of event kinds and `fsm_voice/eventlog/kind_names.py` (the `KindName`
type the writers' signatures use).

The table sits between two marker comments in README.md; everything else in the file
is left as it is. The kinds and their fields are declared once, in
fsm_voice/eventlog/catalogue_kinds*.py; tests/test_event_catalogue.py checks the
README is current. `--reference` prints the full table (kind, source, v, fields,
meaning) instead.

Usage: event_catalogue.py [--check | --reference]   (--check: exit 1 when out of date)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fsm_voice.eventlog.catalogue_docs import (
    KIND_NAMES_MODULE,
    render_kind_names,
    render_reference,
    replace_kinds_table,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
KIND_NAMES = ROOT / KIND_NAMES_MODULE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    group.add_argument("--reference", action="store_true", help="print every kind's fields")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    stale = []
    for path, render in ((README, replace_kinds_table), (KIND_NAMES, _kind_names)):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        current = render(text)
        if current != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(current, encoding="utf-8")
    if args.check and stale:
        print(f"stale: {', '.join(map(str, stale))}: run scripts/event_catalogue.py")
        return 1
    return 0


def _kind_names(_old: str) -> str:
    return render_kind_names()


if __name__ == "__main__":
    sys.exit(main())
