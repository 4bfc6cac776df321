"""The caller's input before the dialog: empty utterances and gather digits."""

from __future__ import annotations

import pytest

from fsm_voice.conversation import events as ev
from fsm_voice.conversation.hearing import MIN_SPEECH_MS, DigitCollector, without_words
from fsm_voice.conversation.language.spec import Gather, Source


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (ev.TranscriptReceived("yes", end_ms=10), None),
        (ev.TranscriptReceived("  ", end_ms=5000, rejected=True), "outside_grammar"),
        (ev.TranscriptReceived("", end_ms=MIN_SPEECH_MS), "no_words"),
        (ev.TranscriptReceived("", end_ms=MIN_SPEECH_MS - 1), "noise"),
        (ev.TranscriptReceived("", start_ms=1000, end_ms=1100), "noise"),
    ],
)
def test_an_utterance_without_words_is_a_nomatch_unless_it_is_too_short(
    event: ev.TranscriptReceived, expected: str | None
) -> None:
    assert without_words(event) == expected


def gather(num_digits: int | None, finish_on_key: str = "#") -> Gather:
    return Gather(num_digits, finish_on_key, 3000, None, "dtmf", "digits", Source("t.yaml", 1))


def test_digits_complete_on_the_count_or_the_finish_key_which_is_not_kept() -> None:
    digits = DigitCollector()
    assert [digits.press(d, gather(3)) for d in "123"] == [False, False, True]
    assert digits.take() == "123" and digits.take() == ""
    assert [digits.press(d, gather(None)) for d in "42#"] == [False, False, True]
    assert digits.take() == "42"
    assert digits.press("#", gather(None, finish_on_key="")) is False  # no finish key
    digits.clear()
    assert digits.take() == ""
