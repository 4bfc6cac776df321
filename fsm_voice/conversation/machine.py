"""The conversation machine: a user's `machines/*.yaml`, run as a pure state machine.

Events in (`conversation.events`), effects out (`conversation.effects`); it never
awaits, reads a clock or touches a socket, so a recorded call replays exactly.

The user's states are the states of a `transitions` machine; every handler with a
`goto` is one of its edges (trigger `on:<event>`), global handlers are edges from
every state, and the fallback is an edge `fallback` from every state. Inside a state
an *action cursor* runs the entry actions in order: `say`/`play` block until their
prompt finished playing (marks echoed), `hook` blocks until it returns, `listen`/
`gather` arm input — the noinput timer starts only there, after the prompts before
it have played, so it never runs while the caller is still hearing the question.
Choosing a handler replaces whatever is left of the cursor with the handler's own
actions followed by its continuation (goto, reprompt or stay).

Dialog semantics follow VoiceXML: per-visit noinput/nomatch counters (reset on
entering a state, kept across reprompts); the handler with the highest `count` ≤ the
counter wins; no handler → reprompt. The global fallback is a hard cap: once the
failures (noinput + nomatch) of one visit reach `fallback.after`, it is taken.

The decisions are here; the transitions table, what the machine remembers and the
primitive ways it acts are in `conversation.machine_core`.
"""

from __future__ import annotations

from typing import Any

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation import spec as sp
from fsm_voice.conversation.expr import ExprError, compile_expr
from fsm_voice.conversation.intents import grammar_phrases, match_intent
from fsm_voice.conversation.loops import Loop
from fsm_voice.conversation.machine_core import (
    ENDED,
    START,
    Continue,
    CursorStep,
    MachineCore,
    TakeFallback,
)

__all__ = ["ENDED", "START", "ConversationMachine"]

NOINPUT_TIMER = "noinput"
INTERDIGIT_TIMER = "interdigit"
_FAILURE_EVENTS = ("noinput", "nomatch")
MIN_SPEECH_MS = 200  # an empty result shorter than this is noise, not a nomatch


class ConversationMachine(MachineCore):
    """The dialog decisions; what they read and write is in `MachineCore`."""

    # --- the one entry point ---

    def handle(self, event: ev.ConversationEvent) -> list[fx.ConversationEffect]:
        self._out = []
        if self.ended:
            self._note("event_ignored", event=event.kind, reason="conversation_ended")
            return self._out
        self._loops.observe(event)
        match event:
            case ev.CallConnected(variables=variables):
                self.variables.update(variables)
                self._fire("on:__start__", None, "__start__")
            case ev.PromptFinished():
                self._on_prompt_finished(event)
            case ev.SpeechStarted():
                self._on_speech_started()
            case ev.TranscriptReceived():
                self._on_transcript(event)
            case ev.DigitPressed(digit=digit):
                self._on_digit(digit)
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
                self._note("event_ignored", event=event.kind, reason="unknown")
        return self._out

    # --- entering states and running actions ---

    def _fire(self, trigger: str, handler: sp.Handler | None, event: str) -> None:
        step = self._m.fire(trigger, handler)
        if not step.accepted:
            self._note("transition_rejected", trigger=trigger, state=step.source)
            return
        self._note("state_entered", state=step.dest, previous=step.source, event=event)
        if step.dest == ENDED:
            return
        self._enter()

    def _enter(self) -> None:
        state = self.current
        assert state is not None
        self._cancel_timers()
        self._visit += 1
        self.noinput_count = self.nomatch_count = self.attempt = 0
        self._digits = []
        self._input_armed = False
        self._queue.clear()
        takes_input = state.listen is not None or state.gather is not None
        if takes_input:
            self._start_listening(state)
        elif self._listening:
            self._listening = False
            self._emit(fx.StopListening())
        self._run_state_actions(state)

    def _start_listening(self, state: sp.StateSpec) -> None:
        listen, gather = state.listen, state.gather
        speech = listen is not None or (gather is not None and gather.input != "dtmf")
        if not speech:
            self._listening = True  # dtmf only: nothing to tell the recogniser
            return
        intents = listen.intents if listen else ()
        phrases = grammar_phrases(intents, listen.hints if listen else ())
        # Keywords and hints are in the grammar; only regexes need open speech.
        free_form = not phrases or any(i.regexes for i in intents)
        self._listening = True
        self._emit(fx.StartListening(phrases, free_form, state.name))

    def _run_state_actions(self, state: sp.StateSpec) -> None:
        self.attempt += 1
        self._sync_counters()
        self._queue.extend(state.actions)
        self._advance()

    def _advance(self) -> None:
        while self._queue and self._blocked_on is None and not self.ended:
            self._run(self._queue.popleft())
        if self._queue or self._blocked_on is not None or self.ended or self._input_armed:
            return
        state = self.current
        if state is None:
            return
        if state.listen is None and state.gather is None:
            self._state_done(state)

    def _state_done(self, state: sp.StateSpec) -> None:
        if self._handler_for("done") is not None:
            self._take("done")
        elif state.final:
            self._end(fx.HangupCall("completed"))
        else:
            self._note("state_idle", state=state.name)

    def _run(self, step: CursorStep) -> None:
        bargein = self._bargein()
        match step:
            case sp.Say(prompts=prompts):
                prompt_id = f"p{next(self._ids)}"
                text = self._render(_pick_prompt(prompts, self.attempt).text)
                self._play(prompt_id, bargein, fx.Speak(prompt_id, text, bargein))
            case sp.Play(path=path):
                prompt_id = f"p{next(self._ids)}"
                self._play(prompt_id, bargein, fx.PlayFile(prompt_id, path, bargein))
            case sp.Listen(timeout_ms=timeout_ms) | sp.Gather(timeout_ms=timeout_ms):
                self._input_armed = True
                self._start_timer(
                    NOINPUT_TIMER, timeout_ms or self.spec.settings.noinput_timeout_ms
                )
            case sp.Set():
                self._apply_set(step)
            case sp.Hook(target=target, timeout_ms=timeout_ms):
                call_id = next(self._ids)
                self._blocked_on = f"h{call_id}"
                self._emit(fx.CallHook(call_id, target, timeout_ms, self.context()))
            case sp.Sms(to=to, body=body):
                self._emit(fx.SendSms(next(self._ids), self._render(to), self._render(body)))
            case sp.Transfer(to=to):
                self._end(fx.TransferCall(next(self._ids), self._render(to)))
            case sp.Hangup(reason=reason):
                self._end(fx.HangupCall(reason))
            case sp.StartTimer(name=name, after_ms=after_ms):
                self._start_timer(name, after_ms)
            case Continue(handler=handler):
                self._continue(handler)
            case TakeFallback(fallback=fallback):
                self._note("fallback_taken", after=fallback.after, goto=fallback.goto)
                self._fire("fallback", None, "fallback")

    def _play(self, prompt_id: str, bargein: bool, effect: fx.ConversationEffect) -> None:
        self._blocked_on = prompt_id
        self._prompt = (prompt_id, bargein)
        self._emit(effect)

    def _continue(self, handler: sp.Handler) -> None:
        state = self.current
        if handler.goto is not None:
            self._fire(f"on:{handler.event}", handler, handler.event)
        elif handler.reprompt and state is not None:
            self._input_armed = False
            self._run_state_actions(state)
        elif state is not None and (state.listen or state.gather):
            self._input_armed = True  # stay: listen again
            self._start_timer(NOINPUT_TIMER, self._noinput_ms(state))

    # --- inputs ---

    def _on_prompt_finished(self, event: ev.PromptFinished) -> None:
        if self._prompt is not None and self._prompt[0] == event.prompt_id:
            self._prompt = None
        if self._blocked_on == event.prompt_id:
            self._blocked_on = None
            self._advance()

    def _on_speech_started(self) -> None:
        if not self._listening:
            return
        if self._prompt is not None:
            prompt_id, bargein = self._prompt
            if not bargein:
                return  # speech during a no-barge-in prompt is not input
            self._emit(fx.StopPrompt(prompt_id, "barge_in"))
        if self._input_armed:
            self._cancel_timer(NOINPUT_TIMER)  # the caller is talking: not a noinput

    def _on_transcript(self, event: ev.TranscriptReceived) -> None:
        state = self.current
        if not self._listening or state is None:
            self._note("utterance_ignored", text=event.text, reason="not_listening")
            return
        if self._prompt is not None and not self._prompt[1]:
            self._note("utterance_ignored", text=event.text, reason="prompt_without_bargein")
            return
        # VoiceXML: speech that nothing recognised is a nomatch, whether the recogniser
        # rejected it as outside the grammar or returned no words; only a blip too
        # short to be speech (a click, a cough) is ignored.
        spoke_ms = event.end_ms - event.start_ms
        if not event.text.strip() and (event.rejected or spoke_ms >= MIN_SPEECH_MS):
            reason = "outside_grammar" if event.rejected else "no_words"
            self._note("intent_not_matched", text="", reason=reason)
            self._input_event("nomatch")
            return
        if not event.text.strip():
            self._note("utterance_ignored", text=event.text, reason="empty")
            if self._input_armed:
                self._start_timer(NOINPUT_TIMER, self._noinput_ms(state))
            return
        self.variables["last_utterance"] = event.text
        intents = state.listen.intents if state.listen else ()
        found = match_intent(event.text, intents)
        if found is None:
            self._note("intent_not_matched", text=event.text)
            self._input_event("nomatch")
            return
        self.variables["last_intent"] = found.intent
        self.variables.update(found.slots)
        self._note(
            "intent_matched",
            intent=found.intent,
            text=event.text,
            matched=found.matched,
            how=found.how,
            slots=found.slots,
        )
        if self._handler_for(found.intent) is None:
            self._note("intent_unhandled", intent=found.intent)
            self._input_event("nomatch")
        else:
            self._input_event(found.intent)

    def _on_digit(self, digit: str) -> None:
        state = self.current
        gather = state.gather if state else None
        if gather is None or gather.input == "speech" or not self._listening:
            self._note("digit_ignored", digit=digit)
            return
        if self._prompt is not None and self._prompt[1]:
            self._emit(fx.StopPrompt(self._prompt[0], "dtmf"))
        self._cancel_timer(NOINPUT_TIMER)
        if gather.finish_on_key and digit == gather.finish_on_key:
            self._digits_done(gather)
            return
        self._digits.append(digit)
        if gather.num_digits is not None and len(self._digits) >= gather.num_digits:
            self._digits_done(gather)
        else:
            self._start_timer(INTERDIGIT_TIMER, gather.inter_digit_timeout_ms)

    def _digits_done(self, gather: sp.Gather) -> None:
        self._cancel_timer(INTERDIGIT_TIMER)
        digits = "".join(self._digits)
        self._digits = []
        if not digits:
            self._input_event("nomatch")
            return
        self.variables[gather.variable] = digits
        self.variables["digits"] = digits
        self._note("digits_collected", digits=digits, variable=gather.variable)
        # A handler named by the digits themselves (e.g. "1") wins over `digits`.
        self._input_event(digits if self._handler_for(digits) is not None else "digits")

    def _on_timer(self, name: str, token: int) -> None:
        if self._timers.get(name) != token:
            self._note("timer_ignored", name=name, reason="stale")
            return
        del self._timers[name]
        state = self.current
        if name == NOINPUT_TIMER:
            if self._input_armed:
                self._input_event("noinput")
        elif name == INTERDIGIT_TIMER and state is not None and state.gather is not None:
            self._digits_done(state.gather)
        else:
            self._take(name)

    def _on_hook_returned(self, event: ev.HookReturned) -> None:
        if self._blocked_on != f"h{event.call_id}":
            self._note("hook_result_ignored", call_id=event.call_id)
            return
        self._blocked_on = None
        if event.variables:
            self.variables.update(event.variables)
            self._note("variables_set", values=dict(event.variables))
        if event.event:
            self._take(event.event)
        else:
            self._advance()

    def _on_hangup(self, reason: str) -> None:
        handler = self._handler_for("hangup")
        if handler is not None:
            self._note("handler_selected", **_describe(handler))
            for action in handler.actions:  # the caller is gone: only silent actions
                if isinstance(action, sp.Set | sp.Sms | sp.Hook):
                    self._run(action)
            if handler.goto is not None:
                self._m.fire("on:hangup", handler)
                self._note("state_entered", state=handler.goto, previous="", event="hangup")
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
        self._note("loop_detected", **loop.details())
        self._end(fx.HangupCall("loop_detected"))

    # --- choosing handlers ---

    def _input_event(self, name: str) -> None:
        self._input_armed = False
        self._cancel_timer(NOINPUT_TIMER)
        self._cancel_timer(INTERDIGIT_TIMER)
        if name in _FAILURE_EVENTS:
            self._failure(name)
        else:
            self._take(name)

    def _failure(self, name: str) -> None:
        if name == "noinput":
            self.noinput_count += 1
        else:
            self.nomatch_count += 1
        count = self.noinput_count if name == "noinput" else self.nomatch_count
        self._sync_counters()
        self._note("counter_changed", counter=name, value=count)
        fallback = self.spec.fallback
        if fallback is not None and self.noinput_count + self.nomatch_count >= fallback.after:
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
            self._note("event_unhandled", event=name, state=self.state)

    def _handler_for(self, name: str) -> sp.Handler | None:
        count = {"noinput": self.noinput_count, "nomatch": self.nomatch_count}.get(name, 1)
        return self._select(name, count)

    def _select(self, name: str, count: int) -> sp.Handler | None:
        state = self.current
        local = state.handlers_for(name) if state else ()
        for candidates in (local, tuple(h for h in self.spec.global_handlers if h.event == name)):
            best: sp.Handler | None = None
            for handler in candidates:
                if handler.count > count or not self._condition(handler):
                    continue
                if best is None or handler.count > best.count:
                    best = handler
            if best is not None:
                return best
        return None

    def _condition(self, handler: sp.Handler) -> bool:
        if handler.when is None:
            return True
        try:
            return bool(compile_expr(handler.when).evaluate(self.context()))
        except ExprError as error:
            self._note("condition_failed", when=handler.when, error=str(error))
            return False

    def _apply(self, handler: sp.Handler) -> None:
        loop = self._loops.selected(self.state, handler)
        if loop is not None:
            self._loop_detected(loop)
            return
        self._note("handler_selected", **_describe(handler))
        self._replace_queue([*handler.actions, Continue(handler)])

    def _replace_queue(self, steps: list[CursorStep]) -> None:
        self._queue.clear()
        self._queue.extend(steps)
        self._advance()


def _pick_prompt(prompts: tuple[sp.Prompt, ...], attempt: int) -> sp.Prompt:
    eligible = [p for p in prompts if p.count <= attempt] or [prompts[0]]
    return max(eligible, key=lambda p: p.count)


def _describe(handler: sp.Handler) -> dict[str, Any]:
    return {
        "event": handler.event,
        "goto": handler.goto,
        "count": handler.count,
        "when": handler.when,
        "reprompt": handler.reprompt,
        "line": handler.source.line if handler.source else None,
    }
