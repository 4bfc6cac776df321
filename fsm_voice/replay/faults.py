"""Fault injection: what goes wrong on a real call, at a chosen moment, on purpose.

Five kinds, each written `KIND@MS` (ms since the call started):

- `stt_drop`: the recogniser's connection dies. Its provider machine goes
  reconnecting → connecting → streaming after the backoff; caller audio of the gap is
  buffered (bounded) and fed after, and what the recogniser was about to report is
  held and reported after, so nothing the caller said is lost.
- `twilio_drop`: the Media Streams socket vanishes without a close frame (1006).
- `mark_lost`: the first mark echo due at or after MS never comes; the runner's mark
  watchdog releases it and the conversation goes on.
- `duplicate_stream`: a second socket starts a stream for the same CallSid; it is
  refused and hung up, the original call goes on.
- `hangup_in_prompt`: the caller hangs up while a prompt plays (at MS if one is
  playing then, else early in the next one).

Each injected fault is logged (`runtime` `fault_injected`) at the moment it takes
effect, and what it caused is logged as usual, so a faulted run exported as a fixture
replays like any recorded call. `stt_drop` and `duplicate_stream` act inside the
runtime (`FaultInjector`, on live calls too); the other three are the platform's
doing, so replay applies them to the recorded inbound facts (`plan_faults`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, cast, get_args

from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent
from fsm_voice.providers.base import SpeechRecognizer
from fsm_voice.replay.droppable import DroppableRecognizer
from fsm_voice.replay.facts import Fact
from fsm_voice.replay.recording import ReplayInputError
from fsm_voice.replay.views import FaultLogged, RecordingViews

__all__ = [
    "FAULT_KINDS",
    "DroppableRecognizer",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "Injection",
    "parse_fault",
    "plan_faults",
]

FaultKind = Literal["stt_drop", "twilio_drop", "mark_lost", "duplicate_stream", "hangup_in_prompt"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
IN_RUNTIME: frozenset[str] = frozenset(("stt_drop", "duplicate_stream"))

ABNORMAL_CLOSE = 1006  # RFC 6455: the connection closed without a close frame
_IN_PROMPT_MS = 200  # a hangup "in the prompt" lands this far into it, when it can
_SPEC = re.compile(r"^\s*([a-z_]+)\s*@\s*(\d+)\s*(ms)?\s*$")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    at_ms: int

    def __str__(self) -> str:
        return f"{self.kind}@{self.at_ms}"


def parse_fault(text: str) -> Fault:
    """`"stt_drop@4000"` → `Fault("stt_drop", 4000)`; a clear error for anything else."""
    match = _SPEC.match(text)
    if match is None:
        raise ReplayInputError(f"fault {text!r}: write KIND@MS, e.g. stt_drop@4000")
    kind, at_ms = match.group(1), int(match.group(2))
    if kind not in FAULT_KINDS:
        raise ReplayInputError(f"fault {text!r}: unknown kind; one of {', '.join(FAULT_KINDS)}")
    return Fault(cast(FaultKind, kind), at_ms)


@dataclass(frozen=True, slots=True)
class Injection:
    """A fault placed in a call: when it takes effect, and what it hit."""

    t_ms: int
    fault: Fault
    detail: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        return {"fault": self.fault.kind, "at_ms": self.fault.at_ms, **self.detail}

    @classmethod
    def logged(cls, logged: FaultLogged) -> Injection:
        """The injection a `fault_injected` event records."""
        return cls(logged.t_ms, parse_fault(f"{logged.fault}@{logged.at_ms}"), dict(logged.detail))


# --- the platform's faults, applied to the recorded inbound facts ---


def plan_faults(
    facts: list[Fact], faults: Sequence[Fault], views: RecordingViews
) -> tuple[list[Fact], list[Injection]]:
    """The inbound facts as the faulted platform sends them, and every injection."""
    injections: list[Injection] = []
    end_ms = views.ended_ms
    if end_ms is None:
        end_ms = views.events[-1].t_ms if views.events else 0
    for fault in sorted(faults, key=lambda f: f.at_ms):
        if fault.kind in IN_RUNTIME:
            _require_live(facts, fault.at_ms, fault, end_ms)
            injections.append(Injection(fault.at_ms, fault))
        elif fault.kind == "twilio_drop":
            _require_live(facts, fault.at_ms, fault, end_ms)
            dropped = Fact(fault.at_ms, None, "close", code=ABNORMAL_CLOSE)
            facts = [*_cut(facts, fault.at_ms), dropped]
            injections.append(Injection(fault.at_ms, fault, {"code": ABNORMAL_CLOSE}))
        elif fault.kind == "mark_lost":
            facts, injection = _lose_mark(facts, fault)
            injections.append(injection)
        else:
            t_ms, prompt_id = _in_prompt(views, fault)
            _require_live(facts, t_ms, fault, end_ms)
            stop = Fact(t_ms, None, "message", message={"event": "stop", "stop": {}})
            facts = [*_cut(facts, t_ms), stop, Fact(t_ms, None, "close", code=1000)]
            injections.append(Injection(t_ms, fault, {"prompt_id": prompt_id}))
    return facts, injections


def _cut(facts: list[Fact], t_ms: int) -> list[Fact]:
    return [f for f in facts if f.t_ms < t_ms]


def _require_live(facts: list[Fact], t_ms: int, fault: Fault, end_ms: int) -> None:
    """The platform's stream must still be up at `t_ms` (after start, before its end)."""
    started = next((f.t_ms for f in facts if _is(f, "start")), None)
    closed = [f.t_ms for f in facts if f.kind == "close" or _is(f, "stop")]
    ended = min([*closed, end_ms])
    if started is None or not started <= t_ms < ended:
        span = f"from {started} to {ended} ms" if started is not None else "never"
        raise ReplayInputError(f"fault {fault}: the stream is live {span}, not then")


def _is(fact: Fact, event: str) -> bool:
    return fact.kind == "message" and fact.message is not None and fact.message["event"] == event


def _lose_mark(facts: list[Fact], fault: Fault) -> tuple[list[Fact], Injection]:
    for index, fact in enumerate(facts):
        if _is(fact, "mark") and fact.t_ms >= fault.at_ms:
            assert fact.message is not None
            name = str(fact.message["mark"]["name"])
            return facts[:index] + facts[index + 1 :], Injection(fact.t_ms, fault, {"mark": name})
    raise ReplayInputError(f"fault {fault}: no mark is echoed at or after {fault.at_ms} ms")


def _in_prompt(views: RecordingViews, fault: Fault) -> tuple[int, str]:
    """When the caller hangs up: at `at_ms` if a prompt plays then, else in the next one."""
    played = [p for p in views.prompts if p.finished_seq is not None]
    for prompt in sorted(played, key=lambda p: p.finished_seq or 0):
        begin, end = prompt.first_audio_ms, prompt.finished_ms
        if begin is None or end is None:
            continue  # finished before any of it played
        if begin < fault.at_ms < end:
            return fault.at_ms, prompt.prompt_id
        if fault.at_ms <= begin and end - begin > 40:  # long enough to hang up inside
            return begin + min(_IN_PROMPT_MS, (end - begin) // 2), prompt.prompt_id
    raise ReplayInputError(f"fault {fault}: no prompt plays at or after {fault.at_ms} ms")


# --- the runtime's faults: a recogniser connection that drops, a duplicate stream ---


class FaultInjector:
    """Injects the runtime's faults into one call at a time, at their call times.

    Wrap the recogniser factory (`recognizer`) and the agent (`agent`); each
    injection is logged when it takes effect. `on_duplicate(call_sid)` opens the
    duplicate stream (the platform's side: replay runs one).
    """

    def __init__(
        self,
        injections: Sequence[Injection],
        *,
        on_duplicate: Callable[[str], None] | None = None,
        act: bool = True,
        reenact: Collection[FaultKind] = (),
        backoffs_ms: Sequence[int] = (),
    ) -> None:
        self.injections = list(injections)
        self.on_duplicate = on_duplicate
        self.act = act  # False: only log them (replaying a faulted run's fixture)
        # Kinds that act all the same: a replay whose recogniser is real loses its
        # connection again where the recording did (`backoffs_ms`: as long, too).
        self.reenact = frozenset(reenact)
        self.backoffs_ms = tuple(backoffs_ms)
        self.recognizers: list[DroppableRecognizer] = []
        self._call: CallHandle | None = None

    @classmethod
    def live(cls, faults: Sequence[Fault]) -> FaultInjector:
        """For a live call: only the faults the runtime itself can suffer."""
        outside = [str(f) for f in faults if f.kind != "stt_drop"]
        if outside:
            raise ReplayInputError(
                f"faults {', '.join(outside)}: only stt_drop is injected into live calls"
                " (replay injects every kind)"
            )
        return cls([Injection(f.at_ms, f) for f in faults])

    def recognizer(self, factory: Callable[[], SpeechRecognizer]) -> Callable[[], SpeechRecognizer]:
        def make() -> SpeechRecognizer:
            if self._call is None:
                raise RuntimeError("FaultInjector: wrap the agent too (agent())")
            link = DroppableRecognizer(factory(), self._call.clock, backoffs_ms=self.backoffs_ms)
            self.recognizers.append(link)
            return link

        return make

    def agent(self, agent: Agent) -> Agent:
        async def faulted(call: CallHandle) -> None:
            self._call = call
            timers = [
                call.clock.call_later(max(0, i.t_ms - call.t_ms()), partial(self._fire, call, i))
                for i in self.injections
            ]
            try:
                await agent(call)
            finally:
                for timer in timers:
                    timer.cancel()

        return faulted

    def _fire(self, call: CallHandle, injection: Injection) -> None:
        if call.ended:
            return
        call.record("runtime", "fault_injected", injection.data())
        if not (self.act or injection.fault.kind in self.reenact):
            return
        if injection.fault.kind == "stt_drop":
            for link in self.recognizers:
                link.drop(f"fault injected: {injection.fault}")
        elif injection.fault.kind == "duplicate_stream" and self.on_duplicate is not None:
            self.on_duplicate(call.call_sid or "")
