"""`parse_message` against anything a peer can send: it returns a message or a
`Violation`, never raises, and never quotes a whole hostile value back."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm_voice.twilio.media_streams import (
    MAX_COUNTER,
    Envelope,
    Media,
    Violation,
    parse_message,
)
from tests.hostile_messages import (
    STREAM_SID,
    hostile_message,
    mutated_message,
    nesting,
    valid_messages,
)

MAX_DETAIL_CHARS = 400


def check(message: str | bytes) -> Media | Envelope | Violation:
    parsed = parse_message(message)
    assert type(parsed) in (Media, Envelope, Violation)
    if isinstance(parsed, Violation):
        assert re.fullmatch(r"[a-z0-9_]+", parsed.reason)
        assert len(parsed.detail) <= MAX_DETAIL_CHARS
    if isinstance(parsed, Media):
        for number in (parsed.sequence_number, parsed.chunk, parsed.timestamp_ms):
            assert number is None or 0 <= number <= MAX_COUNTER
    return parsed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_message())
def test_any_message_parses_to_a_message_or_a_violation(message: str | bytes) -> None:
    check(message)


@settings(max_examples=200, deadline=None)
@given(mutated_message())
def test_a_valid_message_with_one_hostile_field_never_raises(message: str) -> None:
    check(message)


def media(**fields: str) -> str:
    """A media message whose named fields are raw JSON text."""
    parts = {"sequenceNumber": '"3"', "chunk": '"2"', "timestamp": '"20"', **fields}
    return (
        f'{{"event":"media","sequenceNumber":{parts["sequenceNumber"]},'
        f'"streamSid":"{STREAM_SID}","media":{{"track":"inbound","chunk":{parts["chunk"]},'
        f'"timestamp":{parts["timestamp"]},"payload":"AAAA"}}}}'
    )


NON_FINITE = ["1e999", "-1e999", "Infinity", "-Infinity", "NaN"]


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize("field", ["sequenceNumber", "chunk", "timestamp"])
def test_a_non_finite_number_is_a_violation(field: str, number: str) -> None:
    parsed = check(media(**{field: number}))
    assert parsed == Violation("non_finite_number", parsed.detail)  # type: ignore[union-attr]


@pytest.mark.parametrize("number", NON_FINITE)
def test_a_non_finite_number_anywhere_is_a_violation(number: str) -> None:
    mark = f'{{"event":"mark","streamSid":"{STREAM_SID}","mark":{{"name":"m","x":[{number}]}}}}'
    assert check(mark) == Violation("non_finite_number", check(mark).detail)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "number", ["-1", str(MAX_COUNTER + 1), "9" * 4000, '"-5"', '"' + "9" * 4000 + '"', "1e300"]
)
def test_a_number_out_of_range_is_a_bad_field(number: str) -> None:
    parsed = check(media(chunk=number))
    assert isinstance(parsed, Violation) and parsed.reason == "bad_field"


def test_a_number_with_more_digits_than_python_reads_is_invalid_json() -> None:
    parsed = check(media(sequenceNumber="9" * 5000))
    assert isinstance(parsed, Violation) and parsed.reason == "invalid_json"


@pytest.mark.parametrize("opener", ["[", "{"])
def test_nesting_past_the_recursion_limit_is_a_violation(opener: str) -> None:
    parsed = check(nesting(40_000, opener))  # within the size cap
    assert parsed == Violation("too_deeply_nested", parsed.detail)  # type: ignore[union-attr]


def test_nesting_within_the_recursion_limit_but_past_twilios_is_a_violation() -> None:
    params = '{"deep":' + nesting(900) + "}"
    start = (
        f'{{"event":"start","streamSid":"{STREAM_SID}",'
        f'"start":{{"streamSid":"{STREAM_SID}","customParameters":{params}}}}}'
    )
    parsed = check(start)
    assert isinstance(parsed, Violation) and parsed.reason == "too_deeply_nested"


def test_deep_nesting_inside_media_is_ignored_like_any_unknown_field() -> None:
    text = media()[:-2] + ',"extra":' + nesting(900) + "}}"
    parsed = check(text)
    assert isinstance(parsed, Media) and parsed.payload == b"\x00\x00\x00"


def test_an_object_where_a_parameter_value_belongs_is_a_bad_field() -> None:
    message = valid_messages()[1]
    message["start"]["customParameters"] = {"From": {"nested": [1]}}
    parsed = check(json.dumps(message))
    assert isinstance(parsed, Violation) and parsed.reason == "bad_field"


def test_a_message_past_the_size_cap_is_a_violation_without_being_decoded() -> None:
    parsed = check(media(chunk='"' + "1" * 300_000 + '"'))
    assert isinstance(parsed, Violation) and parsed.reason == "message_too_large"
    assert parse_message(media(), max_chars=100) == Violation(
        "message_too_large", f"{len(media())} characters (max 100)"
    )


def test_a_huge_hostile_value_is_shown_cut_short() -> None:
    parsed = check('{"event": ["' + "x" * 100_000 + '"]}')
    assert isinstance(parsed, Violation) and parsed.reason == "unknown_event"


def test_lone_surrogates_are_valid_input() -> None:
    # Twilio echoes a mark's name as we sent it; json.dumps wrote ours with \u escapes.
    parsed = check(json.dumps({"event": "mark", "mark": {"name": "\ud800"}}))
    assert isinstance(parsed, Envelope) and parsed.event.data() == {"name": "\ud800"}


@given(st.sampled_from(valid_messages()))
def test_every_valid_message_still_parses(message: dict[str, object]) -> None:
    assert not isinstance(check(json.dumps(message)), Violation)
