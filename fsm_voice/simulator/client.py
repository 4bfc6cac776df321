"""Dial a `/voice` WebSocket as Twilio does, and run a whole simulated call.

`dial()` opens the WebSocket with the `websockets` library and hands back a
`MessageSocket`; with an auth token it signs the upgrade with X-Twilio-Signature, over
the public URL the server validates against (`signed_url`), which may differ from the
address actually dialled (a server behind a proxy or a tunnel sees its public name).

`simulate_call()` is what `fsm-voice simulate` runs: dial, stream a WAV (or silence),
press keys, give the agent a bounded moment to finish speaking, hang up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fsm_voice.clock import Clock, IdSource, RandomIds, SystemClock
from fsm_voice.errors import SocketClosed
from fsm_voice.simulator.phone import FRAME_MS, PhoneSimulator
from fsm_voice.simulator.signature import SIGNATURE_HEADER, twilio_signature
from fsm_voice.transports.socket import CLOSE_ABNORMAL, CLOSE_NORMAL, MessageSocket

__all__ = ["DialRejected", "SimulationResult", "WebSocketClientSocket", "dial", "simulate_call"]

# Room for a 1 MiB chunk of agent audio: base64 adds a third, JSON a little more.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
DTMF_GAP_MS = 200  # silence streamed after each key, as a finger takes time between keys
QUIET_MS = 1000  # the agent counts as done once nothing new has arrived for this long
MAX_DRAIN_MS = 10_000  # never wait longer than this for the agent to finish speaking


class DialRejected(SocketClosed):
    """The server refused the WebSocket upgrade (e.g. HTTP 403 for a bad signature)."""

    def __init__(self, status: int) -> None:
        super().__init__(CLOSE_ABNORMAL, f"WebSocket upgrade rejected with HTTP {status}")
        self.status = status


class WebSocketClientSocket:
    """A `MessageSocket` over a `websockets` client connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def receive(self) -> str | bytes:
        try:
            return await self.connection.recv()
        except ConnectionClosed as e:
            raise _closed(e) from None

    async def send(self, text: str) -> None:
        try:
            await self.connection.send(text)
        except ConnectionClosed as e:
            raise _closed(e) from None

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        await self.connection.close(code, reason)

    async def drop(self) -> None:
        """Vanish without a close frame: abort the TCP connection."""
        self.connection.transport.abort()


def _closed(e: ConnectionClosed) -> SocketClosed:
    # The close frame the peer sent says why; none at all means the connection dropped.
    if e.rcvd is not None:
        return SocketClosed(e.rcvd.code, e.rcvd.reason)
    return SocketClosed(CLOSE_ABNORMAL)


@asynccontextmanager
async def dial(
    url: str,
    *,
    auth_token: str | None = None,
    signed_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[MessageSocket]:
    """Open the WebSocket at `url` the way Twilio does; yields a `MessageSocket`."""
    request_headers = dict(headers or {})
    if auth_token is not None:
        request_headers[SIGNATURE_HEADER] = twilio_signature(auth_token, signed_url or url)
    try:
        connection = await connect(
            url,
            additional_headers=request_headers,
            compression=None,  # Twilio does not negotiate permessage-deflate
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=None,  # the simulator sends only what Twilio's protocol sends
        )
    except InvalidStatus as e:
        raise DialRejected(e.response.status_code) from e
    async with connection:
        yield WebSocketClientSocket(connection)


@dataclass(frozen=True)
class SimulationResult:
    """What happened on one simulated call."""

    call_sid: str
    stream_sid: str
    frames_sent: int
    bytes_played: int
    marks_echoed: tuple[str, ...]
    close_code: int | None
    protocol_errors: tuple[str, ...]


async def simulate_call(
    url: str,
    *,
    wav: Path | None = None,
    seconds: float | None = None,
    dtmf: str = "",
    custom_parameters: dict[str, str] | None = None,
    auth_token: str | None = None,
    signed_url: str | None = None,
    record_path: Path | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    quiet_ms: int = QUIET_MS,
    max_drain_ms: int = MAX_DRAIN_MS,
) -> SimulationResult:
    """Place one simulated call to `url` and hang up; returns what happened.

    Streams `wav` (any WAV, converted to 8 kHz μ-law), then `seconds` of silence, then
    presses each key of `dtmf`; then keeps streaming silence (Twilio never stops sending
    the caller's audio) until the agent's audio has played out and nothing new arrived
    for `quiet_ms`, at most `max_drain_ms`; then hangs up. A call the server ends first
    is a normal outcome: `close_code` says how it ended.
    """
    clock = clock or SystemClock()
    async with dial(url, auth_token=auth_token, signed_url=signed_url) as socket:
        sim = PhoneSimulator(
            socket,
            clock,
            ids or RandomIds(),
            custom_parameters=custom_parameters,
            record_path=record_path,
        )
        async with sim:
            try:
                if wav is not None:
                    await sim.send_wav(wav)
                if seconds:
                    await sim.send_silence(round(seconds * 1000))
                for digit in dtmf:
                    await sim.send_dtmf(digit)
                    await sim.send_silence(DTMF_GAP_MS)
                await _drain(sim, clock, quiet_ms, max_drain_ms)
            except SocketClosed:
                pass  # the server hung up
    return SimulationResult(
        call_sid=sim.call_sid,
        stream_sid=sim.stream_sid,
        frames_sent=sim.frames_sent,
        bytes_played=len(sim.played),
        marks_echoed=tuple(sim.marks_echoed),
        close_code=sim.close_code,
        protocol_errors=tuple(sim.protocol_errors),
    )


async def _drain(sim: PhoneSimulator, clock: Clock, quiet_ms: int, max_ms: int) -> None:
    """Stream silence until the agent has been quiet for `quiet_ms` (at most `max_ms`)."""

    async def until_quiet() -> None:
        while True:
            await sim.wait_playback_idle()
            heard = sim.received_audio_bytes
            await clock.sleep(quiet_ms)
            if sim.received_audio_bytes == heard and sim.playback_pending_bytes == 0:
                return

    async def stream_silence() -> None:
        while True:
            await sim.send_silence(FRAME_MS)

    async def deadline() -> None:
        await clock.sleep(max_ms)

    async with anyio.create_task_group() as task_group:

        async def first_to_finish(job: Callable[[], Awaitable[None]]) -> None:
            await job()
            task_group.cancel_scope.cancel()

        for job in (until_quiet, stream_silence, deadline):
            task_group.start_soon(first_to_finish, job)
