"""Calling a machine's `hook: module:function` in the user's own Python.

The function receives a `HookContext` (a copy of the call's variables and where the
call is) and returns one of: None (carry on), an event name, a mapping
`{"event": ..., "variables": {...}}`, or a `HookResult`. Plain functions run in a
worker thread so they cannot stall other calls; coroutine functions are awaited.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from fsm_voice.errors import ConfigError

__all__ = ["HookContext", "HookResult", "call_hook", "resolve_hook"]


@dataclass(frozen=True, slots=True)
class HookContext:
    call_id: str
    state: str
    variables: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class HookResult:
    event: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


def resolve_hook(target: str, search_path: Sequence[str] = ()) -> Callable[..., Any]:
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise ConfigError(f"hook {target!r}: expected 'module:function'")
    for entry in search_path:
        if entry not in sys.path:
            sys.path.append(entry)  # the machine's own directory, for its hooks
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"hook {target!r}: cannot import {module_name!r}: {error}") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"hook {target!r}: {module_name} has no function {function_name!r}")
    return function  # type: ignore[no-any-return]


async def call_hook(function: Callable[..., Any], context: HookContext) -> HookResult:
    if inspect.iscoroutinefunction(function):
        raw = await function(context)
    else:
        raw = await anyio.to_thread.run_sync(function, context)
    return _normalise(raw)


def _normalise(raw: object) -> HookResult:
    if raw is None:
        return HookResult()
    if isinstance(raw, HookResult):
        return raw
    if isinstance(raw, str):
        return HookResult(event=raw)
    if isinstance(raw, Mapping):
        event = raw.get("event")
        variables = raw.get("variables", {})
        if (event is None or isinstance(event, str)) and isinstance(variables, Mapping):
            return HookResult(event, dict(variables))
    raise TypeError(f"a hook must return None, an event name, a mapping or HookResult: {raw!r}")
