"""Log payloads: conversation events and telephony results as plain JSON values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["snapshot"]


def snapshot(variables: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-friendly copy of a payload for the log (tuples become lists)."""
    return {str(k): _jsonable(v) for k, v in variables.items()}


def _jsonable(value: object) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return snapshot(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
