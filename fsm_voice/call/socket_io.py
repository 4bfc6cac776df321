"""`CallSocketIO`: the socket side of one call — the wire in, the outbound queue out.

Inbound, the read loop decodes each message through the call's `Wire` and turns it
into call events: media goes to the caller's track and the agent, envelopes (start,
mark, dtmf, stop) to the call machine, and a `start` is let in (or rejected) by the
stream guard here, where its parameters are first seen. Outbound, the write loop
drains the call's one ordered queue (agent frames, marks, clears) onto the socket.

It lives apart from `CallRuntime` so the runtime reads as the call's life (machine,
effects, limits, the agent's API) and this as its I/O. It is composed, not inherited:
the runtime owns it and hands it what it needs, explicitly. Every media frame passes
through here, so the collaborators are bound once and the per-frame path is one
method call deep, as it was inside the runtime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import anyio

from fsm_voice.call import events as ev
from fsm_voice.call.config import CallConfig
from fsm_voice.call.failure import Record
from fsm_voice.call.guards import LimitWatch
from fsm_voice.call.line import LinePosition
from fsm_voice.call.machine import HANGUP_REQUESTED, LIVE, CallMachine
from fsm_voice.call.outbound import MarkOut, OutboundQueue
from fsm_voice.call.recorder import TrackRecorder
from fsm_voice.call.socket import CLOSE_TOO_BIG, REFUSED_FRAME_REASONS, MessageSocket
from fsm_voice.call.stream_guard import StreamGuard
from fsm_voice.call.wire import Envelope, Media, OutboundEncoding, Violation, Wire
from fsm_voice.clock import Clock
from fsm_voice.errors import SocketClosed

_AUDIO_STATES = frozenset((*LIVE, HANGUP_REQUESTED))  # caller audio is still recorded

# The runtime's answer to an admitted `start`: its CallSid, the agent's custom
# parameters (without our stream token) and the parameters as the log shows them.
StreamAdmitted = Callable[[str | None, dict[str, str], dict[str, str]], None]


class CallSocketIO:
    """Reads and writes one call's socket; everything else is the runtime's."""

    def __init__(
        self,
        socket: MessageSocket,
        *,
        wire: Wire,
        machine: CallMachine,
        config: CallConfig,
        clock: Clock,
        limits: LimitWatch,
        streams: StreamGuard | None,
        line: LinePosition,
        caller_track: TrackRecorder,
        agent_track: TrackRecorder,
        outbound: OutboundQueue,
        dispatch: Callable[[ev.CallEvent], None],
        record: Record,
        t_ms: Callable[[], int],
        violation: Callable[[str, str], None],
        stream_admitted: StreamAdmitted,
        deliver_audio: Callable[[bytes], None],
    ) -> None:
        self._socket = socket
        self._wire = wire  # the platform's protocol (Twilio Media Streams)
        self._parse = wire.parse  # bound once: it runs for every frame
        self._machine = machine
        self._config = config
        self._clock = clock
        self._limits = limits
        self._streams = streams
        self._line = line
        self._caller = caller_track
        self._agent_track = agent_track
        self._outbound = outbound
        self._dispatch = dispatch
        self._record = record
        self._t_ms = t_ms
        self._violation = violation
        self._stream_admitted = stream_admitted
        self._deliver_audio = deliver_audio
        self._encoder: OutboundEncoding | None = None  # set when a `start` is let in
        self._agent_spawned = False  # spawned while handling the message just read
        self.frames_in = 0
        self.frames_out = 0

    def agent_spawned(self) -> None:
        """The agent was started while the message just read was handled: let it run up
        to its first wait before the next message is read (see `read_loop`)."""
        self._agent_spawned = True

    # --- the wire in ---
    async def read_loop(self) -> None:
        now_ms, limits = self._clock.now_ms, self._limits
        max_chars = self._config.max_message_bytes  # for sockets with no cap of their own
        while True:
            try:
                message = await self._socket.receive()
            except SocketClosed as e:
                if e.code == CLOSE_TOO_BIG:  # the server refused an oversized message
                    self._message_too_big()
                elif e.code in REFUSED_FRAME_REASONS:
                    self._frame_refused(e.code, e.reason)
                self._dispatch(ev.SocketClosed(e.code))
                return
            limits.last_inbound_ms = now_ms()
            parsed = self._parse(message, max_chars)
            if type(parsed) is Media:
                self._on_media(parsed)
            elif type(parsed) is Envelope:
                self._on_envelope(parsed)
                if self._agent_spawned:
                    self._agent_spawned = False
                    # Let the agent run up to its first wait (where it subscribes to
                    # audio) before the next message: uvicorn hands over a message that
                    # is already queued without yielding, and the media right behind
                    # `start` would pass an agent that had not run yet.
                    await anyio.lowlevel.checkpoint()
            elif type(parsed) is Violation:
                self._violation(parsed.reason, parsed.detail)

    def _message_too_big(self) -> None:
        max_bytes = self._config.max_message_bytes
        self._record(
            "runtime", "limit_reached", {"limit": "max_message_bytes", "max_bytes": max_bytes}
        )
        # The socket is already closed: the hangup only names the end reason.
        self._dispatch(ev.HangupRequested("message_too_big"))

    def _frame_refused(self, code: int, reason: str) -> None:
        # Bytes that never became a text message (not UTF-8, broken framing): the
        # server closed the socket for them. A violation, and the call's end.
        detail = f"the socket closed with {code}" + (f": {reason}" if reason else "")
        self._violation(REFUSED_FRAME_REASONS[code], detail)
        self._dispatch(ev.HangupRequested("protocol_violation"))

    def _on_media(self, media: Media) -> None:
        machine = self._machine
        started = machine.stream_sid
        # No started stream (none yet, or its start was rejected): no audio gets in.
        if started is None or machine.state not in _AUDIO_STATES:
            self._dispatch(ev.MediaReceived(media.track, media.chunk or 0))
            return
        if media.stream_sid is not None and media.stream_sid != started:
            self._violation("stream_sid_mismatch", f"media for {media.stream_sid}")
            return
        line = self._line
        line.sequence(media.sequence_number)
        if media.track not in ("inbound", "inbound_track"):
            return  # Twilio's copy of what it played (both_tracks); ours is recorded at send
        frame_no = line.chunk(media.track, media.chunk)
        if frame_no is None:
            frame_no = self._caller.next_frame
        t_ms = self._t_ms()
        line.place_caller_frame(frame_no, t_ms)
        self._caller.add(media.payload, t_ms, frame_no)
        self.frames_in += 1
        self._deliver_audio(media.payload)

    def _on_envelope(self, envelope: Envelope) -> None:
        event = envelope.event
        started = self._machine.stream_sid
        if (
            started is not None
            and envelope.stream_sid is not None
            and envelope.stream_sid != started
            and not isinstance(event, ev.StreamStarted)
        ):
            self._violation("stream_sid_mismatch", f"{event.trigger} for {envelope.stream_sid}")
            return
        if isinstance(event, ev.StreamStarted) and started is None:
            self._on_start(envelope, event)
            return
        self._line.sequence(envelope.sequence_number)
        self._dispatch(event)

    def _on_start(self, envelope: Envelope, event: ev.StreamStarted) -> None:
        streams = self._streams
        params, sid = event.custom_parameters, event.call_sid
        rejection = streams.admit(params, sid) if streams is not None else None
        self._line.sequence(envelope.sequence_number)
        if rejection is not None:
            self._dispatch(ev.StreamRejected(rejection, event.stream_sid, event.call_sid))
            return
        # the agent's own, without our stream token (a credential, not call data);
        # the log's are masked
        secret = self._wire.is_secret_parameter
        own = {k: v for k, v in params.items() if not secret(k)}
        mask = self._config.mask_phone_numbers
        logged = self._wire.loggable_parameters(params, mask_phone_numbers=mask)
        self._stream_admitted(event.call_sid or None, own, logged)
        self._encoder = self._wire.encoder(event.stream_sid)
        self._dispatch(dataclasses.replace(event, custom_parameters=logged))

    # --- the outbound queue out ---
    async def write_loop(self) -> None:
        get = self._outbound.get
        send = self._socket.send
        while True:
            item = await get()
            encoder = self._encoder
            if encoder is None:  # cannot happen: audio and marks need a started stream
                continue
            try:
                if type(item) is bytes:
                    await send(encoder.media(item))
                    self._agent_track.add(item, self._t_ms())
                    self.frames_out += 1
                elif type(item) is MarkOut:
                    await send(encoder.mark(item.name))
                    self._record(
                        "transport", "mark_sent", {"mark_id": item.mark_id, "name": item.name}
                    )
                else:
                    await send(encoder.clear())
                    self._record("transport", "clear_sent", {})
            except SocketClosed:
                return  # the read loop sees the close and ends the call

    async def close(self, code: int, reason: str) -> None:
        try:
            await self._socket.close(code, reason)
        except SocketClosed:
            return
        except Exception as e:  # a transport that fails to close is still closed for us
            self._record("runtime", "socket_close_failed", {"error": f"{type(e).__name__}: {e}"})
