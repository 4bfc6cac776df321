"""The conversation machine's core: its transitions table, what it remembers, how it acts.

`ConversationMachine` (in `conversation.machine`) makes the dialog decisions; this
base class holds everything those decisions read and write, and nothing that
decides: the `transitions` machine built from the spec's handlers, the variables,
the per-visit counters, the action cursor's queue and what it is blocked on, the
prompt playing, the live timers, and the primitive ways to act (emit an effect,
note a decision, start or cancel a timer, render a template, end the conversation).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import spec as sp
from fsm_voice.conversation.expr import ExprError, compile_expr, render_template
from fsm_voice.conversation.loops import LoopGuard
from fsm_voice.machine import Edge, PureMachine

__all__ = ["ENDED", "START", "Continue", "CursorStep", "MachineCore", "TakeFallback"]

START = "__start__"
ENDED = "__ended__"


@dataclass(frozen=True, slots=True)
class Continue:
    """The end of a handler's actions: take its goto / reprompt / stay."""

    handler: sp.Handler


@dataclass(frozen=True, slots=True)
class TakeFallback:
    """The failures of this visit reached the global fallback's cap: take it."""

    fallback: sp.Fallback


CursorStep = sp.Action | Continue | TakeFallback


class MachineCore:
    """The state and primitives `ConversationMachine` decides with; decides nothing."""

    def __init__(self, spec: sp.MachineSpec) -> None:
        self.spec = spec
        self.variables: dict[str, Any] = dict(spec.variables)
        self.ended = False
        self._out: list[fx.ConversationEffect] = []
        self._m: PureMachine[fx.ConversationEffect] = PureMachine(
            "conversation", [START, *spec.states, ENDED], START, self._edges()
        )
        self._ids = itertools.count(1)
        self._visit = 0
        self.noinput_count = 0
        self.nomatch_count = 0
        self.attempt = 0
        self._queue: deque[CursorStep] = deque()
        self._blocked_on: str | None = None  # a prompt id or hook id
        self._prompt: tuple[str, bool] | None = None  # (prompt id, bargein) while playing
        self._listening = False
        self._input_armed = False
        self._digits: list[str] = []
        self._timers: dict[str, int] = {}  # name -> token of the live timer
        self._loops = LoopGuard()  # ends a conversation that goes round without progress

    # --- the transitions table ---

    def _edges(self) -> list[Edge]:
        every = [*self.spec.states]
        edges = [Edge("on:__start__", START, self.spec.initial)]
        for state in self.spec.states.values():
            edges.extend(_handler_edge(h, state.name) for h in state.handlers)
        edges.extend(_handler_edge(h, every) for h in self.spec.global_handlers)
        if self.spec.fallback is not None:
            edges.append(Edge("fallback", every, self.spec.fallback.goto))
        edges.append(Edge("end", [START, *every], ENDED))
        return edges

    @property
    def state(self) -> str:
        return self._m.state

    @property
    def current(self) -> sp.StateSpec | None:
        return self.spec.states.get(self._m.state)

    # --- variables, counters, timers, effects ---

    def context(self) -> dict[str, Any]:
        """The variables a template, condition or hook sees."""
        return {
            **self.variables,
            "state": self.state,
            "attempt": self.attempt,
            "noinput_count": self.noinput_count,
            "nomatch_count": self.nomatch_count,
        }

    def _render(self, text: str) -> str:
        try:
            return render_template(text, self.context())
        except ExprError as error:
            self._note("template_failed", text=text, error=str(error))
            return text

    def _apply_set(self, action: sp.Set) -> None:
        values: dict[str, Any] = {}
        for name, value in action.values.items():
            try:
                if name in action.expressions:
                    values[name] = compile_expr(str(value)).evaluate(self.context())
                elif isinstance(value, str):
                    values[name] = render_template(value, self.context())
                else:
                    values[name] = value
            except ExprError as error:
                self._note("set_failed", variable=name, error=str(error))
        self.variables.update(values)
        self._note("variables_set", values=values)

    def _bargein(self) -> bool:
        state = self.current
        if state is not None and state.bargein is not None:
            return state.bargein
        return self.spec.settings.bargein

    def _noinput_ms(self, state: sp.StateSpec) -> int:
        action = state.listen or state.gather
        timeout = action.timeout_ms if action is not None else None
        return timeout or self.spec.settings.noinput_timeout_ms

    def _sync_counters(self) -> None:
        self.variables["noinput_count"] = self.noinput_count
        self.variables["nomatch_count"] = self.nomatch_count
        self.variables["attempt"] = self.attempt

    def _start_timer(self, name: str, after_ms: int) -> None:
        self._cancel_timer(name)
        token = next(self._ids)
        self._timers[name] = token
        self._emit(fx.StartTimer(name, after_ms, token))

    def _cancel_timer(self, name: str) -> None:
        token = self._timers.pop(name, None)
        if token is not None:
            self._emit(fx.CancelTimer(name, token))

    def _cancel_timers(self) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)

    def _end(self, effect: fx.ConversationEffect | None, reason: str = "") -> None:
        self._cancel_timers()
        if self._prompt is not None and effect is None:
            self._prompt = None
        self._queue.clear()
        if self._listening:
            self._listening = False
            self._emit(fx.StopListening())
        if effect is not None:
            self._emit(effect)
        self.ended = True
        previous = self.state
        self._m.fire("end")
        self._note("conversation_ended", state=previous, reason=reason or _reason(effect))

    def _emit(self, effect: fx.ConversationEffect) -> None:
        self._out.append(effect)

    def _note(self, kind: str, **details: Any) -> None:
        self._out.append(fx.Note(kind, details))


def _handler_edge(handler: sp.Handler, source: str | list[str]) -> Edge:
    def chosen(event: object, handler: sp.Handler = handler) -> bool:
        return event is handler

    return Edge(f"on:{handler.event}", source, handler.goto, conditions=[chosen])


def _reason(effect: fx.ConversationEffect | None) -> str:
    if isinstance(effect, fx.HangupCall):
        return effect.reason
    if isinstance(effect, fx.TransferCall):
        return "transferred"
    return "ended"
