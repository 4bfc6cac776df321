"""`fsm-voice diagram MACHINE [--out FILE]`: a machine as a Mermaid state diagram.

The diagram is drawn even when the machine has semantic errors (an unknown target
shows up as a stray state), because seeing the graph is often how one finds them;
a file that does not parse at all is an error.
"""

from __future__ import annotations

from pathlib import Path

from fsm_voice.conversation.diagram import to_mermaid
from fsm_voice.conversation.loader import load_machine
from fsm_voice.shipped import resolve_machine

__all__ = ["diagram"]


def diagram(machine: Path, out: Path | None) -> int:
    text = to_mermaid(load_machine(resolve_machine(machine), check=False))
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        print(f"wrote {out}")
    return 0
