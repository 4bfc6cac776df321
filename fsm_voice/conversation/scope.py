"""What a conversation remembers: its variables and the visit's VoiceXML counters.

Templates, `when:` conditions, `set` expressions and hooks all see the same context:
the variables, the current state, and the counters of the current visit (`attempt`,
`noinput_count`, `nomatch_count`; reset on entering a state, kept across reprompts).
Conditions and expressions arrive parsed (`Handler.condition`, `Set.compiled`); one
that fails at run time (an unknown variable, a type error) is logged, not raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsm_voice.conversation.language import spec as sp
from fsm_voice.conversation.language.expr import ExprError, render_template
from fsm_voice.conversation.outbox import Outbox

__all__ = ["Scope"]


class Scope:
    """The variables and counters; failures are noted in the machine's `Outbox`."""

    def __init__(self, variables: Mapping[str, object], out: Outbox) -> None:
        self.variables: dict[str, Any] = dict(variables)
        self.noinput_count = 0
        self.nomatch_count = 0
        self.attempt = 0
        self._out = out

    def context(self, state: str) -> dict[str, Any]:
        """The variables a template, condition or hook sees."""
        return {
            **self.variables,
            "state": state,
            "attempt": self.attempt,
            "noinput_count": self.noinput_count,
            "nomatch_count": self.nomatch_count,
        }

    # --- the counters ---

    def new_visit(self) -> None:
        self.noinput_count = self.nomatch_count = self.attempt = 0

    def next_attempt(self) -> None:
        """The state's prompts are about to play (again)."""
        self.attempt += 1
        self._sync_counters()

    def count_failure(self, event: str) -> int:
        """One more `noinput` or `nomatch` this visit; returns that counter."""
        if event == "noinput":
            self.noinput_count += 1
        else:
            self.nomatch_count += 1
        self._sync_counters()
        return self.count_for(event)

    def count_for(self, event: str) -> int:
        """The counter a handler's `count` is compared with (1 for other events)."""
        return {"noinput": self.noinput_count, "nomatch": self.nomatch_count}.get(event, 1)

    @property
    def failures(self) -> int:
        return self.noinput_count + self.nomatch_count

    def _sync_counters(self) -> None:
        self.variables["noinput_count"] = self.noinput_count
        self.variables["nomatch_count"] = self.nomatch_count
        self.variables["attempt"] = self.attempt

    # --- evaluating ---

    def holds(self, handler: sp.Handler, state: str) -> bool:
        """Whether the handler's `when` holds (no `when`: it does)."""
        if handler.condition is None:
            return True
        try:
            return bool(handler.condition.evaluate(self.context(state)))
        except ExprError as error:
            self._out.note("condition_failed", when=handler.when, error=str(error))
            return False

    def render(self, text: str, state: str) -> str:
        try:
            return render_template(text, self.context(state))
        except ExprError as error:
            self._out.note("template_failed", text=text, error=str(error))
            return text

    def apply_set(self, action: sp.Set, state: str) -> None:
        values: dict[str, Any] = {}
        for name, value in action.values.items():
            try:
                if name in action.expressions:
                    values[name] = action.compiled[name].evaluate(self.context(state))
                elif isinstance(value, str):
                    values[name] = render_template(value, self.context(state))
                else:
                    values[name] = value
            except ExprError as error:
                self._out.note("set_failed", variable=name, error=str(error))
        self.variables.update(values)
        self._out.note("variables_set", values=values)
