"""Passing voice_runtime-style options to fsm_voice's native provider classes.

voice_runtime's provider classes took options by their own names (`subscription_key`
and `voice_name` for Azure, `language_code`, `model_id`, ...) and filled credentials
from the environment. `SEED_NAMES` renames the seed's names to the native ones;
options the native class does not take are dropped only when they are such shared
names; any other unknown option still fails with the class's own TypeError.
"""

from __future__ import annotations

import inspect
from typing import Any

from fsm_voice.providers import RECOGNIZERS, SYNTHESIZERS, _load

__all__ = ["LENIENT_OPTIONS", "SEED_NAMES", "fit_options"]

LENIENT_OPTIONS = frozenset(
    ("language_code", "model_id", "silence_timeout_ms", "api_key", "voice_id", "region", "voice")
)

_SEED_OPTIONAL = LENIENT_OPTIONS | {"key"}  # the seed's "None: from the environment"

# (kind, provider) → {the seed's option name: the native one}
SEED_NAMES: dict[tuple[str, str], dict[str, str]] = {
    ("STT", "azure"): {"subscription_key": "key", "api_key": "key"},
    ("TTS", "azure"): {"subscription_key": "key", "api_key": "key", "voice_name": "voice"},
}


def _accepted(cls: Any) -> tuple[set[str], bool]:
    params = inspect.signature(cls).parameters.values()
    names = {p.name for p in params}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return names, takes_any


def _renamed(kind: str, provider: str, options: dict[str, Any]) -> dict[str, Any]:
    names = SEED_NAMES.get((kind, provider), {})
    return {names.get(key, key): value for key, value in options.items()}


def fit_options(
    kind: str, provider: str, options: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """`options` (seed names renamed) over `defaults` (env and the compat policy),
    keeping lenient names only if the class takes them. None for one of the seed's own
    options is "not given", as in its constructors (`api_key or ELEVENLABS_API_KEY`)."""
    table = RECOGNIZERS if kind == "STT" else SYNTHESIZERS
    names, takes_any = _accepted(_load(table, kind, provider))
    given = {
        k: v
        for k, v in _renamed(kind, provider, options).items()
        if v is not None or k not in _SEED_OPTIONAL  # None may mean "off" natively
    }
    merged = {k: v for k, v in _renamed(kind, provider, defaults).items() if v is not None}
    merged |= given
    return {
        key: value
        for key, value in merged.items()
        if key not in LENIENT_OPTIONS or takes_any or key in names
    }
