"""One place runs machines: only `fsm_voice/driver.py` fires a machine.

The event → machine → effects loop (inbox, no re-entry, logged moves, effects to an
executor) is `MachineDriver`; everything else feeds it. An AST scan of the package
finds every `.fire(` / `.fire_with_transitions(` call (and the conversation machine's
`machine.handle(`) outside the driver.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fsm_voice"
DRIVER = "driver.py"
FIRING = ("fire", "fire_with_transitions")
# The conversation machine's own entry point, under `fire`: called on a `...machine`
# (the runner's `self.machine.handle(event)`), it would bypass the driver too.
HANDLING = "handle"

# A typed machine's own entry point delegating to its `PureMachine` table: the
# machine itself, not a loop around it.
MACHINES_DELEGATING = {
    "call/machine.py": "CallMachine.fire(event) is PureMachine.fire(event.trigger, event)",
    "providers/machine.py": "ProviderMachine.fire(event) is PureMachine.fire(trigger, event)",
}


def firing_calls(root: Path = PACKAGE) -> Counter[str]:
    """How many `.fire(`/`.fire_with_transitions(` calls each module under `root` makes."""
    found: Counter[str] = Counter()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _runs_a_machine(node.func):
                found[path.relative_to(root).as_posix()] += 1
    return found


def _runs_a_machine(func: ast.expr) -> bool:
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr in FIRING:
        return True
    return func.attr == HANDLING and ast.unparse(func.value).lower().endswith("machine")


def test_only_the_driver_fires_machines() -> None:
    allowed = {DRIVER, *MACHINES_DELEGATING}
    outside = sorted(module for module in firing_calls() if module not in allowed)
    assert outside == [], f"run these machines through fsm_voice.driver.MachineDriver: {outside}"


def test_every_exception_is_still_needed() -> None:
    """An exception that no longer fires anything must leave the list (or a file that
    slipped back to firing by hand would pass unseen)."""
    firing = firing_calls()
    stale = sorted(m for m in MACHINES_DELEGATING if m not in firing)
    assert stale == [], f"no longer fire a machine, remove from the exceptions: {stale}"
    assert firing[DRIVER] == 1  # the one place


def test_the_scan_finds_firing_by_hand(tmp_path: Path) -> None:
    (tmp_path / "adapter.py").write_text(
        "def go(self):\n    self.machine.fire(1)\n    m.fire_with_transitions('x')\n"
        "    self.machine.handle(event)\n    request.handle()\n"  # the last is not a machine
    )
    (tmp_path / "quiet.py").write_text("def fire(x):\n    return fire(x)\n")  # not a method
    assert firing_calls(tmp_path) == {"adapter.py": 3}
