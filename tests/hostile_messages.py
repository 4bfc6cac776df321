"""Hypothesis strategies for what a hostile peer can send on `/voice`.

Valid Media Streams messages with one field swapped for something Twilio never sends
(non-finite or huge numbers, lone surrogates, deep nesting, the wrong type), raw text
edits of valid messages, any text, any bytes. Numbers such as `1e999` have no Python
value that `json.dumps` writes, so they go in as raw JSON text.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

STREAM_SID = "MZ00000000000000000000000000000000"
FRAME = base64.b64encode(b"\x7f" * 160).decode()
_RAW = "\x00RAW\x00"  # a placeholder string, swapped for raw JSON text after dumps


def valid_messages() -> list[dict[str, Any]]:
    """One of each message Twilio sends, as a peer would send them mid-call."""
    return [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": STREAM_SID,
            "start": {
                "streamSid": STREAM_SID,
                "callSid": "CA0",
                "accountSid": "AC0",
                "tracks": ["inbound"],
                "customParameters": {"From": "+15550001111"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        },
        {
            "event": "media",
            "sequenceNumber": "3",
            "streamSid": STREAM_SID,
            "media": {"track": "inbound", "chunk": "2", "timestamp": "20", "payload": FRAME},
        },
        {"event": "mark", "sequenceNumber": "4", "streamSid": STREAM_SID, "mark": {"name": "m"}},
        {"event": "dtmf", "sequenceNumber": "5", "streamSid": STREAM_SID, "dtmf": {"digit": "1"}},
        {"event": "stop", "sequenceNumber": "6", "streamSid": STREAM_SID, "stop": {}},
    ]


RAW_NUMBERS = [
    "1e999", "-1e999", "1E400", "Infinity", "-Infinity", "NaN", "123456789e300",
    "9" * 4000, "-" + "9" * 300, "9" * 5000, "-1", "0", "1.5", "-0.0", "2e-400",
]  # fmt: skip

LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00b", "\ud83d", "x" + "\udbff" * 3]


def nesting(depth: int, opener: str = "[") -> str:
    """Raw JSON text: `depth` containers, one inside the other."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth


def hostile_values() -> st.SearchStrategy[Any]:
    """A value for one field: JSON values of the wrong kind, or raw hostile JSON text."""
    raw = st.one_of(
        st.sampled_from(RAW_NUMBERS),
        st.builds(nesting, st.integers(1, 3000), st.sampled_from(["[", "{"])),
        st.integers(-(10**40), 10**40).map(str),
    )
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()  # NaN and ±inf too: json.dumps writes them as JSON cannot
        | st.text(max_size=20)
        | st.sampled_from(LONE_SURROGATES),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )
    return st.one_of(raw.map(lambda text: (_RAW, text)), json_values)


def _paths(message: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(message, dict):
        for key, value in message.items():
            paths += _paths(value, (*prefix, key))
    return paths


def _with(message: dict[str, Any], path: tuple[str, ...], value: Any) -> str:
    """`message` as JSON text with the field at `path` set to `value`."""
    copy = json.loads(json.dumps(message))
    target = copy
    for key in path[:-1]:
        target = target[key]
    raw = None
    if isinstance(value, tuple) and value and value[0] == _RAW:
        raw, value = value[1], _RAW
    target[path[-1]] = value
    text = json.dumps(copy)  # NaN/Infinity as JSON cannot hold them: hostile too
    if raw is not None:
        text = text.replace(json.dumps(_RAW), raw, 1)
    return text


@st.composite
def mutated_message(draw: st.DrawFn) -> str:
    """A valid message with one field (or a new one) swapped for a hostile value."""
    message = draw(st.sampled_from(valid_messages()))
    path = draw(st.sampled_from(_paths(message)))
    if draw(st.booleans()):  # a field Twilio never sends, beside the others
        path = (*path[:-1], draw(st.sampled_from(["extra", "sequenceNumber", "chunk"])))
    return _with(message, path, draw(hostile_values()))


@st.composite
def edited_message(draw: st.DrawFn) -> str:
    """A valid message's text with characters cut, inserted or replaced."""
    text = json.dumps(draw(st.sampled_from(valid_messages())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + cut :]
    return text


def hostile_text() -> st.SearchStrategy[str]:
    """Any text message a peer can send (valid UTF-8 on the wire)."""
    return st.one_of(
        mutated_message(),
        edited_message(),
        st.text(max_size=200),
        st.builds(nesting, st.integers(1, 100_000), st.sampled_from(["[", "{"])),
    )


def hostile_message() -> st.SearchStrategy[str | bytes]:
    """A text message, or raw bytes (sent as a binary frame, or as a text frame that
    need not be UTF-8)."""
    return st.one_of(hostile_text(), st.binary(max_size=64))
