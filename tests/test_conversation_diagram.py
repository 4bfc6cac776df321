"""`to_mermaid` and `fsm-voice diagram`: every state and every edge is drawn."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from fsm_voice.cli import main
from fsm_voice.conversation.language.diagram import ANY, to_mermaid
from fsm_voice.conversation.language.loader import load_machine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "machines").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_diagram_has_every_state_and_edge(path: Path) -> None:
    spec = load_machine(path)
    lines = to_mermaid(spec).splitlines()
    assert lines[:2] == ["stateDiagram-v2", f"    [*] --> {spec.initial}"]
    edges = [line.strip().split(" : ")[0] for line in lines if " --> " in line]
    drawn = {name for edge in edges for name in edge.split(" --> ")}
    assert set(spec.states) <= drawn
    expected = [
        f"{s.name} --> {h.goto or s.name}" for s in spec.states.values() for h in s.handlers
    ]
    expected += [f"{ANY} --> {h.goto}" for h in spec.global_handlers if h.goto]
    expected += [f"{ANY} --> {spec.fallback.goto}"] if spec.fallback else []
    expected += [f"{s.name} --> [*]" for s in spec.states.values() if s.final]
    assert sorted(edges) == sorted([f"[*] --> {spec.initial}", *expected])


def test_labels_show_event_condition_and_count_in_mermaid_safe_text(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        textwrap.dedent(
            """
            initial: a
            states:
              a:
                actions: [{gather: {num_digits: 1}}]
                on:
                  "#": b
                  digits: {when: "int(digits) >= 2 and digits != '1;#' or 1 < 0", goto: b}
                  noinput: [{count: 1, reprompt: true}, {count: 3, goto: b}]
              b: {final: true}
            """
        )
    )
    text = to_mermaid(load_machine(path, check=False))
    assert "    a --> b : ＃\n" in text
    assert "    a --> b : digits [int(digits) ≥ 2 and digits ≠ '1,＃' or 1 ＜ 0]\n" in text
    assert "    a --> a : noinput reprompt\n" in text
    assert "    a --> b : noinput (n≥3)\n" in text
    assert "    b --> [*]\n" in text
    # Nothing after the label's ' : ' may end the statement or open an entity.
    for line in text.splitlines():
        assert not re.search(r" : .*[;#<>]", line), line


def test_diagram_command_prints_or_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = ROOT / "machines" / "appointment.yaml"
    assert main(["diagram", str(machine)]) == 0
    printed = capsys.readouterr().out
    assert printed == to_mermaid(load_machine(machine))
    out = tmp_path / "appointment.mmd"
    assert main(["diagram", str(machine), "--out", str(out)]) == 0
    assert out.read_text() == printed


def test_diagram_of_a_file_that_does_not_load_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("initial: a\nstates: [a]\n")
    assert main(["diagram", str(path)]) == 1
    assert f"{path}:2: states must be a mapping, not a list" in capsys.readouterr().err
