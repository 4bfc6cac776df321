"""A machine as a Mermaid `stateDiagram-v2` (GitHub renders it in Markdown).

Edges are labelled `event [condition] (n≥count)`; a handler without `goto` is a
self-loop; global handlers and the fallback leave from a pseudo-state "any state";
final states (final: true, hangup, transfer) lead to [*].
"""

from __future__ import annotations

from fsm_voice.conversation.language.spec import Handler, MachineSpec

__all__ = ["to_mermaid"]

ANY = "any_state"  # a pseudo-state for the handlers every state has

# Mermaid ends a statement at ';' and treats '#' as an entity escape; '<' '>' may be
# swallowed as HTML. Conditions are short: replace them with look-alikes.
_LABEL = str.maketrans({";": ",", "#": "＃", "<": "＜", ">": "＞", "\n": " ", ":": "꞉"})


def _label(h: Handler) -> str:
    text = h.event
    if h.when:
        cond = h.when.replace(">=", "≥").replace("<=", "≤").replace("!=", "≠")
        text += f" [{cond}]"
    if h.count > 1:
        text += f" (n≥{h.count})"
    if h.goto is None and h.reprompt:
        text += " reprompt"
    return text.translate(_LABEL)


def to_mermaid(spec: MachineSpec) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {spec.initial}"]
    for state in spec.states.values():
        for h in state.handlers:
            lines.append(f"    {state.name} --> {h.goto or state.name} : {_label(h)}")
    if spec.global_handlers or spec.fallback:
        lines.append(f'    state "any state" as {ANY}')
        for h in spec.global_handlers:
            if h.goto is not None:
                lines.append(f"    {ANY} --> {h.goto} : {_label(h)}")
        if spec.fallback is not None:
            fb = spec.fallback
            lines.append(f"    {ANY} --> {fb.goto} : {fb.after} failures (fallback)")
    for state in spec.states.values():
        if state.final:
            lines.append(f"    {state.name} --> [*]")
    return "\n".join(lines) + "\n"
