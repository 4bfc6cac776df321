"""The caller's input, turned into the dialog event the conversation machine takes.

`CallerInput` owns what input the state takes: whether the recogniser (or keypad) is
on, whether this visit awaits an answer (a `listen`/`gather` ran: the noinput timer is
running), and the digits of a `gather`, collected until the finish key, the digit
count or the inter-digit timeout. It turns an utterance into an intent name or
`nomatch` (VoiceXML: speech nothing recognised is a nomatch, a blip too short to be
speech is not input at all) and digits into their handler's name, `digits` or
`nomatch`; which handler then runs is the machine's choice. Intent matching itself
is `conversation.intents`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.intents import grammar_phrases, match_intent
from fsm_voice.conversation.language import spec as sp
from fsm_voice.conversation.outbox import Outbox
from fsm_voice.conversation.scope import Scope

__all__ = [
    "INTERDIGIT_TIMER",
    "MIN_SPEECH_MS",
    "NOINPUT_TIMER",
    "CallerInput",
    "DigitCollector",
    "Playing",
    "listening_for",
    "without_words",
]

MIN_SPEECH_MS = 200  # an empty result shorter than this is noise, not a nomatch
NOINPUT_TIMER = "noinput"
INTERDIGIT_TIMER = "interdigit"

Playing = tuple[str, bool] | None  # (prompt id, bargein) of the prompt playing
Handled = Callable[[str], bool]  # whether the state (or a global handler) takes an event


def listening_for(state: sp.StateSpec) -> fx.StartListening | None:
    """What to tell the recogniser in `state`; None for DTMF only (nothing to tell)."""
    listen, gather = state.listen, state.gather
    if listen is None and (gather is None or gather.input == "dtmf"):
        return None
    intents = listen.intents if listen else ()
    phrases = grammar_phrases(intents, listen.hints if listen else ())
    # Keywords and hints are in the grammar; only regexes need open speech.
    free_form = not phrases or any(i.regexes for i in intents)
    return fx.StartListening(phrases, free_form, state.name)


def without_words(
    event: ev.TranscriptReceived,
) -> Literal["outside_grammar", "no_words", "noise"] | None:
    """Why an utterance has no words (None: it has some). The first two are a nomatch,
    whether the recogniser rejected it as outside the grammar or heard speech it could
    not put into words; "noise" (a click, a cough) is ignored."""
    if event.text.strip():
        return None
    if event.rejected:
        return "outside_grammar"
    return "no_words" if event.end_ms - event.start_ms >= MIN_SPEECH_MS else "noise"


class DigitCollector:
    """The digits of one `gather` entry."""

    def __init__(self) -> None:
        self._digits: list[str] = []

    def press(self, digit: str, gather: sp.Gather) -> bool:
        """Add `digit`; True when the entry is complete (finish key or enough digits)."""
        if gather.finish_on_key and digit == gather.finish_on_key:
            return True
        self._digits.append(digit)
        return gather.num_digits is not None and len(self._digits) >= gather.num_digits

    def take(self) -> str:
        """The digits entered (possibly none); the collector starts empty again."""
        digits, self._digits = "".join(self._digits), []
        return digits

    def clear(self) -> None:
        self._digits = []


class CallerInput:
    """What input the state takes, and what the caller's input is as a dialog event."""

    def __init__(self, settings: sp.Settings, out: Outbox, scope: Scope) -> None:
        self.listening = False  # the recogniser or the keypad is on in this state
        self.armed = False  # a listen/gather ran: this visit awaits an answer
        self._default_ms = settings.noinput_timeout_ms
        self._out = out
        self._scope = scope
        self._digits = DigitCollector()

    # --- what the state takes ---

    def enter(self, state: sp.StateSpec) -> None:
        self._digits.clear()
        self.armed = False
        if state.listen is None and state.gather is None:
            self.stop()
            return
        self.listening = True
        start = listening_for(state)
        if start is not None:
            self._out.emit(start)

    def stop(self) -> None:
        if self.listening:
            self.listening = False
            self._out.emit(fx.StopListening())

    def arm(self, timeout_ms: int | None) -> None:
        """Await an answer: the noinput timer starts now."""
        self.armed = True
        self._out.start_timer(NOINPUT_TIMER, timeout_ms or self._default_ms)

    def noinput_ms(self, state: sp.StateSpec) -> int:
        action = state.listen or state.gather
        timeout = action.timeout_ms if action is not None else None
        return timeout or self._default_ms

    def answered(self) -> None:
        """An answer (or its absence) is in: stop awaiting one."""
        self.armed = False
        self._out.cancel_timer(NOINPUT_TIMER)
        self._out.cancel_timer(INTERDIGIT_TIMER)

    # --- the caller's input ---

    def speech_started(self, playing: Playing) -> None:
        if not self.listening:
            return
        if playing is not None:
            prompt_id, bargein = playing
            if not bargein:
                return  # speech during a no-barge-in prompt is not input
            self._out.emit(fx.StopPrompt(prompt_id, "barge_in"))
        if self.armed:
            self._out.cancel_timer(NOINPUT_TIMER)  # the caller is talking: not a noinput

    def transcript(
        self,
        event: ev.TranscriptReceived,
        state: sp.StateSpec | None,
        playing: Playing,
        handled: Handled,
    ) -> str | None:
        """The dialog event an utterance is (an intent or `nomatch`), None if not input."""
        out = self._out
        if not self.listening or state is None:
            out.note("utterance_ignored", text=event.text, reason="not_listening")
            return None
        if playing is not None and not playing[1]:
            out.note("utterance_ignored", text=event.text, reason="prompt_without_bargein")
            return None
        empty = without_words(event)
        if empty == "noise":
            out.note("utterance_ignored", text=event.text, reason="empty")
            if self.armed:
                out.start_timer(NOINPUT_TIMER, self.noinput_ms(state))
            return None
        if empty is not None:
            out.note("intent_not_matched", text="", reason=empty)
            return "nomatch"
        variables = self._scope.variables
        variables["last_utterance"] = event.text
        found = match_intent(event.text, state.listen.intents if state.listen else ())
        if found is None:
            out.note("intent_not_matched", text=event.text)
            return "nomatch"
        variables["last_intent"] = found.intent
        variables.update(found.slots)
        out.note(
            "intent_matched",
            intent=found.intent,
            text=event.text,
            matched=found.matched,
            how=found.how,
            slots=found.slots,
        )
        if not handled(found.intent):
            out.note("intent_unhandled", intent=found.intent)
            return "nomatch"
        return found.intent

    def digit(
        self, digit: str, state: sp.StateSpec | None, playing: Playing, handled: Handled
    ) -> str | None:
        """The dialog event a key press completes, None while the entry goes on."""
        gather = state.gather if state else None
        if gather is None or gather.input == "speech" or not self.listening:
            self._out.note("digit_ignored", digit=digit)
            return None
        if playing is not None and playing[1]:
            self._out.emit(fx.StopPrompt(playing[0], "dtmf"))
        self._out.cancel_timer(NOINPUT_TIMER)
        if self._digits.press(digit, gather):
            return self.digits_done(gather, handled)
        self._out.start_timer(INTERDIGIT_TIMER, gather.inter_digit_timeout_ms)
        return None

    def digits_done(self, gather: sp.Gather, handled: Handled) -> str:
        """The entry is over: the digits' own handler (e.g. "1"), `digits` or `nomatch`."""
        self._out.cancel_timer(INTERDIGIT_TIMER)
        digits = self._digits.take()
        if not digits:
            return "nomatch"
        self._scope.variables[gather.variable] = digits
        self._scope.variables["digits"] = digits
        self._out.note("digits_collected", digits=digits, variable=gather.variable)
        # A handler named by the digits themselves (e.g. "1") wins over `digits`.
        return digits if handled(digits) else "digits"
