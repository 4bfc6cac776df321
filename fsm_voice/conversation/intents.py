"""Matching a transcript against a listen state's intents.

Normalisation makes recogniser output and machine phrases comparable: lowercase,
punctuation dropped, whitespace collapsed. Phrases must equal the whole utterance;
keywords must appear as a whole-word run inside it; regexes search it (their named
groups become variables). Intents are tried in declaration order and, within one,
phrases before keywords before regexes, so the first declared intent wins a tie.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from fsm_voice.conversation.language.spec import Intent

_PUNCTUATION = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


@dataclass(frozen=True, slots=True)
class IntentMatch:
    intent: str
    matched: str  # the phrase, keyword or regex match that decided it
    how: str  # phrase | keyword | regex
    slots: dict[str, str] = field(default_factory=dict)


def match_intent(text: str, intents: Sequence[Intent]) -> IntentMatch | None:
    said = normalise(text)
    if not said:
        return None
    padded = f" {said} "
    for intent in intents:
        found = _match_one(said, padded, intent)
        if found is not None:
            return found
    return None


def _match_one(said: str, padded: str, intent: Intent) -> IntentMatch | None:
    for phrase in intent.phrases:
        if normalise(phrase) == said:
            return _with_slot(IntentMatch(intent.name, phrase, "phrase"), intent)
    for keyword in intent.keywords:
        if f" {normalise(keyword)} " in padded:
            return _with_slot(IntentMatch(intent.name, keyword, "keyword"), intent)
    for pattern in intent.regexes:
        hit = re.search(pattern, said)
        if hit is not None:
            groups = {k: v for k, v in hit.groupdict().items() if v is not None}
            return _with_slot(IntentMatch(intent.name, hit.group(0), "regex", groups), intent)
    return None


def _with_slot(found: IntentMatch, intent: Intent) -> IntentMatch:
    if intent.slot is None:
        return found
    return IntentMatch(
        found.intent, found.matched, found.how, found.slots | {intent.slot: found.matched}
    )


def grammar_phrases(intents: Sequence[Intent], hints: Sequence[str]) -> tuple[str, ...]:
    """Phrases a recogniser should expect: every phrase and keyword, plus hints."""
    seen: dict[str, None] = {}
    for intent in intents:
        for text in (*intent.phrases, *intent.keywords):
            seen.setdefault(normalise(text), None)
    for hint in hints:
        seen.setdefault(normalise(hint), None)
    return tuple(p for p in seen if p)
