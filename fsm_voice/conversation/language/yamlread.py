"""Reading a YAML node tree (from `yaml.compose`) with line numbers and problems.

We read nodes rather than `yaml.safe_load` output for two reasons: every value keeps
its line, and we decide types ourselves. YAML 1.1 turns `yes`, `no`, `on` and `off`
into booleans, so `on:` (the handlers key) and a phrase list `[yes, no]` would be
mangled by safe_load; where we expect text we use the scalar exactly as written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fsm_voice.conversation.language.problems import Problem, Severity

__all__ = ["EVENT", "NAME", "Reader", "line_of"]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # states, events, variables
EVENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z|[0-9*#]+\Z")  # also DTMF strings: `1: billing`

_TAG = "tag:yaml.org,2002:"
_KINDS = {MappingNode: "a mapping", SequenceNode: "a list", ScalarNode: "a value"}


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: Node) -> str:
    if isinstance(node, ScalarNode):
        if node.tag == _TAG + "null":
            return "nothing"
        kind = node.tag.removeprefix(_TAG)
        return f"{kind} {node.value!r}" if kind != "str" else repr(node.value)
    return _KINDS.get(type(node), type(node).__name__)


class Reader:
    """Collects problems while converting nodes; each method returns None on a problem."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.state: str | None = None  # the state being read, named in every problem

    def problem(self, node: Node | int, message: str, severity: Severity = "error") -> None:
        line = node if isinstance(node, int) else line_of(node)
        self.problems.append(Problem(self.file, line, self.state, message, severity))

    @contextmanager
    def in_state(self, name: str | None) -> Iterator[None]:
        outer, self.state = self.state, name
        try:
            yield
        finally:
            self.state = outer

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _TAG + "null"

    def mapping(
        self, node: Node, what: str, keys: Collection[str] | None = None
    ) -> dict[str, tuple[Node, Node]] | None:
        """{key: (key node, value node)} in file order; unknown and duplicate keys are
        problems (and dropped). `keys=None` accepts any key."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping, not {_describe(node)}")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, f"{what}: a key must be a name, not {_describe(key_node)}")
                continue
            key = str(key_node.value)
            if key in out:
                first = line_of(out[key][0])
                self.problem(key_node, f"{what}: duplicate key {key!r} (first on line {first})")
                continue
            if keys is not None and key not in keys:
                self.problem(key_node, f"{what}: unknown key {key!r}{suggest(key, keys)}")
                continue
            out[key] = (key_node, value_node)
        return out

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, f"{what} must be a list, not {_describe(node)}")
            return None
        return list(node.value)

    def text(self, node: Node, what: str, *, empty_ok: bool = False) -> str | None:
        """Any scalar, as written (so `yes` stays "yes" and `+1555` stays "+1555")."""
        if not isinstance(node, ScalarNode) or self.is_null(node):
            self.problem(node, f"{what} must be text, not {_describe(node)}")
            return None
        value = str(node.value)
        if not value.strip() and not empty_ok:
            self.problem(node, f"{what} must not be empty")
            return None
        return value

    def name(self, node: Node, what: str) -> str | None:
        value = self.text(node, what)
        if value is not None and not NAME.match(value):
            self.problem(node, f"{what} {value!r} must be a name (letters, digits, _)")
            return None
        return value

    def texts(self, node: Node, what: str) -> tuple[str, ...] | None:
        """A single text or a list of texts."""
        if isinstance(node, ScalarNode):
            one = self.text(node, what)
            return None if one is None else (one,)
        items = self.sequence(node, what)
        if items is None:
            return None
        values = [self.text(item, f"{what} item") for item in items]
        return None if None in values else tuple(v for v in values if v is not None)

    def integer(self, node: Node, what: str, minimum: int = 0) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != _TAG + "int":
            self.problem(node, f"{what} must be a whole number, not {_describe(node)}")
            return None
        value = self.literal(node)
        assert isinstance(value, int)
        if value < minimum:
            self.problem(node, f"{what} must be at least {minimum}, not {value}")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _TAG + "bool":
            self.problem(node, f"{what} must be true or false, not {_describe(node)}")
            return None
        return bool(self.literal(node))

    def literal(self, node: Node) -> object:
        """A scalar's YAML value (int, float, bool, None, str); other tags stay text."""
        if isinstance(node, ScalarNode) and node.tag.removeprefix(_TAG) in (
            "int",
            "float",
            "bool",
            "null",
            "str",
        ):
            return yaml.constructor.SafeConstructor().construct_object(node)
        if isinstance(node, ScalarNode):
            return str(node.value)  # dates, timestamps: as written
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
