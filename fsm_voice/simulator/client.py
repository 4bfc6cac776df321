"""Dial a `/voice` WebSocket as Twilio does, and run a whole simulated call.

`dial()` opens the WebSocket with the `websockets` library and hands back a
`MessageSocket`; with an auth token it signs the upgrade with X-Twilio-Signature, over
the public URL the server validates against (`signed_url`), which may differ from the
address actually dialled (a server behind a proxy or a tunnel sees its public name).

`simulate_call()` is what `fsm-voice simulate` runs: dial, then either stream a WAV
(or silence), press keys and give the agent a bounded moment to finish speaking, or
follow a caller script; hang up unless the agent ended the call first, which is the
usual end of a finished conversation and not an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from fsm_voice.call.socket import CALL_ID_HEADER, CLOSE_ABNORMAL, CLOSE_NORMAL
from fsm_voice.clock import Clock, IdSource, RandomIds, SystemClock
from fsm_voice.errors import SocketClosed
from fsm_voice.providers.base import SpeechSynthesizer
from fsm_voice.simulator.caller import CallerResult, ScriptedCaller, StepEvent
from fsm_voice.simulator.caller_script import CallerScript
from fsm_voice.simulator.phone import FRAME_MS, PhoneSimulator
from fsm_voice.twilio.signature import SIGNATURE_HEADER, twilio_signature

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

    @property
    def call_id(self) -> str | None:
        """The server's id for this call, when it is an fsm_voice server (it names it
        in the upgrade's response); None from any other server."""
        response = self.connection.response
        return None if response is None else response.headers.get(CALL_ID_HEADER)

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
) -> AsyncIterator[WebSocketClientSocket]:
    """Open the WebSocket at `url` the way Twilio does; yields a `MessageSocket`.

    A refused upgrade raises `DialRejected`; a server that cannot be reached (or a URL
    that is not a WebSocket URL) `SocketClosed` with 1006, saying why.
    """
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
    except (OSError, InvalidURI, InvalidHandshake) as e:  # refused, unresolvable, timed out
        raise SocketClosed(CLOSE_ABNORMAL, f"could not dial {url}: {e}") from e
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
    call_id: str | None = None  # the server's id for the call, if it said (fsm_voice does)
    hung_up: bool = False  # we ended the call (else the server did, or it dropped)
    caller: CallerResult | None = None  # what the caller script did, when one ran


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
    call_sid: str | None = None,
    account_sid: str | None = None,
    script: CallerScript | None = None,
    voice: SpeechSynthesizer | None = None,
    on_step: Callable[[StepEvent], None] | None = None,
) -> SimulationResult:
    """Place one simulated call to `url` and hang up; returns what happened.

    Streams `wav` (any WAV, converted to 8 kHz μ-law), then `seconds` of silence, then
    presses each key of `dtmf`; then keeps streaming silence (Twilio never stops sending
    the caller's audio) until the agent's audio has played out and nothing new arrived
    for `quiet_ms`, at most `max_drain_ms`; then hangs up. With a `script` the caller
    follows it instead, speaking with `voice` (started and stopped by the caller).
    A call the server ends first is a normal outcome: `close_code` says how it ended.
    `call_sid` and `account_sid` are the `start` message's (default: new ids), for a
    stream token bound to the CallSid it was minted for.
    """
    clock = clock or SystemClock()
    async with dial(url, auth_token=auth_token, signed_url=signed_url) as socket:
        sim = PhoneSimulator(
            socket,
            clock,
            ids or RandomIds(),
            custom_parameters=custom_parameters,
            record_path=record_path,
            call_sid=call_sid,
            account_sid=account_sid,
        )
        caller: CallerResult | None = None
        async with sim:
            try:
                if script is not None:
                    if voice is None:
                        raise ValueError("a caller script needs a voice to speak with")
                    caller = await ScriptedCaller(sim, script, voice, clock, on_step=on_step).run()
                else:
                    await _stream(sim, clock, wav, seconds, dtmf, quiet_ms, max_drain_ms)
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
        call_id=socket.call_id,
        hung_up=sim.hung_up,
        caller=caller,
    )


async def _stream(
    sim: PhoneSimulator,
    clock: Clock,
    wav: Path | None,
    seconds: float | None,
    dtmf: str,
    quiet_ms: int,
    max_drain_ms: int,
) -> None:
    if wav is not None:
        await sim.send_wav(wav)
    if seconds:
        await sim.send_silence(round(seconds * 1000))
    for digit in dtmf:
        await sim.send_dtmf(digit)
        await sim.send_silence(DTMF_GAP_MS)
    await _drain(sim, clock, quiet_ms, max_drain_ms)


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
            # The agent ending the call while we drain is how a finished conversation
            # ends: it ends the drain. Raised here, SocketClosed would reach the caller
            # inside an ExceptionGroup, past any `except SocketClosed`.
            with contextlib.suppress(SocketClosed):
                await job()
            task_group.cancel_scope.cancel()

        for job in (until_quiet, stream_silence, deadline):
            task_group.start_soon(first_to_finish, job)
