"""How the query commands print: a rich table in a terminal, `--json` or `--nl`.

As in sqlite-utils: `--json` is one JSON array, `--nl` one JSON object per line
(for `jq` and pipes). Piped output gets a wide console so tables are not cut to 80
columns when they go to a file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, Literal

from rich.console import Console

Format = Literal["table", "json", "nl"]


def output_format(json_flag: bool, nl_flag: bool) -> Format:
    return "json" if json_flag else "nl" if nl_flag else "table"


def console() -> Console:
    wide = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, width=wide, highlight=False, soft_wrap=False)


def print_json(rows: Iterable[dict[str, Any]], fmt: Format) -> None:
    """`rows` as a JSON array (`json`) or JSON lines (`nl`)."""
    if fmt == "nl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, sort_keys=True))
    else:
        print(json.dumps(list(rows), ensure_ascii=False, sort_keys=True, indent=2))
