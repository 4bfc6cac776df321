"""The one seam between a call and its WebSocket.

The Starlette endpoint, the phone simulator's real client, and the in-process pair used
by fast tests all implement `MessageSocket`; nothing else in the runtime knows which it
has.
"""

from __future__ import annotations

import contextlib
import math
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from fsm_voice.errors import SocketClosed

__all__ = ["MemorySocket", "MessageSocket", "memory_socket_pair"]

# RFC 6455 close codes used here.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_ABNORMAL = 1006  # never sent: means "dropped without a close frame"
CLOSE_INVALID_DATA = 1007  # e.g. a text frame that is not UTF-8
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
# What a close by the server's WebSocket layer says the peer sent: bytes that never
# became a message for us, so the call logs them as this protocol violation.
REFUSED_FRAME_REASONS = {CLOSE_PROTOCOL_ERROR: "bad_frame", CLOSE_INVALID_DATA: "invalid_utf8"}
# `/voice` names its id for the call in the upgrade's response, so a dialler (the phone
# simulator) can find the call in the log; Twilio ignores headers it does not know.
CALL_ID_HEADER = "X-Fsm-Voice-Call-Id"


class MessageSocket(Protocol):
    async def receive(self) -> str | bytes:
        """The next message; raises `SocketClosed` once the socket is closed."""
        ...

    async def send(self, text: str) -> None:
        """Send a text message; raises `SocketClosed` if the socket is closed."""
        ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the socket (idempotent)."""
        ...


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class MemorySocket:
    """One end of an in-process socket pair (no network, no real time)."""

    def __init__(
        self,
        inbox: MemoryObjectReceiveStream[str | bytes | _Close],
        outbox: MemoryObjectSendStream[str | bytes | _Close],
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self.close_code: int | None = None
        self.close_reason = ""

    async def receive(self) -> str | bytes:
        if self.close_code is not None:
            raise SocketClosed(self.close_code, self.close_reason)
        try:
            message = await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self.close_code is None:  # not closed by us: the peer vanished
                self.close_code = CLOSE_ABNORMAL
            await self._shutdown()
            raise SocketClosed(self.close_code, self.close_reason) from None
        if isinstance(message, _Close):
            self.close_code, self.close_reason = message.code, message.reason
            await self._shutdown()
            raise SocketClosed(message.code, message.reason)
        return message

    async def send(self, text: str | bytes) -> None:
        if self.close_code is not None:
            raise SocketClosed(self.close_code, self.close_reason)
        try:
            await self._outbox.send(text)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.close_code = self.close_code or CLOSE_ABNORMAL
            await self._shutdown()
            raise SocketClosed(self.close_code) from None

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        # No await before the streams are closed: a cancelled close must not leak them.
        with contextlib.suppress(
            anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock
        ):
            self._outbox.send_nowait(_Close(code, reason))
        await self._shutdown()

    async def drop(self) -> None:
        """Vanish without a close frame, as a dropped TCP connection does."""
        self.close_code = CLOSE_ABNORMAL
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._outbox.close()
        self._inbox.close()


def memory_socket_pair() -> tuple[MemorySocket, MemorySocket]:
    """Two connected in-process sockets: what one sends, the other receives, in order."""
    a_to_b_send, a_to_b_recv = anyio.create_memory_object_stream[str | bytes | _Close](math.inf)
    b_to_a_send, b_to_a_recv = anyio.create_memory_object_stream[str | bytes | _Close](math.inf)
    return MemorySocket(b_to_a_recv, a_to_b_send), MemorySocket(a_to_b_recv, b_to_a_send)
