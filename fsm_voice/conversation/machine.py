"""The conversation machine: a user's `machines/*.yaml`, run as a pure state machine.

Events in (`conversation.events`), effects out (`conversation.effects`); it never
awaits, reads a clock or touches a socket, so a recorded call replays exactly.

One interpreter over the immutable spec. The machine is in one of the user's states,
or in `__start__` (before the call connected) or `__ended__`. Inside a state an
*action cursor* runs the entry actions in order: `say`/`play` block until their
prompt finished playing (marks echoed), `hook` blocks until it returns, `listen`/
`gather` arm input — the noinput timer starts only there, after the prompts before
it have played, so it never runs while the caller is still hearing the question.
Choosing a handler replaces whatever is left of the cursor with the handler's own
actions followed by its continuation (goto, reprompt or stay).

Dialog semantics follow VoiceXML: per-visit noinput/nomatch counters (reset on
entering a state, kept across reprompts); the handler with the highest `count` ≤ the
counter wins (`conversation.selection`); no handler → reprompt. The global fallback is
a hard cap: once the failures (noinput + nomatch) of one visit reach `fallback.after`,
it is taken.

The machine is one class made of plain parts: `outbox.Outbox` (effects, ids, timers),
`scope.Scope` (variables, counters, conditions), `hearing.CallerInput` (the caller's
speech and keys as a dialog event) and `selection` (which handler an event runs).

There is no separate transitions table: the handler chosen is the move (see
docs/design.md, "The conversation machine"). Two rules remain, in `_move`: before the
call connected only the start and the end can happen, and the start happens once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.hearing import INTERDIGIT_TIMER, NOINPUT_TIMER, CallerInput
from fsm_voice.conversation.language import spec as sp
from fsm_voice.conversation.loops import Loop, LoopGuard
from fsm_voice.conversation.outbox import Outbox
from fsm_voice.conversation.scope import Scope
from fsm_voice.conversation.selection import (
    Continue,
    CursorStep,
    TakeFallback,
    describe,
    pick_prompt,
    select_handler,
)
from fsm_voice.driver import Move
from fsm_voice.machine import Step

__all__ = ["ENDED", "START", "ConversationMachine", "move_of"]

START = "__start__"
ENDED = "__ended__"
_FAILURE_EVENTS = ("noinput", "nomatch")


class ConversationMachine:
    """One conversation: the state, what it remembers, and the dialog decisions."""

    def __init__(self, spec: sp.MachineSpec) -> None:
        self.spec = spec
        self.ended = False
        self.state = START
        self._out = Outbox()
        self._scope = Scope(spec.variables, self._out)
        # The action cursor: what is left to run, and the prompt or hook it waits for.
        self._queue: deque[CursorStep] = deque()
        self._blocked_on: str | None = None  # a prompt id or hook id
        self._prompt: tuple[str, bool] | None = None  # (prompt id, bargein) while playing
        self._input = CallerInput(spec.settings, self._out, self._scope)
        self._loops = LoopGuard()  # ends a conversation that goes round without progress

    @property
    def current(self) -> sp.StateSpec | None:
        return self.spec.states.get(self.state)

    @property
    def variables(self) -> dict[str, Any]:
        return self._scope.variables

    @property
    def noinput_count(self) -> int:
        return self._scope.noinput_count

    @property
    def nomatch_count(self) -> int:
        return self._scope.nomatch_count

    @property
    def attempt(self) -> int:
        return self._scope.attempt

    def context(self) -> dict[str, Any]:
        """The variables a template, condition or hook sees."""
        return self._scope.context(self.state)

    # --- the one entry point ---

    def fire(self, event: ev.ConversationEvent) -> Step[fx.ConversationEffect]:
        """`handle` as a `Step`, for the `MachineDriver`.

        One event may pass through several states (a goto, then the end), so the moves
        are the `state_entered` notes among the effects (`move_of` reads them) rather
        than the step's source → dest. Nothing is refused: an event the machine cannot
        take is noted `event_ignored`.
        """
        source = self.state
        effects = self.handle(event)
        return Step(event.kind, source, self.state, True, tuple(effects))

    def handle(self, event: ev.ConversationEvent) -> list[fx.ConversationEffect]:
        self._out.take()
        if self.ended:
            self._out.note("event_ignored", event=event.kind, reason="conversation_ended")
            return self._out.take()
        self._loops.observe(event)
        match event:
            case ev.CallConnected(variables=variables):
                self.variables.update(variables)
                self._move("on:__start__", self.spec.initial, "__start__")
            case ev.PromptFinished():
                self._on_prompt_finished(event)
            case ev.SpeechStarted():
                self._input.speech_started(self._prompt)
            case ev.TranscriptReceived():
                heard = self._input.transcript(event, self.current, self._prompt, self._handled)
                self._input_event(heard)
            case ev.DigitPressed(digit=digit):
                pressed = self._input.digit(digit, self.current, self._prompt, self._handled)
                self._input_event(pressed)
            case ev.TimerFired(name=name, token=token):
                self._on_timer(name, token)
            case ev.HookReturned():
                self._on_hook_returned(event)
            case ev.HookFailed(call_id=call_id, reason=reason):
                if self._blocked_on == f"h{call_id}":
                    self._blocked_on = None
                self._error(reason)
            case ev.CallerHungUp(reason=reason):
                self._on_hangup(reason)
            case ev.ProviderFailed(provider=provider, reason=reason):
                self._error(f"{provider}: {reason}")
            case ev.AnsweringMachineDetected(answered_by=answered_by):
                self.variables["answered_by"] = answered_by
                self._take(event.event)
            case ev.ActionCompleted():
                pass  # the result is in the log as the event itself
            case _:
                self._out.note("event_ignored", event=event.kind, reason="unknown")
        return self._out.take()

    # --- entering states ---

    def _move(self, trigger: str, dest: str, event: str) -> None:
        source = self.state
        # The start happens once, from __start__; handlers and the fallback only run
        # in a user's state (a global handler chosen before the call connected is not).
        if (source == START) != (trigger == "on:__start__") or source == ENDED:
            self._out.note("transition_rejected", trigger=trigger, state=source)
            return
        self.state = dest
        self._out.note("state_entered", **_entered(dest, source, event))
        self._enter()

    def _enter(self) -> None:
        state = self.current
        assert state is not None
        self._out.cancel_timers()
        self._scope.new_visit()
        self._queue.clear()
        self._input.enter(state)
        self._run_state_actions(state)

    def _end(self, effect: fx.ConversationEffect | None, reason: str = "") -> None:
        self._out.cancel_timers()
        if self._prompt is not None and effect is None:
            self._prompt = None
        self._queue.clear()
        self._input.stop()
        if effect is not None:
            self._out.emit(effect)
        self.ended = True
        previous, self.state = self.state, ENDED
        self._out.note("conversation_ended", state=previous, reason=reason or _reason(effect))

    # --- the action cursor ---

    def _run_state_actions(self, state: sp.StateSpec) -> None:
        self._scope.next_attempt()
        self._queue.extend(state.actions)
        self._advance()

    def _replace_queue(self, steps: list[CursorStep]) -> None:
        self._queue.clear()
        self._queue.extend(steps)
        self._advance()

    def _advance(self) -> None:
        while self._queue and self._blocked_on is None and not self.ended:
            self._run(self._queue.popleft())
        if self._queue or self._blocked_on is not None or self.ended or self._input.armed:
            return
        state = self.current
        if state is not None and state.listen is None and state.gather is None:
            self._state_done(state)

    def _state_done(self, state: sp.StateSpec) -> None:
        if self._handler_for("done") is not None:
            self._take("done")
        elif state.final:
            self._end(fx.HangupCall("completed"))
        else:
            self._out.note("state_idle", state=state.name)

    def _run(self, step: CursorStep) -> None:
        out = self._out
        bargein = self._bargein()
        match step:
            case sp.Say(prompts=prompts):
                prompt_id = f"p{out.next_id()}"
                text = self._render(pick_prompt(prompts, self.attempt).text)
                self._play(prompt_id, bargein, fx.Speak(prompt_id, text, bargein))
            case sp.Play(path=path):
                prompt_id = f"p{out.next_id()}"
                self._play(prompt_id, bargein, fx.PlayFile(prompt_id, path, bargein))
            case sp.Listen(timeout_ms=timeout_ms) | sp.Gather(timeout_ms=timeout_ms):
                self._input.arm(timeout_ms)
            case sp.Set():
                self._scope.apply_set(step, self.state)
            case sp.Hook(target=target, timeout_ms=timeout_ms):
                call_id = out.next_id()
                self._blocked_on = f"h{call_id}"
                out.emit(fx.CallHook(call_id, target, timeout_ms, self.context()))
            case sp.Sms(to=to, body=body):
                out.emit(fx.SendSms(out.next_id(), self._render(to), self._render(body)))
            case sp.Transfer(to=to):
                self._end(fx.TransferCall(out.next_id(), self._render(to)))
            case sp.Hangup(reason=reason):
                self._end(fx.HangupCall(reason))
            case sp.StartTimer(name=name, after_ms=after_ms):
                out.start_timer(name, after_ms)
            case Continue(handler=handler):
                self._continue(handler)
            case TakeFallback(fallback=fallback):
                out.note("fallback_taken", after=fallback.after, goto=fallback.goto)
                self._move("fallback", fallback.goto, "fallback")

    def _play(self, prompt_id: str, bargein: bool, effect: fx.ConversationEffect) -> None:
        self._blocked_on = prompt_id
        self._prompt = (prompt_id, bargein)
        self._out.emit(effect)

    def _continue(self, handler: sp.Handler) -> None:
        state = self.current
        if handler.goto is not None:
            self._move(f"on:{handler.event}", handler.goto, handler.event)
        elif handler.reprompt and state is not None:
            self._input.armed = False
            self._run_state_actions(state)
        elif state is not None and (state.listen or state.gather):
            self._input.arm(self._input.noinput_ms(state))  # stay: listen again

    def _render(self, text: str) -> str:
        return self._scope.render(text, self.state)

    def _bargein(self) -> bool:
        state = self.current
        if state is not None and state.bargein is not None:
            return state.bargein
        return self.spec.settings.bargein

    # --- inputs ---

    def _on_prompt_finished(self, event: ev.PromptFinished) -> None:
        if self._prompt is not None and self._prompt[0] == event.prompt_id:
            self._prompt = None
        if self._blocked_on == event.prompt_id:
            self._blocked_on = None
            self._advance()

    def _on_timer(self, name: str, token: int) -> None:
        if not self._out.timer_fired(name, token):
            self._out.note("timer_ignored", name=name, reason="stale")
            return
        state = self.current
        if name == NOINPUT_TIMER:
            self._input_event("noinput" if self._input.armed else None)
        elif name == INTERDIGIT_TIMER and state is not None and state.gather is not None:
            self._input_event(self._input.digits_done(state.gather, self._handled))
        else:
            self._take(name)

    def _on_hook_returned(self, event: ev.HookReturned) -> None:
        if self._blocked_on != f"h{event.call_id}":
            self._out.note("hook_result_ignored", call_id=event.call_id)
            return
        self._blocked_on = None
        if event.variables:
            self.variables.update(event.variables)
            self._out.note("variables_set", values=dict(event.variables))
        if event.event:
            self._take(event.event)
        else:
            self._advance()

    def _on_hangup(self, reason: str) -> None:
        handler = self._handler_for("hangup")
        if handler is not None:
            self._out.note("handler_selected", **describe(handler))
            for action in handler.actions:  # the caller is gone: only silent actions
                if isinstance(action, sp.Set | sp.Sms | sp.Hook):
                    self._run(action)
            if handler.goto is not None:
                if self.state != START:  # a global handler does not run before the start
                    self.state = handler.goto
                self._out.note("state_entered", **_entered(handler.goto, "", "hangup"))
        self._end(None, reason)

    def _error(self, reason: str) -> None:
        self.variables["error"] = reason
        # Before the call connected no handler can run: a provider that failed to start
        # is counted when its first prompt fails, not twice.
        if self.state == START:
            self._take("error")
            return
        loop = self._loops.error(self.state, lambda: self._handler_for("error"))
        if loop is None:
            self._take("error")
        else:
            self._loop_detected(loop)

    def _loop_detected(self, loop: Loop) -> None:
        self._out.note("loop_detected", **loop.details())
        self._end(fx.HangupCall("loop_detected"))

    # --- choosing handlers ---

    def _input_event(self, name: str | None) -> None:
        """The caller's input (or its absence) is the dialog event `name` (None: not input)."""
        if name is None:
            return
        self._input.answered()
        if name in _FAILURE_EVENTS:
            self._failure(name)
        else:
            self._take(name)

    def _failure(self, name: str) -> None:
        count = self._scope.count_failure(name)
        self._out.note("counter_changed", counter=name, value=count)
        fallback = self.spec.fallback
        if fallback is not None and self._scope.failures >= fallback.after:
            self._replace_queue([TakeFallback(fallback)])
            return
        handler = self._select(name, count)
        if handler is None:
            handler = sp.Handler(event=name, goto=None, reprompt=True)  # VoiceXML's default
        self._apply(handler)

    def _take(self, name: str) -> None:
        handler = self._handler_for(name)
        if handler is not None:
            self._apply(handler)
        elif name == "error":
            self._end(fx.HangupCall("error"))
        else:
            self._out.note("event_unhandled", event=name, state=self.state)

    def _handled(self, name: str) -> bool:
        return self._handler_for(name) is not None

    def _handler_for(self, name: str) -> sp.Handler | None:
        return self._select(name, self._scope.count_for(name))

    def _select(self, name: str, count: int) -> sp.Handler | None:
        def holds(handler: sp.Handler) -> bool:
            return self._scope.holds(handler, self.state)

        return select_handler(self.spec, self.current, name, count, holds)

    def _apply(self, handler: sp.Handler) -> None:
        loop = self._loops.selected(self.state, handler)
        if loop is not None:
            self._loop_detected(loop)
            return
        self._out.note("handler_selected", **describe(handler))
        self._replace_queue([*handler.actions, Continue(handler)])


def _reason(effect: fx.ConversationEffect | None) -> str:
    if isinstance(effect, fx.HangupCall):
        return effect.reason
    if isinstance(effect, fx.TransferCall):
        return "transferred"
    return "ended"


def _entered(state: str, left: str, on: str) -> dict[str, Any]:
    """A `state_entered` note (v2, as every machine logs it: `from` is a keyword)."""
    return {"machine": "conversation", "state": state, "from": left, "on": on}


def move_of(effect: fx.ConversationEffect) -> Move | None:
    """The move a `state_entered` note stands for (None: any other effect)."""
    if type(effect) is not fx.Note or effect.note_kind != "state_entered":
        return None
    moved = effect.details
    return Move(moved["state"], moved["from"], moved["on"])
