"""Error handlers that fail the way the error did, and so run again and again.

An `error` comes from a provider (most often the TTS: a bad key, a spent quota) or a
hook. An error handler whose own steps speak (`say`) or call a hook can fail again;
that second error is handled by an error handler too, and when that leads back to
the first, the call loops until the runtime stops it (`loop_detected`) — with the
caller hearing nothing. `play` is not counted: it sends a checked local file.

The check follows each error handler one step: its own actions (they fail in the
state it was chosen in), then the entry actions of its `goto` state, or of its own
state on `reprompt`. A failing `say` or `hook` there is handled by that state's
error handler (its own, else the global one); a cycle through such steps is warned
at every handler on it. A handler with `when` is a way out (a retry count, say), so
a state whose error handling has a condition is not followed.
"""

from __future__ import annotations

from collections.abc import Iterator

from fsm_voice.conversation.language.spec import Action, Handler, Hook, MachineSpec, Say, Source

__all__ = ["error_loops"]

# (the handler, the state it is chosen in)
_Node = tuple[Handler, str]
# (the step that can fail, the state it fails in)
_Failure = tuple[Say | Hook, str]


def error_loops(spec: MachineSpec) -> list[tuple[Source | None, str | None, str]]:
    """(where, owning state or None for global, message) per error handler on a loop."""
    nodes = {(h, s) for s in spec.states if (h := _error_handler(spec, s)) is not None}
    found: dict[Handler, tuple[Source | None, str | None, str]] = {}
    for node in sorted(nodes, key=_order):
        handler, _ = node
        if handler in found:
            continue
        for failure, nxt in _steps(spec, node):
            if node in _reachable(spec, nxt):
                owner = _owner(spec, handler)
                found[handler] = (handler.source, owner, _message(spec, node, failure, nxt))
                break
    return list(found.values())


def _order(node: _Node) -> tuple[int, str]:
    handler, state = node
    return (handler.source.line if handler.source else 0, state)


def _error_handler(spec: MachineSpec, state: str) -> Handler | None:
    """The handler an error in `state` runs, when it is certain (no `when` involved)."""
    local = [h for h in spec.states[state].handlers_for("error") if h.count <= 1]
    found = local or [h for h in spec.global_handlers if h.event == "error" and h.count <= 1]
    if not found or any(h.when is not None for h in found):
        return None
    return max(found, key=lambda h: h.count)  # the runtime's choice; ties: the first


def _fallible(actions: tuple[Action, ...]) -> Say | Hook | None:
    return next((a for a in actions if isinstance(a, Say | Hook)), None)


def _failures(spec: MachineSpec, node: _Node) -> Iterator[_Failure]:
    handler, state = node
    own = _fallible(handler.actions)
    if own is not None:
        yield own, state
    entered = handler.goto if handler.goto is not None else state if handler.reprompt else None
    if entered is not None and entered in spec.states:
        step = _fallible(spec.states[entered].actions)
        if step is not None:
            yield step, entered


def _steps(spec: MachineSpec, node: _Node) -> Iterator[tuple[_Failure, _Node]]:
    """Each step of `node` that can fail, with the error handler that then runs."""
    for failure in _failures(spec, node):
        handler = _error_handler(spec, failure[1])
        if handler is not None:
            yield failure, (handler, failure[1])


def _reachable(spec: MachineSpec, start: _Node) -> set[_Node]:
    seen, todo = {start}, [start]
    while todo:
        for _, nxt in _steps(spec, todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _owner(spec: MachineSpec, handler: Handler) -> str | None:
    return next((s.name for s in spec.states.values() if handler in s.handlers), None)


def _message(spec: MachineSpec, node: _Node, failure: _Failure, nxt: _Node) -> str:
    handler = node[0]
    step, where = failure
    line = f" (line {step.source.line})"
    if isinstance(step, Say):
        kind, what = "say", "fails again if the TTS is what failed"
    else:
        kind, what = f"hook {step.target!r}", "can fail the same way"
    if step in handler.actions:
        how = f"its {kind}{line} {what}"
    elif handler.goto is not None:
        how = f"goes to {where!r}, whose {kind}{line} {what}"
    else:
        how = f"reprompts, and the {kind}{line} {what}"
    again = "this handler runs again" if nxt[0] == handler else "that leads back here"
    prefix = "global on error" if _owner(spec, handler) is None else "on error"
    return (
        f"{prefix}: {how}, and {again}: a loop (the runtime ends the call as "
        f"loop_detected). Give {where!r} an `error` handler that neither speaks nor calls "
        "a hook (to a state that only hangs up or transfers), or bound it with `when`"
    )
