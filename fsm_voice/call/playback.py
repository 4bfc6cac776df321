"""`AgentPlayback`: what the agent sends toward the caller, on its way to the socket.

Agent audio (cut into whole 20 ms frames), marks and clears all enter the call's one
ordered queue here (`call/outbound.py`; `call/socket_io.py` drains it onto the socket).
The call machine decides: audio in a quiet state tells it the agent speaks, audio once
the call is past live is dropped (logged once), a mark is requested through it and
sent when it says so, and a clear empties the queue when it says so.

It lives apart from `CallRuntime` so the runtime reads as the call's life and this as
the agent's outbound side. The runtime owns it (composition) and passes it the
machine, the queue, the mark waiters and the recorder it works with; the runtime's
own `queue_audio` / `request_mark` are one call in front of these.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import anyio

from fsm_voice.call import events as ev
from fsm_voice.call.config import CallConfig
from fsm_voice.call.failure import Record
from fsm_voice.call.handle import MarkOutcome
from fsm_voice.call.machine import AWAITING_MARK, LISTENING, LIVE, CallMachine
from fsm_voice.call.outbound import ClearOut, MarkOut, OutboundQueue
from fsm_voice.call.pending import MarkWaiters
from fsm_voice.call.recorder import FRAME_BYTES, TrackRecorder

_QUIET_STATES = frozenset((LISTENING, AWAITING_MARK))  # agent audio changes the state


class AgentPlayback:
    """Puts the agent's audio, marks and clears on the call's outbound queue."""

    def __init__(
        self,
        *,
        machine: CallMachine,
        config: CallConfig,
        outbound: OutboundQueue,
        waiters: MarkWaiters,
        agent_track: TrackRecorder,
        ended: anyio.Event,
        dispatch: Callable[[ev.CallEvent], None],
        record: Record,
    ) -> None:
        self._machine = machine
        self._config = config
        self._outbound = outbound
        self._waiters = waiters
        self._agent_track = agent_track
        self._ended = ended
        self._dispatch = dispatch
        self._record = record
        self._mark_ids = itertools.count(1)
        self._dropped_frames = 0

    def queue_audio(self, mulaw: bytes) -> bool:
        state = self._machine.state
        if state in _QUIET_STATES:
            self._dispatch(ev.AgentAudioQueued())
        elif state not in LIVE:
            if self._dropped_frames == 0:
                self._record("runtime", "agent_audio_dropped", {"state": state})
            self._dropped_frames += 1
            return False
        put = self._outbound.put
        if type(mulaw) is bytes and len(mulaw) == FRAME_BYTES:  # one frame (an echo): as is
            put(mulaw)
            return True
        for start in range(0, len(mulaw), FRAME_BYTES):
            frame = bytes(mulaw[start : start + FRAME_BYTES])  # a copy, whatever was passed
            if len(frame) < FRAME_BYTES:  # pad with μ-law silence: frames stay aligned
                frame = frame + b"\xff" * (FRAME_BYTES - len(frame))
            put(frame)
        return True

    def request_mark(self, name: str, timeout_ms: int | None) -> asyncio.Future[MarkOutcome]:
        mark_id = next(self._mark_ids)
        waiter = self._waiters.add(mark_id)
        timeout = self._config.mark_timeout_ms if timeout_ms is None else timeout_ms
        self._dispatch(ev.MarkRequested(mark_id, name, timeout))
        if not waiter.done() and self._ended.is_set():
            waiter.set_result(MarkOutcome.CALL_ENDED)
        return waiter

    # --- the machine's effects ---
    def send_mark(self, mark_id: int, name: str) -> None:
        self._outbound.put(MarkOut(mark_id, name))

    def clear(self) -> None:
        dropped = self._outbound.drop_all()
        frames = sum(1 for item in dropped if type(item) is bytes)
        self._record(
            "runtime", "outbound_dropped", {"frames": frames, "marks": len(dropped) - frames}
        )
        self._agent_track.cut()  # a clear is a cut in what the caller heard
        self._outbound.put(ClearOut())
