"""The typed form of a conversation machine file (`machines/*.yaml`).

The loader (`fsm_voice.conversation.language.loader`) validates YAML into these objects, each
carrying the file and line it came from so every later error can name them. The
interpreter (`fsm_voice.conversation.machine`) runs them; nothing here does I/O.

YAML shape (see README "Conversation machines" for the full reference):

    name: appointment
    initial: greet
    variables: {patient: Alex}
    settings: {noinput_timeout_ms: 5000, bargein: true}
    global:
      on:
        hangup: end
        error: {goto: apologize}
      fallback: {after: 3, goto: agent}
    states:
      greet:
        bargein: true
        actions:
          - say: ["Hi {patient}, ...", {count: 2, text: "Shorter reprompt."}]
          - listen:
              intents:
                confirm: [yes, that works]
                reschedule: {keywords: [reschedule, another day]}
                time: {regex: '(?P<hour>\\d+) ?(am|pm)'}
              hints: [monday, tuesday]
              timeout_ms: 5000
        on:
          confirm: confirmed
          reschedule: {goto: pick_day, set: {attempts: 0}}
          noinput:
            - {count: 1, say: "Sorry, I didn't hear you.", reprompt: true}
            - {count: 3, goto: apologize}
          nomatch: {reprompt: true}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fsm_voice.conversation.language.expr import Expr, compile_expr

__all__ = [
    "Action",
    "Fallback",
    "Gather",
    "Handler",
    "Hangup",
    "Hook",
    "Intent",
    "Listen",
    "MachineSpec",
    "Play",
    "Prompt",
    "Say",
    "Set",
    "Settings",
    "Sms",
    "Source",
    "StartTimer",
    "StateSpec",
    "Transfer",
]

# Events the runtime produces besides intent names, digits and timer/hook names.
BUILTIN_EVENTS = frozenset(
    {"noinput", "nomatch", "hangup", "error", "digits", "done", "amd_human", "amd_machine"}
)


@dataclass(frozen=True, slots=True)
class Source:
    """Where something was declared: file and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# --- actions (run in order on entering a state, or on taking a handler) ---


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt text; `count` selects it by attempt (highest count ≤ attempt wins)."""

    text: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Say:
    prompts: tuple[Prompt, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class Play:
    path: str  # a WAV file, relative to the machine file
    source: Source


@dataclass(frozen=True, slots=True)
class Intent:
    """Phrases match the whole normalised utterance; keywords match a word run inside
    it; regexes search it (named groups become variables). `slot` names a variable that
    receives the matched phrase/keyword text."""

    name: str
    phrases: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    slot: str | None = None
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Listen:
    intents: tuple[Intent, ...]
    hints: tuple[str, ...]  # extra phrases for the recogniser's grammar
    timeout_ms: int | None  # noinput timeout; None: settings.noinput_timeout_ms
    source: Source


@dataclass(frozen=True, slots=True)
class Gather:
    num_digits: int | None  # complete after this many digits (None: only finish key)
    finish_on_key: str  # "#" by default; "" disables
    inter_digit_timeout_ms: int
    timeout_ms: int | None  # noinput timeout before the first digit
    input: Literal["dtmf", "speech", "both"]
    variable: str  # receives the digits (default "digits")
    source: Source


@dataclass(frozen=True, slots=True)
class Set:
    # Values are expressions of the safe expression language (fsm_voice.conversation.language.expr);
    # a plain YAML string is a template with {variables}, numbers/bools are literals.
    values: Mapping[str, object]
    expressions: frozenset[str]  # keys whose value is an expression (`{expr: ...}`)
    source: Source
    # The expressions parsed once, at load time; filled here when not given.
    compiled: Mapping[str, Expr] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        missing = self.expressions - set(self.compiled)
        if missing:
            compiled = {**self.compiled}
            compiled.update((k, compile_expr(str(self.values[k]))) for k in sorted(missing))
            object.__setattr__(self, "compiled", compiled)


@dataclass(frozen=True, slots=True)
class Hook:
    target: str  # "package.module:function"
    timeout_ms: int
    source: Source
    # Variables the hook may return, declared so `check` knows them statically.
    returns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sms:
    to: str  # template, e.g. "{caller}"
    body: str  # template
    source: Source


@dataclass(frozen=True, slots=True)
class Transfer:
    to: str  # template: an E.164 number
    source: Source


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str
    source: Source


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str  # fires the event `name` unless the state is left first
    after_ms: int
    source: Source


Action = Say | Play | Listen | Gather | Set | Hook | Sms | Transfer | Hangup | StartTimer


# --- transitions ---


@dataclass(frozen=True, slots=True)
class Handler:
    """Where an event leads. `goto=None` stays in the state (no re-entry)."""

    event: str
    goto: str | None
    when: str | None = None  # a safe expression over variables
    count: int = 1  # for noinput/nomatch: the handler with the highest count ≤ n wins
    actions: tuple[Action, ...] = ()  # run before leaving (say/set/sms ...)
    reprompt: bool = False  # replay the state's prompts (attempt + 1)
    source: Source | None = None
    # `when` parsed once, at load time; filled here when not given (raises ExprError).
    condition: Expr | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.when is not None and self.condition is None:
            object.__setattr__(self, "condition", compile_expr(self.when))


@dataclass(frozen=True, slots=True)
class Fallback:
    """After `after` failures (noinput + nomatch) in one state visit, go to `goto`."""

    after: int
    goto: str
    source: Source


@dataclass(frozen=True, slots=True)
class Settings:
    noinput_timeout_ms: int = 5000
    bargein: bool = True
    max_call_ms: int | None = None
    language: str = "en-US"


@dataclass(frozen=True, slots=True)
class StateSpec:
    name: str
    actions: tuple[Action, ...]
    handlers: tuple[Handler, ...]
    bargein: bool | None  # None: settings.bargein
    final: bool  # a state with `final: true` (or a hangup/transfer action) ends the call
    source: Source

    def handlers_for(self, event: str) -> tuple[Handler, ...]:
        return tuple(h for h in self.handlers if h.event == event)

    @property
    def listen(self) -> Listen | None:
        return next((a for a in self.actions if isinstance(a, Listen)), None)

    @property
    def gather(self) -> Gather | None:
        return next((a for a in self.actions if isinstance(a, Gather)), None)


@dataclass(frozen=True, slots=True)
class MachineSpec:
    name: str
    version: str  # content hash of the file (sha256, first 12 hex) unless declared
    initial: str
    variables: Mapping[str, object]
    settings: Settings
    states: Mapping[str, StateSpec]
    global_handlers: tuple[Handler, ...]
    fallback: Fallback | None
    path: str
    hooks_path: tuple[str, ...] = field(default=())  # extra sys.path entries for hooks
    initial_source: Source | None = None  # where `initial:` is written

    def state(self, name: str) -> StateSpec:
        return self.states[name]
