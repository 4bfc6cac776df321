"""The one ordered queue agent audio, marks and clears leave through.

A mark can never overtake audio queued before it because both travel the same FIFO;
`clear` empties the FIFO (nothing queued before it is sent) and goes out next.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarkOut:
    mark_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ClearOut:
    pass


# A 160-byte μ-law frame travels as its bytes: one object less per frame.
Outgoing = bytes | MarkOut | ClearOut


class OutboundQueue:
    def __init__(self) -> None:
        self._items: deque[Outgoing] = deque()
        # A bare future, not an anyio Event: this wakes once per frame on the hot path.
        self._wakeup: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        self._items.append(item)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def drop_all(self) -> list[Outgoing]:
        dropped = list(self._items)
        self._items.clear()
        return dropped

    async def get(self) -> Outgoing:
        while not self._items:
            if self._loop is None:
                # Once: on Python 3.11 every get_running_loop() is a getpid() syscall.
                self._loop = asyncio.get_running_loop()
            self._wakeup = self._loop.create_future()
            await self._wakeup
        self._wakeup = None
        return self._items.popleft()
