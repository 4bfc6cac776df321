"""Reading the actions of a state (and of a handler) from YAML nodes.

An action is a one-key mapping (`- say: "Hello"`) or, for actions that need no
arguments, a bare name (`- hangup`, `- gather`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fsm_voice.conversation.language.expr import Expr, ExprError, compile_expr, template_names
from fsm_voice.conversation.language.spec import (
    BUILTIN_EVENTS,
    Action,
    Gather,
    Hangup,
    Hook,
    Intent,
    Listen,
    Play,
    Prompt,
    Say,
    Set,
    Sms,
    Source,
    StartTimer,
    Transfer,
)
from fsm_voice.conversation.language.yamlread import NAME, Reader, line_of, suggest

__all__ = ["ACTION_NAMES", "read_action", "read_actions"]

_HOOK_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")
_DTMF_KEYS = "0123456789*#"
DEFAULT_HOOK_TIMEOUT_MS = 5000
DEFAULT_INTER_DIGIT_TIMEOUT_MS = 3000


def read_actions(r: Reader, node: Node, what: str = "actions") -> tuple[Action, ...]:
    items = r.sequence(node, what)
    if items is None:
        return ()
    actions = [_read_item(r, item) for item in items]
    return tuple(a for a in actions if a is not None)


def _read_item(r: Reader, node: Node) -> Action | None:
    if isinstance(node, ScalarNode) and not r.is_null(node):
        name = str(node.value)
        if name in ("hangup", "gather"):
            return read_action(r, name, None, node)
        hint = f"; write '- {name}: ...'" if name in ACTION_NAMES else suggest(name, ACTION_NAMES)
        r.problem(node, f"an action must be a mapping like '- say: ...', not {name!r}{hint}")
        return None
    fields = r.mapping(node, "action")
    if fields is None:
        return None
    if len(fields) != 1:
        names = ", ".join(fields)
        r.problem(node, f"an action has one key, not {len(fields)} ({names}): start each with '-'")
        return None
    ((name, (key_node, value)),) = fields.items()
    if name not in ACTION_NAMES:
        r.problem(key_node, f"unknown action {name!r}{suggest(name, ACTION_NAMES)}")
        return None
    return read_action(r, name, value, key_node)


def read_action(r: Reader, name: str, value: Node | None, at: Node) -> Action | None:
    """`value` None: the bare form (`- hangup`)."""
    if value is not None and r.is_null(value) and name in ("hangup", "gather"):
        value = None
    if value is None and name not in ("hangup", "gather"):
        r.problem(at, f"{name} needs a value")
        return None
    src = Source(r.file, line_of(at if value is None else value))
    return ACTION_NAMES[name](r, value, src)


def _say(r: Reader, node: Node | None, src: Source) -> Say | None:
    assert node is not None
    items = [node] if isinstance(node, ScalarNode) else r.sequence(node, "say")
    if items is None:
        return None
    prompts: list[Prompt] = []
    for item in items:
        if isinstance(item, ScalarNode):
            # A list is an escalation: a plain text is said on the attempt after the
            # previous prompt's (the runtime says the one prompt with the highest count).
            text = r.text(item, "say")
            count: int | None = prompts[-1].count + 1 if prompts else 1
        else:
            fields = r.mapping(item, "a prompt", ("text", "count"))
            if fields is None:
                continue
            if "text" not in fields:
                r.problem(item, "a prompt needs 'text'")
                continue
            text = r.text(fields["text"][1], "prompt text")
            count = r.integer(fields["count"][1], "count", 1) if "count" in fields else 1
        if text is not None and count is not None and _template_ok(r, item, text):
            prompts.append(Prompt(text, count))
    if not prompts:
        return None
    counts = [p.count for p in prompts]
    if len(set(counts)) != len(counts):
        r.problem(node, "two prompts with the same count: only the first is ever said", "warning")
    return Say(tuple(prompts), src)


def _template_ok(r: Reader, node: Node, text: str) -> bool:
    try:
        template_names(text)
    except ExprError as e:
        r.problem(node, str(e))
        return False
    return True


def _play(r: Reader, node: Node | None, src: Source) -> Play | None:
    assert node is not None
    path = r.text(node, "play")
    return None if path is None else Play(path, src)


def _listen(r: Reader, node: Node | None, src: Source) -> Listen | None:
    assert node is not None
    fields = r.mapping(node, "listen", ("intents", "hints", "timeout_ms"))
    if fields is None:
        return None
    if "intents" not in fields:
        r.problem(node, "listen needs 'intents'")
        return None
    intents_node = fields["intents"][1]
    intent_fields = r.mapping(intents_node, "intents") or {}
    intents = [_intent(r, name, k, v) for name, (k, v) in intent_fields.items()]
    if not intent_fields and isinstance(intents_node, MappingNode):
        r.problem(intents_node, "listen needs at least one intent")
    hints = r.texts(fields["hints"][1], "hints") if "hints" in fields else ()
    timeout = _optional_int(r, fields, "timeout_ms", 1)
    if None in intents or hints is None or timeout is False:
        return None
    return Listen(
        tuple(i for i in intents if i is not None),
        hints,
        None if timeout is True else timeout,
        src,
    )


def _optional_int(
    r: Reader, fields: dict[str, tuple[Node, Node]], key: str, minimum: int
) -> int | bool:
    """The value, True when absent, False on a problem (so 0 is not confused with absent)."""
    if key not in fields:
        return True
    value = r.integer(fields[key][1], key, minimum)
    return False if value is None else value


def _intent(r: Reader, name: str, key: Node, node: Node) -> Intent | None:
    if not NAME.match(name) or name in BUILTIN_EVENTS:
        why = "is a built-in event" if name in BUILTIN_EVENTS else "must be a name"
        r.problem(key, f"intent {name!r} {why}")
        return None
    src = Source(r.file, line_of(key))
    if isinstance(node, SequenceNode):
        phrases = r.texts(node, f"intent {name!r} phrases")
        return None if phrases is None else Intent(name, phrases, source=src)
    if isinstance(node, ScalarNode):
        phrase = r.text(node, f"intent {name!r}")
        return None if phrase is None else Intent(name, (phrase,), source=src)
    fields = r.mapping(node, f"intent {name!r}", ("phrases", "keywords", "regex", "slot"))
    if fields is None:
        return None
    got = {k: r.texts(v, f"intent {name!r} {k}") for k, (_, v) in fields.items() if k != "slot"}
    slot = r.name(fields["slot"][1], "slot") if "slot" in fields else None
    if None in got.values() or ("slot" in fields and slot is None):
        return None
    if not got:
        r.problem(node, f"intent {name!r} needs phrases, keywords or regex")
        return None
    regexes = got.get("regex") or ()
    for pattern in regexes:
        try:
            re.compile(pattern)
        except re.error as e:
            r.problem(fields["regex"][1], f"intent {name!r}: bad regex {pattern!r}: {e}")
            return None
    return Intent(name, got.get("phrases") or (), got.get("keywords") or (), regexes, slot, src)


def _gather(r: Reader, node: Node | None, src: Source) -> Gather | None:
    keys = ("num_digits", "finish_on_key", "inter_digit_timeout_ms", "timeout_ms")
    fields = {} if node is None else r.mapping(node, "gather", (*keys, "input", "variable"))
    if fields is None:
        return None
    num_digits = _optional_int(r, fields, "num_digits", 1)
    inter = _optional_int(r, fields, "inter_digit_timeout_ms", 1)
    timeout = _optional_int(r, fields, "timeout_ms", 1)
    finish: str | None = "#"
    if "finish_on_key" in fields:
        finish = _finish_key(r, fields["finish_on_key"][1])
    mode = r.text(fields["input"][1], "input") if "input" in fields else "dtmf"
    if mode is not None and mode not in ("dtmf", "speech", "both"):
        r.problem(fields["input"][1], f"input must be dtmf, speech or both, not {mode!r}")
        mode = None
    variable = r.name(fields["variable"][1], "variable") if "variable" in fields else "digits"
    if False in (num_digits, inter, timeout) or None in (finish, mode, variable):
        return None
    assert finish is not None and variable is not None
    return Gather(
        num_digits=None if num_digits is True else int(num_digits),
        finish_on_key=finish,
        inter_digit_timeout_ms=DEFAULT_INTER_DIGIT_TIMEOUT_MS if inter is True else int(inter),
        timeout_ms=None if timeout is True else int(timeout),
        input=mode,  # type: ignore[arg-type]  # checked against the Literal just above
        variable=variable,
        source=src,
    )


def _finish_key(r: Reader, node: Node) -> str | None:
    if r.is_null(node):
        # `finish_on_key: #` is a YAML comment: the value is empty.
        r.problem(node, "finish_on_key is empty: '#' starts a YAML comment, quote it: \"#\"")
        return None
    key = r.text(node, "finish_on_key", empty_ok=True)
    if key is not None and (len(key) > 1 or key not in _DTMF_KEYS):
        r.problem(node, f'finish_on_key must be one of {_DTMF_KEYS} or "", not {key!r}')
        return None
    return key


def _set(r: Reader, node: Node | None, src: Source) -> Set | None:
    assert node is not None
    fields = r.mapping(node, "set")
    if fields is None:
        return None
    values: dict[str, object] = {}
    expressions: set[str] = set()
    compiled: dict[str, Expr] = {}
    for name, (key, value) in fields.items():
        if not NAME.match(name):
            r.problem(key, f"set: {name!r} must be a variable name (letters, digits, _)")
        elif isinstance(value, ScalarNode):
            literal = r.literal(value)
            if not isinstance(literal, str) or _template_ok(r, value, literal):
                values[name] = literal
        else:
            expr_fields = r.mapping(value, f"set {name!r}", ("expr",))
            if expr_fields and "expr" in expr_fields:
                text = r.text(expr_fields["expr"][1], "expr")
                parsed = None if text is None else _expr(r, expr_fields["expr"][1], text)
                if text is not None and parsed is not None:
                    values[name] = text
                    expressions.add(name)
                    compiled[name] = parsed
            elif expr_fields is not None:
                r.problem(value, f"set {name!r}: a value is a literal or {{expr: ...}}")
    return Set(values, frozenset(expressions), src, compiled)


def _expr(r: Reader, node: Node, text: str) -> Expr | None:
    """The parsed expression, or None after reporting why it does not parse."""
    try:
        return compile_expr(text)
    except ExprError as e:
        r.problem(node, str(e))
        return None


def _hook(r: Reader, node: Node | None, src: Source) -> Hook | None:
    assert node is not None
    if isinstance(node, ScalarNode):
        fields: dict[str, tuple[Node, Node]] = {"target": (node, node)}
    else:
        fields = r.mapping(node, "hook", ("target", "timeout_ms", "returns")) or {}
        if "target" not in fields:
            r.problem(node, "hook needs 'target: module:function'")
            return None
    target = r.text(fields["target"][1], "hook target")
    if target is not None and not _HOOK_TARGET.match(target):
        r.problem(fields["target"][1], f"hook target {target!r} must be 'module:function'")
        target = None
    timeout = _optional_int(r, fields, "timeout_ms", 1)
    returns = r.texts(fields["returns"][1], "returns") if "returns" in fields else ()
    for name in returns or ():
        if not NAME.match(name):
            r.problem(fields["returns"][1], f"returns: {name!r} must be a variable name")
    if target is None or timeout is False or returns is None:
        return None
    timeout_ms = DEFAULT_HOOK_TIMEOUT_MS if timeout is True else int(timeout)
    return Hook(target, timeout_ms, src, returns)


def _sms(r: Reader, node: Node | None, src: Source) -> Sms | None:
    assert node is not None
    fields = r.mapping(node, "sms", ("to", "body"))
    if fields is None:
        return None
    if "body" not in fields:
        r.problem(node, "sms needs 'body'")
        return None
    to = r.text(fields["to"][1], "sms to") if "to" in fields else "{caller}"
    body = r.text(fields["body"][1], "sms body")
    if to is None or body is None:
        return None
    if not (_template_ok(r, node, to) and _template_ok(r, fields["body"][1], body)):
        return None
    return Sms(to, body, src)


def _transfer(r: Reader, node: Node | None, src: Source) -> Transfer | None:
    assert node is not None
    if not isinstance(node, ScalarNode):
        fields = r.mapping(node, "transfer", ("to",))
        if fields is None:
            return None
        if "to" not in fields:
            r.problem(node, "transfer needs 'to'")
            return None
        node = fields["to"][1]
    to = r.text(node, "transfer to")
    return None if to is None or not _template_ok(r, node, to) else Transfer(to, src)


def _hangup(r: Reader, node: Node | None, src: Source) -> Hangup | None:
    if node is None:
        return Hangup("completed", src)
    if not isinstance(node, ScalarNode):
        fields = r.mapping(node, "hangup", ("reason",))
        if fields is None:
            return None
        if "reason" not in fields:
            return Hangup("completed", src)
        node = fields["reason"][1]
    reason = r.text(node, "hangup reason")
    return None if reason is None else Hangup(reason, src)


def _timer(r: Reader, node: Node | None, src: Source) -> StartTimer | None:
    assert node is not None
    fields = r.mapping(node, "timer", ("name", "after_ms"))
    if fields is None:
        return None
    if "name" not in fields or "after_ms" not in fields:
        r.problem(node, "timer needs 'name' and 'after_ms'")
        return None
    name = r.name(fields["name"][1], "timer name")
    after = r.integer(fields["after_ms"][1], "after_ms", 1)
    if name is not None and name in BUILTIN_EVENTS:
        r.problem(fields["name"][1], f"timer name {name!r} is a built-in event")
        return None
    return None if name is None or after is None else StartTimer(name, after, src)


ACTION_NAMES: dict[str, Callable[[Reader, Node | None, Source], Action | None]] = {
    "say": _say,
    "play": _play,
    "listen": _listen,
    "gather": _gather,
    "set": _set,
    "hook": _hook,
    "sms": _sms,
    "transfer": _transfer,
    "hangup": _hangup,
    "timer": _timer,
}
