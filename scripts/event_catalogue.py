"""Write the README's table of event kinds from the catalogue (`--check`: compare only).

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

from fsm_voice.eventlog.catalogue_docs import render_reference, replace_kinds_table

README = Path(__file__).resolve().parent.parent / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    group.add_argument("--reference", action="store_true", help="print every kind's fields")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    text = README.read_text(encoding="utf-8")
    current = replace_kinds_table(text)
    if args.check:
        if current != text:
            print("README.md's table of event kinds is stale: run scripts/event_catalogue.py")
            return 1
        return 0
    if current != text:
        README.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
