"""Load a conversation machine file into `MachineSpec`, or fail with every problem.

`load_machine(path)` reads the YAML (keeping line numbers), validates types and
shapes, then runs the semantic checks of `fsm_voice.conversation.language.check`; any error
raises `MachineError`, whose message lists each problem as
`machines/x.yaml:12: state 'greet': unknown target state 'confrim'`.
`load_machine_report` returns the spec (if it could be built) and all problems,
warnings included, without raising: `fsm-voice check` prints them.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields as dataclass_fields
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from fsm_voice.conversation.language.check import check_machine
from fsm_voice.conversation.language.expr import ExprError, compile_expr
from fsm_voice.conversation.language.load_actions import ACTION_NAMES, read_action, read_actions
from fsm_voice.conversation.language.problems import MachineError, Problem, sort_problems
from fsm_voice.conversation.language.spec import (
    Action,
    Fallback,
    Handler,
    Hangup,
    MachineSpec,
    Settings,
    Source,
    StateSpec,
    Transfer,
)
from fsm_voice.conversation.language.yamlread import EVENT, NAME, Reader, line_of, suggest

__all__ = ["MachineError", "Problem", "load_machine", "load_machine_report", "load_machine_text"]

_TOP = ("name", "version", "initial", "variables", "settings", "global", "states", "hooks_path")
_STATE = ("actions", "on", "bargein", "final")
_HANDLER = ("goto", "when", "count", "reprompt", "say", "play", "set", "sms")
_HANDLER_ACTIONS = ("say", "play", "set", "sms")  # run in the order written


def load_machine(path: str | Path, *, check: bool = True) -> MachineSpec:
    """Load and validate; raises MachineError (a ConfigError) listing every error."""
    spec, problems = load_machine_report(path, check=check)
    if spec is None or any(p.severity == "error" for p in problems):
        raise MachineError(problems)
    return spec


def load_machine_text(text: str | bytes, path: str | Path, *, check: bool = True) -> MachineSpec:
    """Like load_machine for text already read; `path` names it in problems and anchors
    relative paths (play files, hooks)."""
    spec, problems = load_machine_report_text(text, path, check=check)
    if spec is None or any(p.severity == "error" for p in problems):
        raise MachineError(problems)
    return spec


def load_machine_report(
    path: str | Path, *, check: bool = True
) -> tuple[MachineSpec | None, list[Problem]]:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return None, [Problem(str(path), 1, None, f"cannot read: {e.strerror or e}")]
    return load_machine_report_text(data, path, check=check)


def load_machine_report_text(
    text: str | bytes, path: str | Path, *, check: bool = True
) -> tuple[MachineSpec | None, list[Problem]]:
    data = text.encode() if isinstance(text, str) else text
    file = str(path)
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as e:
        return None, [Problem(file, 1, None, f"not UTF-8 text: {e.reason}")]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, [Problem(file, line, None, f"YAML syntax: {e.problem or e}")]
    reader = Reader(file)
    if root is None:
        reader.problem(1, "empty file: a machine needs 'initial' and 'states'")
        return None, reader.problems
    spec = _machine(reader, root, Path(path), hashlib.sha256(data).hexdigest()[:12])
    problems = reader.problems
    if any(p.severity == "error" for p in problems):
        # A state that failed to load is missing from the spec: semantic checks on it
        # would only add noise (unknown targets, unreachable states).
        return None, sort_problems(problems)
    if spec is not None and check:
        problems = problems + check_machine(spec)
    return spec, sort_problems(problems)


def _machine(r: Reader, root: Node, path: Path, digest: str) -> MachineSpec | None:
    top = r.mapping(root, "a machine file", _TOP)
    if top is None:
        return None
    for required in ("initial", "states"):
        if required not in top:
            r.problem(root, f"missing {required!r}")
    name = r.text(top["name"][1], "name") if "name" in top else path.stem
    version = r.text(top["version"][1], "version") if "version" in top else digest
    initial = r.name(top["initial"][1], "initial") if "initial" in top else None
    variables = _variables(r, top["variables"][1]) if "variables" in top else {}
    settings = _settings(r, top["settings"][1]) if "settings" in top else Settings()
    handlers: tuple[Handler, ...] = ()
    fallback = None
    if "global" in top:
        handlers, fallback = _global(r, top["global"][1])
    states = _states(r, top["states"][1]) if "states" in top else {}
    # The machine's own directory first: hooks usually live next to the machine.
    hooks = [str(path.parent.resolve())]
    if "hooks_path" in top:
        extra = r.texts(top["hooks_path"][1], "hooks_path") or ()
        hooks += [str((path.parent / p).resolve()) for p in extra]
    if None in (name, version, initial, settings) or not states:
        return None
    assert name is not None and version is not None and initial is not None
    assert settings is not None
    initial_line = line_of(top["initial"][1])
    return MachineSpec(
        name=name,
        version=version,
        initial=initial,
        variables=variables,
        settings=settings,
        states=states,
        global_handlers=handlers,
        fallback=fallback,
        path=str(path),
        hooks_path=tuple(hooks),
        initial_source=Source(str(path), initial_line),
    )


def _variables(r: Reader, node: Node) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, (key, value) in (r.mapping(node, "variables") or {}).items():
        if NAME.match(name):
            out[name] = r.literal(value)
        else:
            r.problem(key, f"variable {name!r} must be a name (letters, digits, _)")
    return out


def _settings(r: Reader, node: Node) -> Settings | None:
    known = {f.name for f in dataclass_fields(Settings)}
    fields = r.mapping(node, "settings", sorted(known))
    if fields is None:
        return None
    values: dict[str, object] = {}
    for key, (_, value) in fields.items():
        if key == "bargein":
            values[key] = r.boolean(value, key)
        elif key == "language":
            values[key] = r.text(value, key)
        elif key == "max_call_ms" and r.is_null(value):
            values[key] = None
            continue
        else:
            values[key] = r.integer(value, key, 1)
        if values[key] is None:
            return None
    return Settings(**values)  # type: ignore[arg-type]  # each checked against its field


def _global(r: Reader, node: Node) -> tuple[tuple[Handler, ...], Fallback | None]:
    fields = r.mapping(node, "global", ("on", "fallback"))
    if fields is None:
        return (), None
    handlers = _handlers(r, fields["on"][1]) if "on" in fields else ()
    fallback = None
    if "fallback" in fields:
        fallback = _fallback(r, fields["fallback"][1])
    return handlers, fallback


def _fallback(r: Reader, node: Node) -> Fallback | None:
    fields = r.mapping(node, "fallback", ("after", "goto"))
    if fields is None:
        return None
    if "after" not in fields or "goto" not in fields:
        r.problem(node, "fallback needs 'after' (failures) and 'goto' (a state)")
        return None
    after = r.integer(fields["after"][1], "fallback after", 1)
    goto = r.name(fields["goto"][1], "fallback goto")
    if after is None or goto is None:
        return None
    return Fallback(after, goto, Source(r.file, line_of(fields["goto"][1])))


def _states(r: Reader, node: Node) -> dict[str, StateSpec]:
    fields = r.mapping(node, "states")
    if fields is None:
        return {}
    if not fields:
        r.problem(node, "states is empty")
    states: dict[str, StateSpec] = {}
    for name, (key, value) in fields.items():
        if not NAME.match(name):
            r.problem(key, f"state name {name!r} must be a name (letters, digits, _)")
            continue
        with r.in_state(name):
            state = _state(r, name, key, value)
        if state is not None:
            states[name] = state
    return states


def _state(r: Reader, name: str, key: Node, node: Node) -> StateSpec | None:
    if r.is_null(node):
        r.problem(key, "a state needs 'actions', 'on' or 'final: true'")
        return None
    fields = r.mapping(node, "a state")
    if fields is None:
        return None
    for key_name, (key_node, _) in list(fields.items()):
        if key_name not in _STATE:
            hint = (
                ": an action goes in the list under 'actions:'"
                if key_name in ACTION_NAMES
                else suggest(key_name, _STATE)
            )
            r.problem(key_node, f"a state: unknown key {key_name!r}{hint}")
            del fields[key_name]
    actions = read_actions(r, fields["actions"][1]) if "actions" in fields else ()
    handlers = _handlers(r, fields["on"][1]) if "on" in fields else ()
    bargein = r.boolean(fields["bargein"][1], "bargein") if "bargein" in fields else None
    final = r.boolean(fields["final"][1], "final") if "final" in fields else False
    ends = any(isinstance(a, Hangup | Transfer) for a in actions)
    return StateSpec(
        name=name,
        actions=actions,
        handlers=handlers,
        bargein=bargein,
        final=bool(final) or ends,
        source=Source(r.file, line_of(key)),
    )


def _handlers(r: Reader, node: Node) -> tuple[Handler, ...]:
    out: list[Handler] = []
    for event, (key, value) in (r.mapping(node, "on") or {}).items():
        if not EVENT.match(event):
            r.problem(key, f"event {event!r} must be a name (letters, digits, _) or DTMF keys")
            continue
        items = value.value if not isinstance(value, ScalarNode | MappingNode) else [value]
        for item in items:
            handler = _handler(r, event, item)
            if handler is not None:
                out.append(handler)
    return tuple(out)


def _handler(r: Reader, event: str, node: Node) -> Handler | None:
    src = Source(r.file, line_of(node))
    if isinstance(node, ScalarNode):
        goto = r.name(node, f"on {event}: target state")
        return None if goto is None else Handler(event, goto, source=src)
    fields = r.mapping(node, f"on {event}", _HANDLER)
    if fields is None:
        return None
    goto = None
    if "goto" in fields and not r.is_null(fields["goto"][1]):
        goto = r.name(fields["goto"][1], f"on {event}: goto")
        if goto is None:
            return None
    when = r.text(fields["when"][1], "when") if "when" in fields else None
    condition = None
    if when is not None:
        try:
            condition = compile_expr(when)
        except ExprError as e:
            r.problem(fields["when"][1], f"on {event}: when: {e}")
            return None
    count = r.integer(fields["count"][1], "count", 1) if "count" in fields else 1
    reprompt = r.boolean(fields["reprompt"][1], "reprompt") if "reprompt" in fields else False
    actions: list[Action | None] = [
        read_action(r, k, v, k_node) for k, (k_node, v) in fields.items() if k in _HANDLER_ACTIONS
    ]
    if None in (count, reprompt) or None in actions or ("when" in fields and when is None):
        return None
    if reprompt and goto is not None:
        r.problem(node, f"on {event}: reprompt has no effect with goto", "warning")
    assert count is not None
    return Handler(
        event,
        goto,
        when=when,
        condition=condition,
        count=count,
        actions=tuple(a for a in actions if a is not None),
        reprompt=bool(reprompt),
        source=src,
    )
