"""A call's events as short lines a person reads: `12.345  stt  transcript_committed  …`.

Each well-known kind gets a one-line summary of what matters in its payload; any
other kind shows its payload as `key=value` pairs, long values shortened, so a kind
added tomorrow still reads sensibly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from fsm_voice.eventlog.records import EventRecord

__all__ = ["describe", "seconds", "timeline_json"]

_MAX_VALUE: Final = 60
_MAX_LINE: Final = 160


def seconds(t_ms: int) -> str:
    """`12345` → `12.345` (relative times in seconds, ms precision)."""
    sign = "-" if t_ms < 0 else ""
    whole, ms = divmod(abs(t_ms), 1000)
    return f"{sign}{whole}.{ms:03d}"


def _short(value: Any, limit: int = _MAX_VALUE) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: Any) -> str:
    return f"“{_short(str(text))}”"


def _generic(data: dict[str, Any]) -> str:
    return " ".join(f"{key}={_short(value)}" for key, value in sorted(data.items()))


def _transcript(d: dict[str, Any]) -> str:
    span = f"{seconds(int(d.get('start_ms', 0)))}–{seconds(int(d.get('end_ms', 0)))}"
    text = _quote(d["text"]) if d.get("text") else "(nothing recognised)"
    return f"{text} conf {float(d.get('confidence') or 0):.2f} spoken {span}"


def _prompt_finished(d: dict[str, Any]) -> str:
    heard = len(d.get("heard", ()))
    cut = " INTERRUPTED" if d.get("interrupted") else ""
    return f"{d.get('prompt_id')} heard {heard} sentence(s){cut}"


def _intent(d: dict[str, Any]) -> str:
    slots = d.get("slots") or {}
    extra = " " + _generic(slots) if slots else ""
    return f"{d.get('intent')} ← {_quote(d.get('text', ''))} ({d.get('how')}){extra}"


def _state(d: dict[str, Any]) -> str:
    # Every machine's move (v2): `from`/`on` are None where not recorded (a provider's
    # callback names neither), `detail` is a provider's.
    moved = f"{d.get('from')} → {d.get('state')}" if d.get("from") is not None else d.get("state")
    on = f" on {d.get('on')}" if d.get("on") is not None else ""
    detail = f" ({_short(d.get('detail', ''))})" if "detail" in d else ""
    return f"{moved}{on}{detail}"


_FORMATS: Final[dict[str, Callable[[dict[str, Any]], str]]] = {
    "state_entered": _state,
    "say_started": lambda d: f"{d.get('prompt_id')} {_quote(d.get('text', ''))}",
    "prompt_finished": _prompt_finished,
    "prompt_stopped": lambda d: f"{d.get('prompt_id')} stopped ({d.get('reason')})",
    "intent_matched": _intent,
    "intent_not_matched": lambda d: f"{_quote(d.get('text', ''))} {d.get('reason', '')}".strip(),
    "counter_changed": lambda d: f"{d.get('counter')} #{d.get('value')}",
    "conversation_ended": lambda d: f"in {d.get('state')} ({d.get('reason')})",
    "transcript_committed": _transcript,
    "speech_started": lambda d: f"at {seconds(int(d.get('at_ms', 0)))}",
    "first_audio_sent": lambda d: str(d.get("prompt_id")),
    "mark_echoed": lambda d: str(d.get("name")),
    "mark_sent": lambda d: f"{d.get('name')} (#{d.get('mark_id')})",
    "mark_released": lambda d: f"{d.get('name')} (#{d.get('mark_id')}) {d.get('outcome')}",
    "dtmf_received": lambda d: f"key {d.get('digit')}" if "digit" in d else _generic(d),
    "sms_requested": lambda d: f"to {d.get('to')} {_quote(d.get('body', ''))}",
    "conversation_started": lambda d: _generic(d.get("variables") or {}),
}


def describe(event: EventRecord) -> str:
    """The essentials of one event's payload, on one line."""
    formatter = _FORMATS.get(event.kind, _generic)
    try:
        text = formatter(event.data)
    except (KeyError, TypeError, ValueError):
        text = _generic(event.data)  # a payload of an older or newer shape
    return _short(text, _MAX_LINE)


def timeline_json(event: EventRecord) -> dict[str, Any]:
    """One event for `--json`/`--nl`: everything but the wall time."""
    return {
        "seq": event.seq,
        "t_ms": event.t_ms,
        "source": event.source,
        "kind": event.kind,
        "data": event.data,
    }
