"""What a voice_runtime consumer wires to a compat STT, for the compat STT tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio

from fsm_voice.clock import VirtualClock
from fsm_voice.stt import SttAdapter

GUARD_S = 10  # a hang guard, never a timing assertion


class Consumer:
    """What a voice_runtime consumer wires to an STT: its callbacks, and the call log."""

    def __init__(self, stt: SttAdapter) -> None:
        self.committed: list[str] = []
        self.recognizing: list[str] = []
        self.errors: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        stt.on_committed = self._note(self.committed)
        stt.on_recognizing = self._note(self.recognizing)
        stt.on_error = self._note(self.errors)
        stt.event_sink = lambda kind, data: self._note(self.events)((kind, data))

    def _note(self, into: list[Any]) -> Callable[[Any], None]:
        def note(value: Any) -> None:
            into.append(value)
            self._changed.set()

        return note

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]

    async def until(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(GUARD_S):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def states(consumer: Consumer) -> list[str]:
    return [data["state"] for data in consumer.kinds("state_entered")]


async def retry_until_error(consumer: Consumer, clock: VirtualClock) -> None:
    """Fire each retry timer (only that: a connect timeout must not beat the fake's
    real answer) until the recogniser gives up."""
    for _ in range(10):
        await consumer.until(lambda: states(consumer)[-1] in ("reconnecting", "error"))
        if consumer.errors:
            return
        due = clock.next_due_ms()
        assert due is not None
        await clock.run_until(due)
        await consumer.until(lambda: states(consumer)[-1] != "reconnecting")
    raise AssertionError(f"still retrying: {states(consumer)}")
