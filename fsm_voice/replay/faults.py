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
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, cast, get_args

from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent
from fsm_voice.clock import Clock, TimerHandle
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.machine import Step
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import Grammar, SpeechRecognizer, SttListener, Transcript
from fsm_voice.replay.facts import Fact
from fsm_voice.replay.recording import Recording, ReplayInputError

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
    def logged(cls, event: EventRecord) -> Injection:
        """The injection a `fault_injected` event records."""
        detail = dict(event.data)
        fault = parse_fault(f"{detail.pop('fault')}@{detail.pop('at_ms')}")
        return cls(event.t_ms, fault, detail)


# --- the platform's faults, applied to the recorded inbound facts ---


def plan_faults(
    facts: list[Fact], faults: Sequence[Fault], recording: Recording
) -> tuple[list[Fact], list[Injection]]:
    """The inbound facts as the faulted platform sends them, and every injection."""
    injections: list[Injection] = []
    end_ms = next((e.t_ms for e in recording.events if e.kind == "call_ended"), None)
    end_ms = recording.duration_ms if end_ms is None else end_ms
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
            t_ms, prompt_id = _in_prompt(recording.events, fault)
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


def _in_prompt(events: tuple[EventRecord, ...], fault: Fault) -> tuple[int, str]:
    """When the caller hangs up: at `at_ms` if a prompt plays then, else in the next one."""
    started: dict[str, int] = {}
    for event in events:
        prompt_id = str(event.data.get("prompt_id", ""))
        if event.kind == "first_audio_sent":
            started.setdefault(prompt_id, event.t_ms)
        elif event.kind == "prompt_finished" and prompt_id in started:
            begin, end = started[prompt_id], event.t_ms
            if begin < fault.at_ms < end:
                return fault.at_ms, prompt_id
            if fault.at_ms <= begin and end - begin > 40:  # long enough to hang up inside
                return begin + min(_IN_PROMPT_MS, (end - begin) // 2), prompt_id
    raise ReplayInputError(f"fault {fault}: no prompt plays at or after {fault.at_ms} ms")


# --- the runtime's faults: a recogniser connection that drops, a duplicate stream ---


class DroppableRecognizer:
    """A recogniser behind a connection that can be dropped (`drop`) on purpose.

    The in-process recognisers have no socket to lose, so this is their socket: its
    own provider machine goes through the path a cloud provider's socket loss takes
    (reconnecting, a backoff timer on the call's clock, connecting, streaming), and
    reports each state and the non-fatal error to the listener, so the runtime logs
    them. Meanwhile caller frames wait in a bounded buffer and the recogniser's
    results are held; after the reconnect both go on in their order.
    """

    def __init__(
        self,
        inner: SpeechRecognizer,
        clock: Clock,
        *,
        max_buffered_frames: int = 500,  # 10 s of caller audio
        jitter: Callable[[], float] = lambda: 0.5,
        backoffs_ms: Sequence[int] = (),
    ) -> None:
        self.inner = inner
        # Backoffs to wait instead of the machine's, in order (a replay re-enacting a
        # recorded drop waits as long as the recording did).
        self.backoffs_ms = deque(backoffs_ms)
        self.name = inner.name
        self.clock = clock
        self.max_buffered_frames = max_buffered_frames
        self.machine = pm.ProviderMachine(f"link:{inner.name}", jitter=jitter)
        self.frames_lost = 0
        self._listener: SttListener | None = None
        self._frames: deque[tuple[bytes, int]] = deque()
        self._held: deque[Callable[[], None]] = deque()
        self._retry: TimerHandle | None = None

    async def start(self, listener: SttListener) -> None:
        self._listener = listener
        # The link is up as soon as the recogniser is: the recogniser reports its own
        # start, so these two moves are not reported again.
        self.machine.fire(pm.Start())
        self.machine.fire(pm.Connected())
        await self.inner.start(_HoldingListener(self, listener))

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        if self.machine.is_streaming:
            self.inner.feed(mulaw, t_ms)
        elif self.machine.state in pm.OPEN:
            if len(self._frames) >= self.max_buffered_frames:
                self.frames_lost += 1  # the oldest is kept: the gap's start is speech too
                return
            self._frames.append((mulaw, t_ms))

    def set_grammar(self, grammar: Grammar | None) -> None:
        self.inner.set_grammar(grammar)

    def set_speaking(self, speaking: bool) -> None:
        self.inner.set_speaking(speaking)

    async def stop(self) -> None:
        self._apply(self.machine.fire(pm.Stop()), "", report=False)
        self._frames.clear()
        self._held.clear()
        await self.inner.stop()

    def drop(self, reason: str = "connection lost") -> None:
        """The connection dies now (a no-op unless it is streaming)."""
        self._apply(self.machine.fire(pm.Dropped(reason)), reason)

    @property
    def holding(self) -> bool:
        return not self.machine.is_streaming and self.machine.state in pm.OPEN

    def hold(self, report: Callable[[], None]) -> None:
        self._held.append(report)

    def _apply(self, step: Step[pm.ProviderEffect], detail: str, *, report: bool = True) -> None:
        listener = self._listener
        if report:
            pm.report_step(step, listener.on_state if listener else None, detail)
        for effect in step.effects:
            if isinstance(effect, pm.ScheduleRetry):
                delay = self.backoffs_ms.popleft() if self.backoffs_ms else effect.delay_ms
                self._retry = self.clock.call_later(delay, self._on_retry)
            elif isinstance(effect, pm.CancelRetry) and self._retry is not None:
                self._retry.cancel()
                self._retry = None
            elif isinstance(effect, pm.ReportError) and listener is not None:
                listener.on_error(effect.reason, effect.fatal)
            elif isinstance(effect, pm.Connect):
                self._apply(self.machine.fire(pm.Connected()), "reconnected")
                self._resume()

    def _on_retry(self) -> None:
        self._retry = None
        self._apply(self.machine.fire(pm.Retry()), "retrying")

    def _resume(self) -> None:
        """Back up: the held results first (older audio), then the buffered frames."""
        while self._held:
            self._held.popleft()()
        if self.frames_lost and self._listener is not None:
            lost, self.frames_lost = self.frames_lost, 0
            self._listener.on_error(f"{lost} caller frames lost while reconnecting", False)
        while self._frames and self.machine.is_streaming:
            self.inner.feed(*self._frames.popleft())


class _HoldingListener:
    """The inner recogniser's listener: passes results on, or holds them while down."""

    def __init__(self, link: DroppableRecognizer, listener: SttListener) -> None:
        self._link = link
        self._listener = listener

    def _pass(self, report: Callable[[], None]) -> None:
        if self._link.holding:
            self._link.hold(report)
        else:
            report()

    def on_speech_started(self, t_ms: int) -> None:
        self._pass(partial(self._listener.on_speech_started, t_ms))

    def on_recognizing(self, text: str) -> None:
        self._pass(partial(self._listener.on_recognizing, text))

    def on_committed(self, transcript: Transcript) -> None:
        self._pass(partial(self._listener.on_committed, transcript))

    def on_error(self, reason: str, fatal: bool) -> None:
        self._pass(partial(self._listener.on_error, reason, fatal))

    def on_state(self, state: str, detail: str) -> None:
        self._listener.on_state(state, detail)  # the recogniser's own life: as it happens


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
