"""The safe expression language of `when:` conditions and `set: {x: {expr: ...}}`.

Expressions are Python syntax parsed with `ast` (mode "eval"), then evaluated by
walking a whitelist of node types; nothing is ever passed to `eval`, `exec` or
`compile`. Allowed: constants (str, int, float, bool, None), variable names, tuple and
list displays (for `in`), comparisons (== != < <= > >= in, not in), `and`/`or`/`not`,
`a if c else b`, + - * / // % on numbers, + on strings, unary minus, and the calls
`len(x)`, `int(x)`, `str(x)`, `lower(x)`. Everything else (attributes, subscripts,
other calls, lambdas, comprehensions, `**`) is rejected when the expression is
compiled, so a machine file with one fails `fsm-voice check`, not a live call.

Templates are prompt texts with `{variable}` fields; `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fsm_voice.errors import ConfigError

__all__ = ["Expr", "ExprError", "compile_expr", "render_template", "template_names"]


class ExprError(ConfigError):
    """An expression or template that does not parse, or cannot be evaluated."""


_MAX_TEXT = 2_000  # a condition longer than this is a program, not a condition
_MAX_STR = 10_000  # results are spoken or texted; keep them from growing without bound


def _to_int(x: object) -> int:
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        raise ExprError(f"int() of {type(x).__name__}")
    try:
        return int(str(x).strip()) if isinstance(x, str) else int(x)
    except ValueError:
        raise ExprError(f"int() of {x!r}: not a number") from None


def _to_len(x: object) -> int:
    if not isinstance(x, str | tuple | list):
        raise ExprError(f"len() of {type(x).__name__}")
    return len(x)


def _to_str(x: object) -> str:
    return "" if x is None else str(x)


def _lower(x: object) -> str:
    return _to_str(x).lower()


FUNCTIONS: Mapping[str, Callable[[object], object]] = {
    "len": _to_len,
    "int": _to_int,
    "str": _to_str,
    "lower": _lower,
}

# Any: the operand types are checked at run time (a TypeError becomes an ExprError).
_COMPARE: Mapping[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: operator.contains(b, a),
    ast.NotIn: lambda a, b: not operator.contains(b, a),
}

_ARITH: Mapping[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}

# What a rejected node is called in the error message.
_NAMES: Mapping[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Call: "calls",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Dict: "dict displays",
    ast.Set: "set displays",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment (:=)",
    ast.Starred: "starred expressions",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.Pow: "the ** operator",
    ast.BitAnd: "bitwise operators",
    ast.BitOr: "bitwise operators",
    ast.BitXor: "bitwise operators",
    ast.LShift: "bitwise operators",
    ast.RShift: "bitwise operators",
    ast.MatMult: "the @ operator",
    ast.Invert: "the ~ operator",
    ast.Is: "'is' (use ==)",
    ast.IsNot: "'is not' (use !=)",
}


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled expression: `names` are the variables it reads."""

    text: str
    names: frozenset[str]
    _tree: ast.expr

    def evaluate(self, variables: Mapping[str, object]) -> object:
        try:
            return _Eval(variables).visit(self._tree)
        except ExprError as e:
            raise ExprError(f"in {self.text!r}: {e}") from None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            raise ExprError(f"in {self.text!r}: {e}") from None


def compile_expr(text: str) -> Expr:
    """Parse `text` and check every node against the whitelist; raises ExprError."""
    tree = _parse(text)
    functions: set[int] = set()  # ids of the Name nodes that are called, not read
    names: set[str] = set()
    for node in ast.walk(tree):
        _check_node(node, text)
        if isinstance(node, ast.Call):
            functions.add(id(node.func))
        elif isinstance(node, ast.Name) and id(node) not in functions:
            names.add(node.id)
    return Expr(text, frozenset(names), tree)


def _parse(text: str) -> ast.expr:
    # The one place text becomes a tree: a machine's conditions are parsed here once,
    # when it is loaded (tests count the calls to prove it).
    if len(text) > _MAX_TEXT:
        raise ExprError(f"expression longer than {_MAX_TEXT} characters")
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ExprError(f"cannot parse {text!r}: {e.msg}") from None


def _check_node(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or len(node.args) != 1 or node.keywords:
            shown = ast.unparse(node)
            allowed = ", ".join(f"{f}(x)" for f in FUNCTIONS)
            raise ExprError(f"{text!r}: call {shown!r} not allowed (only {allowed})")
        return
    if isinstance(node, ast.Constant) and not isinstance(
        node.value, str | int | float | bool | type(None)
    ):
        raise ExprError(f"{text!r}: constant {node.value!r} not allowed")
    allowed_types = (
        ast.Constant,
        ast.Name,
        ast.Load,
        ast.Tuple,
        ast.List,
        ast.Compare,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.BinOp,
        ast.IfExp,
        *_COMPARE,
        *_ARITH,
    )
    if not isinstance(node, allowed_types):
        what = _NAMES.get(type(node), type(node).__name__)
        shown = f" ({ast.unparse(node)!r})" if isinstance(node, ast.expr) else ""
        raise ExprError(f"{text!r}: {what} not allowed{shown}")


class _Eval:
    def __init__(self, variables: Mapping[str, object]) -> None:
        self.variables = variables

    def visit(self, node: ast.expr) -> object:
        # Only node types accepted by _check_node reach here.
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.variables:
                raise ExprError(f"unknown variable {node.id!r}")
            return self.variables[node.id]
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self.visit(e) for e in node.elts)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.IfExp):
            return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](self.visit(node.args[0]))  # type: ignore[attr-defined]
        raise ExprError(f"{type(node).__name__} not allowed")  # unreachable after checking

    def _boolop(self, node: ast.BoolOp) -> object:
        value: object = None
        for operand in node.values:  # short-circuits like Python
            value = self.visit(operand)
            if isinstance(node.op, ast.And) != bool(value):
                return value
        return value

    def _unary(self, node: ast.UnaryOp) -> object:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not _number(value):
            raise ExprError(f"unary minus of {type(value).__name__}")
        assert isinstance(value, int | float)
        return -value if isinstance(node.op, ast.USub) else value

    def _compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            if isinstance(op, ast.In | ast.NotIn) and not isinstance(right, str | tuple):
                raise ExprError(f"'in' needs a string or a list, not {type(right).__name__}")
            if isinstance(op, ast.In | ast.NotIn) and isinstance(right, str):
                left = _to_str(left)
            if not bool(_COMPARE[type(op)](left, right)):
                return False
            left = right
        return True

    def _binop(self, node: ast.BinOp) -> object:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            if len(left) + len(right) > _MAX_STR:
                raise ExprError(f"string longer than {_MAX_STR} characters")
            return left + right
        # Numbers only: no "ab" * 10**9, no list arithmetic.
        if not (_number(left) and _number(right)):
            op = type(node.op).__name__.lower()
            raise ExprError(f"{op} of {type(left).__name__} and {type(right).__name__}")
        assert isinstance(left, int | float) and isinstance(right, int | float)
        return _ARITH[type(node.op)](left, right)


# --- templates ---

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def template_names(text: str) -> frozenset[str]:
    """The variables a template reads; raises ExprError for a malformed field."""
    return frozenset(name for name in _fields(text) if name)


def render_template(text: str, variables: Mapping[str, object]) -> str:
    """Fill `{name}` fields; None renders as an empty string."""
    out: list[str] = []
    pos = 0
    for m in _FIELD.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token in ("{{", "}}"):
            out.append(token[0])
            continue
        name = _field_name(m, text)
        if name not in variables:
            raise ExprError(f"template {text!r}: unknown variable {name!r}")
        out.append(_to_str(variables[name]))
    out.append(text[pos:])
    return "".join(out)


def _fields(text: str) -> list[str]:
    return [_field_name(m, text) for m in _FIELD.finditer(text) if m.group(0) not in ("{{", "}}")]


def _field_name(m: re.Match[str], text: str) -> str:
    name = m.group(1)
    if name is None:
        raise ExprError(f"template {text!r}: single {m.group(0)!r} (write {m.group(0) * 2})")
    name = name.strip()
    if not name.isidentifier():
        raise ExprError(f"template {text!r}: {{{name}}} is not a variable name")
    return name
