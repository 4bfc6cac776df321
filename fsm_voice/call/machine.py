"""The call machine: the life of one Media Streams call.

    connecting ──stream_started──▶ listening ◀──────────────┐
        │                           │  ▲                     │ last mark echoed
        │                 agent audio  │ clear               │
        │                           ▼  │                     │
        │                         speaking ──mark_requested──▶ awaiting_mark
        │                                                      (audio → speaking)
        └─ any open state ──hangup_requested──▶ hangup_requested ──socket closed──▶ ended
           any open state ──stop / socket closed──▶ ended;  fatal_error ──▶ error
           connecting ──stream_rejected (bad stream token)──▶ hangup_requested, close 1008

"listening" means the platform has confirmed playing everything we sent; "speaking"
means agent audio was queued after the last mark; "awaiting_mark" means marks are
outstanding and nothing was queued after them.
"""

from __future__ import annotations

from collections import deque

from fsm_voice.call import effects as fx
from fsm_voice.call import events as ev
from fsm_voice.call.socket import CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_POLICY
from fsm_voice.machine import Edge, MachineTable, PureMachine, Step

CONNECTING = "connecting"
LISTENING = "listening"
SPEAKING = "speaking"
AWAITING_MARK = "awaiting_mark"
HANGUP_REQUESTED = "hangup_requested"
ENDED = "ended"
ERROR = "error"

STATES = (CONNECTING, LISTENING, SPEAKING, AWAITING_MARK, HANGUP_REQUESTED, ENDED, ERROR)
LIVE = (LISTENING, SPEAKING, AWAITING_MARK)
OPEN = (CONNECTING, *LIVE)
FINAL = (ENDED, ERROR)


class CallMachine:
    """Events in, effects out. Holds the pending marks; knows nothing of sockets."""

    def __init__(self, *, connect_timeout_ms: int = 10_000, hangup_grace_ms: int = 2_000) -> None:
        self.connect_timeout_ms = connect_timeout_ms
        self.hangup_grace_ms = hangup_grace_ms
        self.pending: list[tuple[int, str]] = []  # (mark_id, name), in the order sent
        self.timed: set[int] = set()  # ids of pending marks with a timeout timer
        # Twilio echoes the marks that a `clear` dropped; expect them, in order.
        self.cleared: deque[str] = deque(maxlen=1024)
        self.stream_sid: str | None = None
        self.end_reason = "agent_hangup"
        self._m: PureMachine[fx.Effect] = PureMachine.on(_TABLE, self)

    @property
    def state(self) -> str:
        return self._m.state

    @property
    def is_live(self) -> bool:
        return self._m.state in LIVE

    def fire(self, event: ev.CallEvent) -> Step[fx.Effect]:
        return self._m.fire(event.trigger, event)

    # --- conditions (they read the state before the transition) ---

    def _echo_index(self, e: ev.MarkEchoed) -> int | None:
        for index, (_, name) in enumerate(self.pending):
            if name == e.name:
                return index
        return None

    def _echo_known(self, e: ev.MarkEchoed) -> bool:
        return self._echo_index(e) is not None

    def _echo_completes(self, e: ev.MarkEchoed) -> bool:
        return len(self.pending) == 1 and self._echo_known(e)

    def _echo_was_cleared(self, e: ev.MarkEchoed) -> bool:
        return e.name in self.cleared

    def _timeout_known(self, e: ev.MarkTimedOut) -> bool:
        return any(mark_id == e.mark_id for mark_id, _ in self.pending)

    def _timeout_completes(self, e: ev.MarkTimedOut) -> bool:
        return len(self.pending) == 1 and self._timeout_known(e)

    def _same_stream(self, e: ev.StreamStarted) -> bool:
        return e.stream_sid == self.stream_sid

    # --- effects ---

    def _emit(self, effect: fx.Effect) -> None:
        self._m.emit(effect)

    def _arm_connect_timer(self, _: ev.SocketOpened) -> None:
        self._emit(fx.StartTimer("connect", self.connect_timeout_ms, ev.ConnectTimedOut()))

    def _start_stream(self, e: ev.StreamStarted) -> None:
        self.stream_sid = e.stream_sid
        self._emit(fx.CancelTimer("connect"))
        self._emit(fx.StartAgent())

    def _duplicate_start(self, e: ev.StreamStarted) -> None:
        self._emit(fx.ReportViolation("duplicate_start", f"streamSid {e.stream_sid}"))

    def _foreign_start(self, e: ev.StreamStarted) -> None:
        # A second stream on one socket cannot be told apart from injection: close.
        detail = f"streamSid {e.stream_sid} while {self.stream_sid} is active"
        self._emit(fx.ReportViolation("duplicate_start", detail))
        self._hang_up(ev.HangupRequested("protocol_violation"), code=CLOSE_POLICY)

    def _reject_stream(self, e: ev.StreamRejected) -> None:
        self._hang_up(ev.HangupRequested(e.reason), code=CLOSE_POLICY)

    def _media_before_start(self, _: ev.MediaReceived) -> None:
        self._emit(fx.ReportViolation("media_before_start"))

    def _dtmf_before_start(self, _: ev.DtmfReceived) -> None:
        self._emit(fx.ReportViolation("dtmf_before_start"))

    def _duplicate_connected(self, _: ev.Connected) -> None:
        self._emit(fx.ReportViolation("duplicate_connected"))

    def _deliver_dtmf(self, e: ev.DtmfReceived) -> None:
        self._emit(fx.DeliverDtmf(e.digit))

    def _send_mark(self, e: ev.MarkRequested) -> None:
        self.pending.append((e.mark_id, e.name))
        self._emit(fx.SendMark(e.mark_id, e.name))
        if e.timeout_ms > 0:
            self.timed.add(e.mark_id)
            timer = fx.StartTimer(f"mark:{e.mark_id}", e.timeout_ms, ev.MarkTimedOut(e.mark_id))
            self._emit(timer)

    def _refuse_mark_not_connected(self, e: ev.MarkRequested) -> None:
        self._emit(fx.ReleaseMark(e.mark_id, e.name, "not_connected"))

    def _refuse_mark_ended(self, e: ev.MarkRequested) -> None:
        self._emit(fx.ReleaseMark(e.mark_id, e.name, "call_ended"))

    def _mark_played(self, e: ev.MarkEchoed) -> None:
        index = self._echo_index(e)
        assert index is not None  # guarded by _echo_known
        mark_id, name = self.pending.pop(index)
        self._cancel_mark_timer(mark_id)
        self._emit(fx.ReleaseMark(mark_id, name, "played"))

    def _cancel_mark_timer(self, mark_id: int) -> None:
        if mark_id in self.timed:
            self.timed.remove(mark_id)
            self._emit(fx.CancelTimer(f"mark:{mark_id}"))

    def _cleared_mark_echoed(self, e: ev.MarkEchoed) -> None:
        self.cleared.remove(e.name)

    def _unknown_mark(self, e: ev.MarkEchoed) -> None:
        self._emit(fx.ReportViolation("unknown_mark", f"mark {e.name!r} was never sent"))

    def _mark_timed_out(self, e: ev.MarkTimedOut) -> None:
        for index, (mark_id, name) in enumerate(self.pending):
            if mark_id == e.mark_id:
                del self.pending[index]
                self.timed.discard(mark_id)  # it has fired
                # Twilio may still echo it later; do not call that a violation.
                self.cleared.append(name)
                self._emit(fx.ReleaseMark(mark_id, name, "timeout"))
                return

    def _release_all(self, outcome: str) -> None:
        for mark_id, name in self.pending:
            self._cancel_mark_timer(mark_id)
            self._emit(fx.ReleaseMark(mark_id, name, outcome))
        self.pending.clear()

    def _clear(self, _: ev.ClearRequested) -> None:
        self._emit(fx.ClearPlayback())
        self.cleared.extend(name for _, name in self.pending)
        self._release_all("cleared")

    def _hang_up(self, e: ev.HangupRequested, code: int = CLOSE_NORMAL) -> None:
        self.end_reason = e.reason
        self._release_all("call_ended")
        self._emit(fx.CancelTimer("connect"))
        self._emit(fx.CloseSocket(code, e.reason))
        self._emit(fx.StartTimer("hangup", self.hangup_grace_ms, ev.HangupTimedOut()))

    def _too_many_violations(self, e: ev.ViolationLimitReached) -> None:
        self._hang_up(ev.HangupRequested("protocol_violation"), code=CLOSE_POLICY)

    def _caller_hung_up(self, _: ev.StreamStopped) -> None:
        self._end("caller_hangup")

    def _socket_dropped(self, e: ev.SocketClosed) -> None:
        self._end("socket_dropped")

    def _finish_hangup(self, _: object) -> None:
        self._emit(fx.CancelTimer("hangup"))
        self._end(self.end_reason)

    def _no_stream(self, _: ev.ConnectTimedOut) -> None:
        self._emit(fx.CloseSocket(CLOSE_POLICY, "no start message"))
        self._end("no_stream")

    def _fail(self, e: ev.FatalError) -> None:
        self._emit(fx.CloseSocket(CLOSE_INTERNAL, e.reason))
        self._end("error")

    def _end(self, reason: str) -> None:
        self._release_all("call_ended")
        self._emit(fx.CancelTimer("connect"))
        self._emit(fx.EndCall(reason))


def _edges() -> list[Edge]:
    """The call machine's transitions; callbacks are `CallMachine` methods (owner, event)."""
    m = CallMachine
    after_hangup = (HANGUP_REQUESTED, *FINAL)
    return [
        Edge("socket_opened", CONNECTING, None, effects=[m._arm_connect_timer]),
        Edge("connected", CONNECTING, None),
        Edge("connected", LIVE, None, effects=[m._duplicate_connected]),
        Edge("stream_started", CONNECTING, LISTENING, effects=[m._start_stream]),
        Edge("stream_started", LIVE, None, [m._same_stream], [m._duplicate_start]),
        Edge("stream_started", LIVE, HANGUP_REQUESTED, effects=[m._foreign_start]),
        Edge("stream_started", HANGUP_REQUESTED, None, effects=[m._duplicate_start]),
        Edge("stream_rejected", CONNECTING, HANGUP_REQUESTED, effects=[m._reject_stream]),
        Edge("media_received", CONNECTING, None, effects=[m._media_before_start]),
        Edge("dtmf_received", LIVE, None, effects=[m._deliver_dtmf]),
        Edge("dtmf_received", CONNECTING, None, effects=[m._dtmf_before_start]),
        Edge("agent_audio_queued", (LISTENING, AWAITING_MARK), SPEAKING),
        Edge("agent_audio_queued", SPEAKING, None),
        Edge("mark_requested", LIVE, AWAITING_MARK, effects=[m._send_mark]),
        Edge("mark_requested", CONNECTING, None, effects=[m._refuse_mark_not_connected]),
        Edge("mark_requested", after_hangup, None, effects=[m._refuse_mark_ended]),
        Edge("mark_echoed", AWAITING_MARK, LISTENING, [m._echo_completes], [m._mark_played]),
        Edge("mark_echoed", LIVE, None, [m._echo_known], [m._mark_played]),
        Edge(
            "mark_echoed",
            (*LIVE, HANGUP_REQUESTED),
            None,
            [m._echo_was_cleared],
            [m._cleared_mark_echoed],
        ),
        Edge("mark_echoed", (*LIVE, HANGUP_REQUESTED), None, effects=[m._unknown_mark]),
        Edge(
            "mark_timed_out",
            AWAITING_MARK,
            LISTENING,
            [m._timeout_completes],
            [m._mark_timed_out],
        ),
        Edge("mark_timed_out", LIVE, None, [m._timeout_known], [m._mark_timed_out]),
        Edge("clear_requested", LIVE, LISTENING, effects=[m._clear]),
        Edge("clear_requested", (CONNECTING, *after_hangup), None),
        Edge("hangup_requested", OPEN, HANGUP_REQUESTED, effects=[m._hang_up]),
        Edge("hangup_requested", after_hangup, None),
        Edge(
            "violation_limit_reached",
            OPEN,
            HANGUP_REQUESTED,
            effects=[m._too_many_violations],
        ),
        Edge("stream_stopped", OPEN, ENDED, effects=[m._caller_hung_up]),
        Edge("stream_stopped", HANGUP_REQUESTED, ENDED, effects=[m._finish_hangup]),
        Edge("socket_closed", OPEN, ENDED, effects=[m._socket_dropped]),
        Edge("socket_closed", HANGUP_REQUESTED, ENDED, effects=[m._finish_hangup]),
        Edge("socket_closed", FINAL, None),  # the socket goes after the call: expected
        Edge("hangup_timed_out", HANGUP_REQUESTED, ENDED, effects=[m._finish_hangup]),
        Edge("connect_timed_out", CONNECTING, ENDED, effects=[m._no_stream]),
        Edge("fatal_error", (*OPEN, HANGUP_REQUESTED), ERROR, effects=[m._fail]),
    ]


_TABLE = MachineTable("call", STATES, CONNECTING, _edges())
