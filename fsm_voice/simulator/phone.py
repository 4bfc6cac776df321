"""The phone simulator: the Twilio side of a bidirectional Media Stream.

`PhoneSimulator` plays Twilio's part on a `MessageSocket`: it sends `connected` and
`start`, streams the caller's audio as `media` messages paced every 20 ms, sends `dtmf`
and `stop`, plays the agent's audio out at real time (on whatever `Clock` it is given)
and echoes marks the way Twilio does. The same code runs over a real WebSocket on the
`SystemClock` and in-process on a `VirtualClock`.

Message shapes follow Twilio's "Media Streams - WebSocket Messages" page
(https://www.twilio.com/docs/voice/media-streams/websocket-messages):

- `connected` is the only message without `sequenceNumber` and `streamSid`; `start` is
  sequence number "1" and every later message from Twilio counts on from there.
- `sequenceNumber`, `media.chunk` and `media.timestamp` are strings in the JSON.
- caller audio is `media.track: "inbound"`, but a keypress is `dtmf.track: "inbound_track"`.
- From the server Twilio accepts only `media`, `mark` and `clear` (anything else is
  error 31924, https://www.twilio.com/docs/api/errors/31924).

What the caller heard: `played` holds the agent's audio in the order it was played, one
20 ms frame at a time. Gaps (the server sent nothing for a while) are NOT filled with
silence, so `played` is exactly the audio the server sent minus what `clear` dropped
before it was played (a frame already playing when `clear` arrives is kept whole).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from fsm_voice.audio.frames import silence, split_frames
from fsm_voice.audio.mulaw import FRAME_BYTES
from fsm_voice.audio.wav import read_wav_as_mulaw_8k, write_wav_mulaw
from fsm_voice.call.socket import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    MessageSocket,
)
from fsm_voice.clock import Clock, IdSource
from fsm_voice.errors import SocketClosed
from fsm_voice.simulator.playback import Playback
from fsm_voice.twilio.phone_protocol import AgentAudio, AgentMark, Invalid, read_message

__all__ = ["DTMF_DIGITS", "FRAME_MS", "PhoneSimulator"]

FRAME_MS = 20
BYTES_PER_MS = 8  # μ-law, 8000 samples a second, one byte a sample
DTMF_DIGITS = "0123456789*#"


class PhoneSimulator:
    """One simulated call: Twilio's half of a `<Connect><Stream>` WebSocket.

    Use it as an async context manager: `async with sim:` sends `connected` and `start`
    and runs the receiver and the playout loop; leaving it sends `stop` (unless the call
    already ended) and closes the socket with 1000.
    """

    def __init__(
        self,
        socket: MessageSocket,
        clock: Clock,
        ids: IdSource,
        *,
        custom_parameters: dict[str, str] | None = None,
        account_sid: str | None = None,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        record_path: Path | None = None,
    ) -> None:
        self.socket = socket
        self.clock = clock
        self.account_sid = account_sid or ids.new_id("AC")
        self.call_sid = call_sid or ids.new_id("CA")
        self.stream_sid = stream_sid or ids.new_id("MZ")
        params = dict(custom_parameters or {})
        # Twilio's start message has no caller/called numbers; a server gets them from the
        # TwiML webhook and passes them on as <Parameter>s. We play both parts, so the
        # numbers, when given, arrive as custom parameters "From" and "To".
        if from_number is not None:
            params.setdefault("From", from_number)
        if to_number is not None:
            params.setdefault("To", to_number)
        self.custom_parameters = params
        self.record_path = record_path

        self.played = bytearray()  # the agent's audio, as the caller heard it
        self.marks_echoed: list[str] = []
        self.cleared = 0
        self.received: list[dict[str, Any]] = []  # every JSON object the server sent
        self.sent: list[dict[str, Any]] = []  # every message we sent, in order
        self.protocol_errors: list[str] = []
        self.frames_sent = 0
        self.close_code: int | None = None

        self._seq = 0
        self._started = False
        self._ended_by: str | None = None  # "hangup" (we sent stop) or "drop" (we vanished)
        self._start_ms = 0
        self._next_media_ms = 0  # when the next caller frame is due (absolute clock ms)
        self._playback = Playback(FRAME_BYTES)
        self._send_lock = anyio.Lock()
        self._changed = anyio.Event()
        self._task_group: TaskGroup | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            await self.start()
        except BaseException as e:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(e), e, e.__traceback__)
            raise
        task_group.start_soon(self._receiver, name="phone-simulator receiver")
        task_group.start_soon(self._playout, name="phone-simulator playout")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None, "PhoneSimulator exited without being entered"
        try:
            if exc_type is None or issubclass(exc_type, Exception):
                with contextlib.suppress(SocketClosed):
                    await self.hangup()
        finally:
            task_group.cancel_scope.cancel()
            try:
                suppressed = await task_group.__aexit__(exc_type, exc, tb)
            finally:
                if self.record_path is not None:
                    write_wav_mulaw(self.record_path, bytes(self.played))
        return suppressed

    async def start(self) -> None:
        """Send `connected` then `start` (the context manager calls this)."""
        if self._started:
            raise RuntimeError("the stream has already started")
        self._started = True
        self._start_ms = self._next_media_ms = self.clock.now_ms()
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": self.account_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": dict(self.custom_parameters),
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": self.stream_sid,
            }
        )

    async def hangup(self) -> None:
        """The caller hangs up: send `stop`, then close the socket with 1000.

        Does nothing if the call already ended (we hung up, or the server closed).
        """
        if self._ended_by is not None or self.close_code is not None or not self._started:
            return
        self._ended_by = "hangup"
        stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
        try:
            await self._send({"event": "stop", "streamSid": self.stream_sid, "stop": stop})
        finally:
            await self.socket.close(CLOSE_NORMAL)
            self._closed(CLOSE_NORMAL)

    async def drop(self) -> None:
        """Vanish without `stop` and without a close frame (a lost connection)."""
        if self._ended_by is not None:
            return
        self._ended_by = "drop"
        drop = getattr(self.socket, "drop", None)
        if callable(drop):
            await drop()
        else:  # a socket that cannot drop: the nearest thing is "going away"
            await self.socket.close(CLOSE_GOING_AWAY)
        self._closed(CLOSE_ABNORMAL)

    # ------------------------------------------------------------------ caller side

    async def send_audio(self, mulaw: bytes) -> int:
        """Send μ-law audio as 160-byte `media` frames, one every 20 ms of clock time.

        Frames go out at absolute times t0 + 20·k, so pacing does not drift; a call made
        right after the previous one continues the same 20 ms grid. Returns the number of
        frames sent (the last one padded with μ-law silence).
        """
        self._require_live()
        frames = split_frames(bytes(mulaw), FRAME_BYTES, pad=True)
        first_ms = max(self._next_media_ms, self.clock.now_ms())
        for k, frame in enumerate(frames):
            due_ms = first_ms + FRAME_MS * k
            delay = due_ms - self.clock.now_ms()
            if delay > 0:
                await self.clock.sleep(delay)
            self.frames_sent += 1
            media = {
                "track": "inbound",
                "chunk": str(self.frames_sent),
                "timestamp": str(due_ms - self._start_ms),
                "payload": base64.b64encode(frame).decode("ascii"),
            }
            await self._send({"event": "media", "media": media, "streamSid": self.stream_sid})
        self._next_media_ms = first_ms + FRAME_MS * len(frames)
        return len(frames)

    async def send_silence(self, ms: int) -> int:
        """Send `ms` milliseconds of μ-law silence (rounded up to whole frames)."""
        return await self.send_audio(silence(ms))

    async def send_wav(self, path: Path | str) -> int:
        """Send a WAV file of any format, converted to 8 kHz μ-law."""
        return await self.send_audio(read_wav_as_mulaw_8k(path))

    async def send_dtmf(self, digit: str) -> None:
        """The caller presses a key: one `dtmf` message (track "inbound_track")."""
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF key: {digit!r} (expected one of {DTMF_DIGITS})")
        self._require_live()
        dtmf = {"track": "inbound_track", "digit": digit}
        await self._send({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": dtmf})

    # ------------------------------------------------------------------ waiting

    async def wait_for_mark_echoed(self, name: str) -> None:
        """Return once the mark `name` has been echoed to the server."""
        await self._wait_until(lambda: name in self.marks_echoed)

    async def wait_played_bytes(self, n: int) -> None:
        """Return once at least `n` bytes of agent audio have started playing."""
        await self._wait_until(lambda: len(self.played) >= n)

    async def wait_for_message(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Return the first message from the server (so far or later) matching `predicate`."""
        found: list[dict[str, Any]] = []
        checked = 0

        def match() -> bool:
            nonlocal checked
            while not found and checked < len(self.received):
                if predicate(self.received[checked]):
                    found.append(self.received[checked])
                checked += 1
            return bool(found)

        await self._wait_until(match)
        return found[0]

    async def wait_closed(self) -> int:
        """Return the close code once the socket is closed (1000 after our hangup)."""
        await self._wait_until(lambda: self.close_code is not None, fail_on_close=False)
        assert self.close_code is not None
        return self.close_code

    async def wait_playback_idle(self) -> None:
        """Return once every received byte has played and every mark has been echoed."""
        await self._wait_until(lambda: self._playback.idle)

    @property
    def awaiting_mark(self) -> bool:
        """The agent marks its audio, and the audio received last has no mark after it yet
        (a synthesiser that stalls mid-sentence; the sentence's mark follows its end)."""
        return self._playback.awaiting_mark

    def expect_marks(self) -> None:
        """The agent is known to mark the end of what it says (fsm_voice's runtime marks
        each sentence): its audio awaits a mark from the first prompt on, not only once
        a first mark has come."""
        self._playback.expect_marks()

    async def wait_audio_marked(self) -> None:
        """Return once the audio received so far has a mark after it (or was cleared);
        at once for an agent that has never sent a mark."""
        await self._wait_until(lambda: not self._playback.awaiting_mark)

    @property
    def hung_up(self) -> bool:
        """Whether we ended the call (`hangup`), not the server or a dropped line."""
        return self._ended_by == "hangup"

    @property
    def received_audio_bytes(self) -> int:
        """Agent audio received so far (played, pending, or dropped by `clear`)."""
        return self._playback.received_bytes

    @property
    def playback_pending_bytes(self) -> int:
        """Agent audio received but not yet played."""
        return self._playback.buffered_bytes

    async def _wait_until(self, ready: Callable[[], bool], *, fail_on_close: bool = True) -> None:
        while not ready():
            if fail_on_close and self.close_code is not None:
                raise SocketClosed(self.close_code, "the call ended while waiting")
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ------------------------------------------------------------------ server side

    async def _receiver(self) -> None:
        while True:
            try:
                message = await self.socket.receive()
            except SocketClosed as e:
                self._closed(e.code)
                return
            await self._handle(message)
            self._notify()

    def _closed(self, code: int) -> None:
        if self.close_code is None:
            # After our hangup or drop the peer's answer says nothing new: report ours.
            self.close_code = {"hangup": CLOSE_NORMAL, "drop": CLOSE_ABNORMAL}.get(
                self._ended_by or "", code
            )
        self._notify()

    async def _handle(self, message: str | bytes) -> None:
        data, meaning = read_message(message, self.stream_sid)
        if data is not None:
            self.received.append(data)
        if isinstance(meaning, Invalid):
            self.protocol_errors.append(meaning.reason)
        elif isinstance(meaning, AgentAudio):
            self._playback.add_audio(meaning.audio)
        elif isinstance(meaning, AgentMark):
            # Twilio echoes a mark when playback reaches it (at once if nothing is queued).
            await self._echo(self._playback.add_mark(meaning.name))
        else:
            # `clear` drops the buffer and Twilio sends back every pending mark at once.
            self.cleared += 1
            await self._echo(self._playback.clear())

    async def _echo(self, names: list[str]) -> None:
        for name in names:
            mark = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
            # Recorded before the send: the agent may act on the echo (and a test read
            # this list) before this task runs again after the send.
            self.marks_echoed.append(name)
            try:
                await self._send(mark)
            except SocketClosed:
                self.marks_echoed.pop()
                return
        self._notify()

    async def _playout(self) -> None:
        """Play received audio at 8 bytes a millisecond, one 160-byte frame at a time."""
        while True:
            # Checked first: a call that ends with audio still buffered must not spin here.
            if self.close_code is not None or self._ended_by is not None:
                return
            while not self._playback.buffered_bytes:
                if self.close_code is not None or self._ended_by is not None:
                    return
                await self._changed.wait()
            due_ms = float(self.clock.now_ms())
            while self.close_code is None and self._ended_by is None:
                taken = self._playback.next_frame()
                if taken is None:
                    break
                frame, end = taken
                self.played += frame  # the caller hears it from now on
                self._notify()
                # Absolute deadlines (t0 + len/8 ms), so playout does not drift.
                due_ms += len(frame) / BYTES_PER_MS
                delay = due_ms - self.clock.now_ms()
                if delay > 0:
                    await self.clock.sleep(delay)
                await self._echo(self._playback.finished(end))

    # ------------------------------------------------------------------ plumbing

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if message["event"] != "connected":  # the only message Twilio does not number
                self._seq += 1
                message = {"event": message["event"], "sequenceNumber": str(self._seq)} | message
            await self.socket.send(json.dumps(message, separators=(",", ":")))
            self.sent.append(message)

    def _require_live(self) -> None:
        if not self._started:
            raise RuntimeError("start the stream first (async with sim: ...)")
        if self._ended_by is not None:
            raise RuntimeError("the call has been hung up")
        if self.close_code is not None:
            raise SocketClosed(self.close_code, "the server closed the stream")
