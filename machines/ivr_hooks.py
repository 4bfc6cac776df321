"""Hooks for machines/ivr.yaml: your own Python, called by `hook: ivr_hooks:NAME`.

A hook receives a context (`.variables`, `.state`, `.call_id`) and returns an event
name, or {"event": ..., "variables": {...}}. Plain functions run in a worker thread,
so a blocking database or HTTP lookup here does not stall other calls.
"""

from __future__ import annotations

from typing import Any

# A stand-in for your billing system.
_BALANCES = {"123456": "42 dollars and 50 cents", "654321": "zero dollars"}


def lookup_balance(context: Any) -> dict[str, Any]:
    balance = _BALANCES.get(str(context.variables.get("account_number", "")))
    if balance is None:
        return {"event": "not_found"}
    return {"event": "found", "variables": {"balance": balance}}
