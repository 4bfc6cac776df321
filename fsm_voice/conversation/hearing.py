"""What the caller's input is, before the dialog decides what it means to the state.

The grammar a state's `listen`/`gather` gives the recogniser; what an utterance that
came back without words is (VoiceXML: speech nothing recognised is a nomatch, a blip
too short to be speech is not input at all); and the digits of a `gather`, collected
until the finish key, the digit count or the inter-digit timeout. Intent matching
itself is `conversation.intents`.
"""

from __future__ import annotations

from typing import Literal

from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation import spec as sp
from fsm_voice.conversation.intents import grammar_phrases

__all__ = ["MIN_SPEECH_MS", "DigitCollector", "listening_for", "without_words"]

MIN_SPEECH_MS = 200  # an empty result shorter than this is noise, not a nomatch


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
