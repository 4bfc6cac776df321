"""`CallRuntime`: the async shell around one call.

With the parts it owns, it is the only place that does I/O for a call: it routes
events to the call machine through the driver, executes the effects the machine
returns, owns the call's timers (through the Clock) and limits, and appends every
event, transition and effect to the log. Its parts are composed and handed what they
use: `socket_io.CallSocketIO` turns the socket's messages into call events and writes
the one ordered outbound queue out; `playback.AgentPlayback` puts the agent's audio,
marks and clears on that queue. Nothing here is shared with other calls except the
read-only config, the clock and the log writer.

A failure of the call's own code ends that call alone (`call/failure.py`): its tasks
and timers run under a guard, and `run` always closes the row and lets go of timers.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.abc import TaskGroup

from fsm_voice.call import effects as fx
from fsm_voice.call import events as ev
from fsm_voice.call.agent_task import Agent as Agent
from fsm_voice.call.agent_task import AgentTask
from fsm_voice.call.call_row import connected_fields
from fsm_voice.call.config import CallConfig
from fsm_voice.call.failure import FailureGuard, flush_call_rows
from fsm_voice.call.guards import LimitWatch
from fsm_voice.call.handle import CallHandle, MarkOutcome
from fsm_voice.call.line import LinePosition
from fsm_voice.call.machine import CONNECTING, LIVE, CallMachine
from fsm_voice.call.outbound import OutboundQueue
from fsm_voice.call.pending import CallTimers, MarkWaiters
from fsm_voice.call.playback import AgentPlayback
from fsm_voice.call.recorder import TrackRecorder
from fsm_voice.call.remote_hangup import RemoteHangup as RemoteHangup
from fsm_voice.call.remote_hangup import hang_up_remotely, hangs_up_remotely
from fsm_voice.call.socket import CLOSE_INTERNAL, MessageSocket
from fsm_voice.call.socket_io import CallSocketIO
from fsm_voice.call.stream_guard import StreamGuard
from fsm_voice.call.wire import Wire
from fsm_voice.clock import Clock
from fsm_voice.driver import MachineDriver
from fsm_voice.errors import FsmVoiceError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.eventlog.records import CallRecord, EventRecord, Source
from fsm_voice.eventlog.upcast import current_v
from fsm_voice.machine import Step


class CallRuntime:
    """One call, run to its end by `run`; the agent reaches it through `handle`."""

    def __init__(
        self,
        socket: MessageSocket,
        *,
        wire: Wire,
        call_id: str,
        clock: Clock,
        log: EventLog,
        config: CallConfig | None = None,
        agent: Agent | None = None,
        machine_name: str | None = None,
        machine_version: str | None = None,
        admission: dict[str, Any] | None = None,
        origin_ms: int | None = None,
        streams: StreamGuard | None = None,
    ) -> None:
        """`origin_ms`: the clock reading that is the call's time 0 (default: when `run`
        opens the call, so the socket opens at 0 however long the server took to get
        here; replay passes the recording's origin)."""
        self.call_id = call_id
        self.clock = clock
        self.config = config or CallConfig()
        self.machine = CallMachine(
            connect_timeout_ms=self.config.connect_timeout_ms,
            hangup_grace_ms=self.config.hangup_grace_ms,
        )
        self.call_sid: str | None = None
        self.custom_parameters: dict[str, str] = {}
        self.end_reason: str | None = None
        self._log = log
        self._machine_name = machine_name
        self._machine_version = machine_version
        self._admission = admission  # how the upgrade was let in (logged first)
        # The server's guard (shared: single use spans its calls); a call run alone
        # with a key still checks its token's signature and age.
        key = self.config.stream_key
        if streams is None and key is not None:
            streams = StreamGuard(key, clock, ttl_ms=self.config.stream_token_ttl_ms)
        self._streams = streams
        self._logged_parameters: dict[str, str] = {}  # custom parameters as the log shows them
        self._guard = FailureGuard(self)
        on_limit = self._guard.wrap("limit", self._limit_reached)
        self._limits = LimitWatch(clock, self.config, on_limit)
        self._loop = asyncio.get_running_loop()
        self.handle = CallHandle(self, self._loop)
        self._origin_ms = origin_ms
        self._t0 = clock.now_ms() if origin_ms is None else origin_ms
        self._seq = itertools.count()
        # The one loop that runs the call machine: each event logged, then fired.
        self._driver: MachineDriver[ev.CallEvent, fx.Effect] = MachineDriver(
            "call",
            self.machine,
            record=functools.partial(self.record, "call"),
            execute=self._record_and_execute,
            before=self._record_event,
            refused=self._rejected,
        )
        self.dispatch = self._driver.feed  # events raised by effects queue behind it
        self._timers = CallTimers(clock, self._guard.wrap("timer", self.dispatch))
        self._waiters = MarkWaiters(self._loop)
        self._outbound = OutboundQueue()
        self._caller = TrackRecorder(log, call_id, "caller", self.config.audio_chunk_frames)
        self._agent_track = TrackRecorder(log, call_id, "agent", self.config.audio_chunk_frames)
        self._ended = anyio.Event()
        self.finished = anyio.Event()  # set once run() has torn everything down
        self._tg: TaskGroup | None = None
        self._agent = AgentTask(self, agent)
        self._violations = 0
        self.line = LinePosition(lambda kind, data: self.record("transport", kind, data))
        self.remote_hangup: RemoteHangup | None = None  # set through the handle
        # The agent's side out: audio, marks and clears onto the outbound queue.
        self._playback = AgentPlayback(
            machine=self.machine,
            config=self.config,
            outbound=self._outbound,
            waiters=self._waiters,
            agent_track=self._agent_track,
            ended=self._ended,
            dispatch=self.dispatch,
            record=self.record,
        )
        # The socket side: the wire in as call events, the outbound queue out.
        self._io = CallSocketIO(
            socket,
            wire=wire,
            machine=self.machine,
            config=self.config,
            clock=clock,
            limits=self._limits,
            streams=streams,
            line=self.line,
            caller_track=self._caller,
            agent_track=self._agent_track,
            outbound=self._outbound,
            dispatch=self.dispatch,
            record=self.record,
            t_ms=self.t_ms,
            violation=self._violation,
            stream_admitted=self._stream_admitted,
            deliver_audio=self.handle._deliver_audio,
        )

    @property
    def frames_in(self) -> int:
        """Caller frames taken in (recorded and handed to the agent)."""
        return self._io.frames_in

    @property
    def frames_out(self) -> int:
        """Agent frames sent on the socket."""
        return self._io.frames_out

    # --- lifecycle ---
    async def run(self) -> str:
        """Run the call to its end; returns the end reason.

        Never raises for bad input, nor for a failure of the call's own code: either
        ends this call alone, its row closed and its timers let go. Cancelled (the
        server stopping), it closes the row and re-raises.
        """
        try:
            return await self._run()
        except Exception as e:  # past the tasks' guards: end the way the guard does
            self._tg = None  # the task group is gone: no effect may start a task
            self._guard.failed("run", e)
            await self._io.close(CLOSE_INTERNAL, "internal error")
            self._close_row()
            await flush_call_rows(self._log, self.call_id, self.record)
            return self.end_reason or "error"
        except BaseException:
            self.end_reason = self.end_reason or "cancelled"
            self._close_row()
            raise
        finally:
            self._limits.stop()
            self._timers.cancel_all()
            self._waiters.release_all(MarkOutcome.CALL_ENDED)
            self.finished.set()

    async def _run(self) -> str:
        if self._origin_ms is None:
            self._t0 = self.clock.now_ms()
        self._log.open_call(
            CallRecord(
                self.call_id,
                self.clock.wall_ms(),
                machine=self._machine_name,
                machine_version=self._machine_version,
            )
        )
        if self._admission is not None:
            self.record("runtime", "upgrade_accepted", self._admission)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.dispatch(ev.SocketOpened())
            self._limits.start()
            tg.start_soon(self._guard.run, self._io.read_loop)
            tg.start_soon(self._guard.run, self._io.write_loop)
            await self._ended.wait()
            await self._agent.finish()
            tg.cancel_scope.cancel()
        await self._io.close(1000, "call ended")
        if self._streams is not None:
            self._streams.release(self.call_sid)  # set only once the guard let it in
        self._close_row()
        await flush_call_rows(self._log, self.call_id, self.record)
        return self.end_reason or "unknown"

    def _close_row(self) -> None:
        self._caller.cut()
        self._agent_track.cut()
        failed = self.machine.state == "error" or self._guard.failed_in is not None
        self._log.update_call(
            self.call_id,
            ended_wall_ms=self.clock.wall_ms(),
            duration_ms=self.t_ms(),
            end_reason=self.end_reason,
            outcome="error" if failed else "completed",
            final_state=self.machine.state,
        )

    def t_ms(self) -> int:
        return self.clock.now_ms() - self._t0

    def record(self, source: Source, kind: KindName, data: dict[str, Any]) -> None:
        # Stamped with the kind's current version: writes are never in an old form.
        v = current_v(source, kind)
        seq, t_ms, wall_ms = next(self._seq), self.t_ms(), self.clock.wall_ms()
        self._log.append(EventRecord(self.call_id, seq, t_ms, wall_ms, source, kind, data, v))

    # --- events into the machine (through `dispatch`, the driver's feed), effects out ---
    def _record_event(self, event: ev.CallEvent) -> None:
        self.record(event.source, event.trigger, event.data())  # type: ignore[arg-type]

    def _rejected(self, event: ev.CallEvent, step: Step[fx.Effect]) -> None:
        self.record("call", "event_rejected", {"state": step.source, "event": event.trigger})

    def _record_and_execute(self, effect: fx.Effect) -> None:
        self.record("call", effect.kind, effect.data())
        self._execute(effect)

    def _execute(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.SendMark):
            self._playback.send_mark(effect.mark_id, effect.name)
        elif isinstance(effect, fx.ReleaseMark):
            self._waiters.release(effect.mark_id, effect.outcome)
        elif isinstance(effect, fx.StartTimer):
            self._timers.start(effect)
        elif isinstance(effect, fx.CancelTimer):
            self._timers.cancel(effect.name)
        elif isinstance(effect, fx.DeliverDtmf):
            self.handle._deliver_dtmf(effect.digit)
        elif isinstance(effect, fx.ClearPlayback):
            self._playback.clear()
        elif isinstance(effect, fx.ReportViolation):
            self._count_violation()
        elif isinstance(effect, fx.StartAgent):
            self._start_agent()
        elif isinstance(effect, fx.CloseSocket):
            if hangs_up_remotely(self, effect):
                self._spawn(hang_up_remotely, self, self._io.close, effect.code, effect.reason)
            else:
                self._spawn(self._io.close, effect.code, effect.reason)
        elif isinstance(effect, fx.EndCall):
            self._end(effect.reason)

    def _count_violation(self) -> None:
        self._violations += 1
        if self._violations == self.config.max_violations:
            self.dispatch(ev.ViolationLimitReached(self._violations))

    def _violation(self, reason: str, detail: str) -> None:
        self.record("transport", "protocol_violation", {"reason": reason, "detail": detail})
        self._count_violation()

    def _stream_admitted(
        self, call_sid: str | None, custom_parameters: dict[str, str], logged: dict[str, str]
    ) -> None:
        self.call_sid = call_sid
        self.custom_parameters = custom_parameters
        self._logged_parameters = logged

    def _start_agent(self) -> None:
        self.handle._set_connected()
        fields = connected_fields(self.machine.stream_sid, self.call_sid, self._logged_parameters)
        self._log.update_call(self.call_id, **fields)
        if self._agent.agent is not None:
            self._spawn(self._agent.run)
            self._agent.spawned = True
            self._io.agent_spawned()

    def _end(self, reason: str) -> None:
        self.end_reason = reason
        self._limits.stop()
        self._timers.cancel_all()
        self._waiters.release_all(MarkOutcome.CALL_ENDED)
        self.handle._set_ended(reason)
        self._ended.set()

    def _spawn(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        assert self._tg is not None, "the call is not running"
        self._tg.start_soon(self._guard.run, func, *args)

    # --- for the failure guard ---
    @property
    def running(self) -> bool:
        """Whether effects can still start tasks (the call's task group is up)."""
        return self._tg is not None

    def drop_queued_events(self) -> None:
        self._driver.drop_queued()

    def end_now(self, reason: str) -> None:
        """End the call here, without the machine (if it has not ended already)."""
        if not self._ended.is_set():
            self._end(reason)

    # --- limits ---
    def _limit_reached(self, limit: str, value_ms: int, reason: str) -> None:
        if self.machine.state not in (CONNECTING, *LIVE):
            return  # already ending: the end has its own reason
        self.record("runtime", "limit_reached", {"limit": limit, "limit_ms": value_ms})
        self.dispatch(ev.HangupRequested(reason))

    # --- requests from the handle (on the loop) ---
    def queue_audio(self, mulaw: bytes) -> bool:
        return self._playback.queue_audio(mulaw)

    def request_mark(self, name: str, timeout_ms: int | None) -> asyncio.Future[MarkOutcome]:
        return self._playback.request_mark(name, timeout_ms)

    def request_clear(self) -> None:
        self.dispatch(ev.ClearRequested())

    def request_hangup(self, reason: str) -> None:
        self.dispatch(ev.HangupRequested(reason))

    def redirect_parameters(self) -> dict[str, str]:
        """The <Parameter>s (`call_id`, a fresh `token`) for TwiML that moves this live
        call to a new stream through Twilio REST: that `start` is let in although the
        CallSid already has a stream, once, within the token's TTL."""
        if self.call_sid is None:
            raise FsmVoiceError("only a started call with a CallSid can be redirected")
        call_id = self.custom_parameters.get("call_id") or self.call_id
        if self._streams is None:  # tokens are not checked here
            return {"call_id": call_id}
        return {"call_id": call_id, "token": self._streams.redirect_token(call_id, self.call_sid)}
