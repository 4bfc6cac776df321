"""Semantic checks on a loaded machine: what a well-typed file can still get wrong.

Each check returns Problems naming the file, line and state. Errors make
`load_machine` fail and `fsm-voice check` exit 1; warnings are printed only.
The variable check is flow-insensitive: a variable is known if anything anywhere
can set it (a declared variable, `set`, an intent slot or regex group, a gather's
variable, a hook's declared `returns`, or a builtin).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from fsm_voice.conversation.language.check_errors import error_loops
from fsm_voice.conversation.language.check_hooks import check_hook
from fsm_voice.conversation.language.expr import ExprError, compile_expr, template_names
from fsm_voice.conversation.language.problems import Problem, Severity
from fsm_voice.conversation.language.spec import (
    BUILTIN_EVENTS,
    Action,
    Gather,
    Handler,
    Hook,
    Listen,
    MachineSpec,
    Play,
    Say,
    Set,
    Sms,
    Source,
    StartTimer,
    StateSpec,
    Transfer,
)
from fsm_voice.conversation.language.yamlread import suggest

__all__ = ["BUILTIN_VARIABLES", "check_machine", "edges"]

# Variables the runtime sets on every call.
BUILTIN_VARIABLES = frozenset(
    {
        "call_id",
        "caller",
        "called",
        "last_utterance",
        "last_intent",
        "digits",
        "attempt",
        "noinput_count",
        "nomatch_count",
        "error",
        "answered_by",  # set with the amd_human / amd_machine events (Twilio's AMD)
    }
)
_INPUT_EVENTS = ("noinput", "nomatch")
_DTMF = re.compile(r"[0-9*#]+\Z")


class _Checker:
    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.problems: list[Problem] = []

    def add(
        self, src: Source | None, state: str | None, msg: str, severity: Severity = "error"
    ) -> None:
        line = src.line if src is not None else 1
        self.problems.append(Problem(self.spec.path, line, state, msg, severity))


def check_machine(spec: MachineSpec) -> list[Problem]:
    c = _Checker(spec)
    _targets(c)
    _reachability(c)
    for state in spec.states.values():
        _way_out(c, state)
        _input_handling(c, state)
        _events(c, state)
        _shadowed(c, state.name, state.handlers)
        _phrases(c, state)
    _shadowed(c, None, spec.global_handlers)
    for source, owner, message in error_loops(spec):
        c.add(source, owner, message, "warning")
    _variables(c)
    _files_and_hooks(c)
    return c.problems


def edges(spec: MachineSpec) -> Iterator[tuple[str | None, Handler]]:
    """Every handler with the state it belongs to (None: global)."""
    for state in spec.states.values():
        for handler in state.handlers:
            yield state.name, handler
    for handler in spec.global_handlers:
        yield None, handler


def _targets(c: _Checker) -> None:
    states = c.spec.states
    if c.spec.initial not in states:
        c.add(
            c.spec.initial_source,
            None,
            f"initial state {c.spec.initial!r} is not a state{suggest(c.spec.initial, states)}",
        )
    for owner, h in edges(c.spec):
        if h.goto is not None and h.goto not in states:
            where = "" if owner is not None else f"global on {h.event}: "
            msg = f"{where}unknown target state {h.goto!r}{suggest(h.goto, states)}"
            c.add(h.source, owner, msg)
    fb = c.spec.fallback
    if fb is not None and fb.goto not in states:
        c.add(
            fb.source, None, f"fallback: unknown target state {fb.goto!r}{suggest(fb.goto, states)}"
        )


def _successors(spec: MachineSpec, state: StateSpec) -> set[str]:
    out = {h.goto for h in state.handlers if h.goto is not None}
    out |= {h.goto for h in spec.global_handlers if h.goto is not None}
    if spec.fallback is not None and _listens(state):
        out.add(spec.fallback.goto)
    return out & set(spec.states)


def _reachable(spec: MachineSpec, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in _successors(spec, spec.states[todo.pop()]) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _reachability(c: _Checker) -> None:
    spec = c.spec
    if spec.initial not in spec.states:
        return
    reachable = _reachable(spec, spec.initial)
    for name, state in spec.states.items():
        if name not in reachable:
            c.add(state.source, name, f"unreachable from {spec.initial!r}", "warning")
    if not any(spec.states[n].final for n in reachable):
        c.add(
            spec.initial_source,
            None,
            "no way to end: no state reachable from the initial state is final "
            "(final: true, hangup or transfer)",
        )
        return
    for name in sorted(reachable):
        if not any(spec.states[n].final for n in _reachable(spec, name)):
            msg = "no path from here reaches a final state (only the caller can end the call)"
            c.add(spec.states[name].source, name, msg, "warning")


def _listens(state: StateSpec) -> bool:
    return state.listen is not None or state.gather is not None


def _way_out(c: _Checker, state: StateSpec) -> None:
    if state.final:
        return
    if not state.handlers:
        msg = "no way out: no handlers ('on:'), not final, and no hangup or transfer"
        c.add(state.source, state.name, msg)
        return
    waits = _listens(state) or any(isinstance(a, Hook | StartTimer) for a in state.actions)
    if not waits and not state.handlers_for("done"):
        msg = "nothing happens after the actions: add 'on: done: ...', a listen or a gather"
        c.add(state.source, state.name, msg, "warning")


def _input_handling(c: _Checker, state: StateSpec) -> None:
    if not _listens(state) or c.spec.fallback is not None:
        return
    needed = ["noinput"]
    gather = state.gather
    if state.listen is not None or (gather is not None and gather.input != "dtmf"):
        needed.append("nomatch")
    for event in needed:
        if not state.handlers_for(event) and not any(
            h.event == event for h in c.spec.global_handlers
        ):
            msg = f"no {event!r} handler (nor a global one or a fallback): reprompts forever"
            c.add(state.source, state.name, msg, "warning")


def _possible_events(state: StateSpec) -> set[str]:
    events = {"hangup", "error", "amd_human", "amd_machine"}
    listen, gather = state.listen, state.gather
    if listen is not None:
        events |= {i.name for i in listen.intents}
    if listen is not None or gather is not None:
        events |= set(_INPUT_EVENTS)
    else:
        events.add("done")
    if gather is not None:
        events.add("digits")
    actions = [*state.actions, *(a for h in state.handlers for a in h.actions)]
    events |= {a.name for a in actions if isinstance(a, StartTimer)}
    return events


def _events(c: _Checker, state: StateSpec) -> None:
    if any(isinstance(a, Hook) for a in state.actions):
        return  # a hook may return any event name
    possible = _possible_events(state)
    for h in state.handlers:
        if h.event in possible or (_DTMF.match(h.event) and state.gather is not None):
            continue
        if h.event in BUILTIN_EVENTS or _DTMF.match(h.event):
            c.add(h.source, state.name, f"event {h.event!r} never happens in this state", "warning")
        else:
            known = sorted(possible - BUILTIN_EVENTS)
            c.add(h.source, state.name, f"unknown event {h.event!r}{suggest(h.event, known)}")


def _shadowed(c: _Checker, state: str | None, handlers: tuple[Handler, ...]) -> None:
    for i, h in enumerate(handlers):
        for earlier in handlers[:i]:
            if earlier.event == h.event and earlier.count == h.count and earlier.when is None:
                msg = f"on {h.event}: never runs (an earlier handler always matches first)"
                c.add(h.source, state, msg, "warning")
                break


def _phrases(c: _Checker, state: StateSpec) -> None:
    listen = state.listen
    if listen is None:
        return
    owner: dict[str, str] = {}
    for intent in listen.intents:
        for phrase in (*intent.phrases, *intent.keywords):
            key = " ".join(phrase.lower().split())
            first = owner.setdefault(key, intent.name)
            if first != intent.name:
                msg = f"phrase {phrase!r} is in intents {first!r} and {intent.name!r}"
                c.add(intent.source, state.name, msg, "warning")


# --- variables ---


def _all_actions(spec: MachineSpec) -> Iterator[tuple[str | None, Action]]:
    for state in spec.states.values():
        for action in state.actions:
            yield state.name, action
    for owner, h in edges(spec):
        for action in h.actions:
            yield owner, action


def _defined(spec: MachineSpec) -> set[str]:
    names = set(BUILTIN_VARIABLES) | set(spec.variables)
    for _, action in _all_actions(spec):
        if isinstance(action, Set):
            names |= set(action.values)
        elif isinstance(action, Gather):
            names.add(action.variable)
        elif isinstance(action, Hook):
            names |= set(action.returns)
        elif isinstance(action, Listen):
            for intent in action.intents:
                names |= {intent.slot} if intent.slot else set()
                for pattern in intent.regexes:
                    names |= set(re.compile(pattern).groupindex)
    return names


def _used(action: Action) -> Iterator[tuple[str, bool]]:
    """(text, is_expression) for every template or expression the action reads."""
    if isinstance(action, Say):
        yield from ((p.text, False) for p in action.prompts)
    elif isinstance(action, Sms):
        yield from ((action.to, False), (action.body, False))
    elif isinstance(action, Transfer):
        yield action.to, False
    elif isinstance(action, Set):
        for key, value in action.values.items():
            if key in action.expressions or isinstance(value, str):
                yield str(value), key in action.expressions


def _variables(c: _Checker) -> None:
    defined = _defined(c.spec)
    uses: list[tuple[str | None, Source | None, str, bool]] = [
        (owner, action.source, text, is_expr)
        for owner, action in _all_actions(c.spec)
        for text, is_expr in _used(action)
    ]
    uses += [(o, h.source, h.when, True) for o, h in edges(c.spec) if h.when is not None]
    for owner, src, text, is_expr in uses:
        try:
            names = compile_expr(text).names if is_expr else template_names(text)
        except ExprError:
            continue  # reported by the loader
        for name in sorted(names - defined):
            msg = f"undefined variable {name!r} in {text!r}{suggest(name, defined)}"
            c.add(src, owner, msg)


def _files_and_hooks(c: _Checker) -> None:
    base = Path(c.spec.path).parent
    for owner, action in _all_actions(c.spec):
        if isinstance(action, Play) and not (base / action.path).is_file():
            c.add(action.source, owner, f"play: no such file {action.path!r} (relative to {base})")
        elif isinstance(action, Hook):
            message = check_hook(action.target, c.spec.hooks_path)
            if message is not None:
                c.add(action.source, owner, *message)
