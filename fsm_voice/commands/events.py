"""`fsm-voice events CALL_ID`: one call's timeline."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from fsm_voice.commands.output import Format, console, print_json
from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.timeline import describe, seconds, timeline_json

# Colours by source, so the conversation's decisions stand out from transport noise.
_STYLE = {"conversation": "bold", "stt": "magenta", "tts": "green", "transport": "dim"}


def events(
    dbs: Sequence[str], call_id: str, kind: str | None, source: str | None, fmt: Format
) -> int:
    with LogSet(dbs) as logs:
        call_id = logs.resolve(call_id)
        records = logs.events(call_id, kind=kind, source=source)
    if fmt != "table":
        print_json((timeline_json(e) for e in records), fmt)
        return 0
    table = Table(title=f"{call_id}: {len(records)} event(s)", title_justify="left", box=None)
    table.add_column("t (s)", justify="right", no_wrap=True)
    table.add_column("seq", justify="right", style="dim", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("details", overflow="fold")
    for e in records:
        style = _STYLE.get(e.source, "")
        details = escape(describe(e))
        table.add_row(seconds(e.t_ms), str(e.seq), e.source, e.kind, details, style=style)
    console().print(table)
    return 0
