"""Problems found in a machine file, each naming its file, line and state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fsm_voice.errors import ConfigError

__all__ = ["MachineError", "Problem", "Severity"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int  # 1-based
    state: str | None  # None: outside any state (top level, global handlers)
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"state {self.state!r}: " if self.state is not None else ""
        kind = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {kind}{where}{self.message}"


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """File order, so the output reads top to bottom; duplicates dropped."""
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.severity, p.message))


class MachineError(ConfigError):
    """A machine file with errors; `problems` holds all of them (and any warnings)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sort_problems(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__("\n".join(str(p) for p in errors or self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]
