"""Passing voice_runtime-style options to fsm_voice's native provider classes.

voice_runtime's factories took provider options by its own names (`language_code`,
`model_id`, ...) and filled credentials from the environment. Options the native
class does not take are dropped only when they are such shared names; any other
unknown option still fails with the class's own TypeError.
"""

from __future__ import annotations

import inspect
from typing import Any

from fsm_voice.providers import RECOGNIZERS, SYNTHESIZERS, _load

__all__ = ["LENIENT_OPTIONS", "fit_options"]

LENIENT_OPTIONS = frozenset(
    ("language_code", "model_id", "silence_timeout_ms", "api_key", "voice_id", "region", "voice")
)


def _accepted(cls: Any) -> tuple[set[str], bool]:
    params = inspect.signature(cls).parameters.values()
    names = {p.name for p in params}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return names, takes_any


def fit_options(
    kind: str, provider: str, options: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """`options` plus `defaults` (env), keeping lenient names only if the class takes them."""
    table = RECOGNIZERS if kind == "STT" else SYNTHESIZERS
    names, takes_any = _accepted(_load(table, kind, provider))
    merged = {k: v for k, v in defaults.items() if v is not None} | options
    return {
        key: value
        for key, value in merged.items()
        if key not in LENIENT_OPTIONS or takes_any or key in names
    }
