"""Faults in a replay: the faulted platform's facts, the injector, the duplicate stream.

`replay_call(..., faults=[...])` builds one `ReplayFaults`. With no faults every
method hands back what it was given, so a plain replay is untouched, except that a
faulted run's fixture logs its `fault_injected` events again at their times (what
the faults caused comes back from the log as inputs, so nothing is injected twice).
A recording whose call was refused as a duplicate replays with its CallSid already
live: the other stream is the outside world, known from the log, as a transcript is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskGroup

from fsm_voice.call.runtime import Agent, CallRuntime
from fsm_voice.call.socket import MemorySocket, memory_socket_pair
from fsm_voice.clock import Clock
from fsm_voice.conversation.streams import LiveStreams
from fsm_voice.errors import SocketClosed
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import SpeechRecognizer
from fsm_voice.replay.decisions import state_changes
from fsm_voice.replay.facts import Fact, inbound_facts
from fsm_voice.replay.faults import Fault, FaultInjector, FaultKind, Injection, plan_faults
from fsm_voice.replay.recording import Recording
from fsm_voice.replay.views import RecordingViews, StateChange
from fsm_voice.twilio.media_streams import MEDIA_STREAMS

__all__ = ["ReplayFaults", "recorded_backoffs"]

DUPLICATE_SUFFIX = "-duplicate"


class ReplayFaults:
    def __init__(
        self,
        recording: Recording,
        views: RecordingViews,
        faults: Sequence[Fault],
        *,
        reenact_drops: bool = False,
    ) -> None:
        self.recording = recording
        self.views = views
        self.facts: list[Fact] = inbound_facts(views)
        self.injector: FaultInjector | None = None
        self.side_log = MemoryEventLog()  # the duplicate stream's call, if one is opened
        self._start: dict[str, object] | None = None
        self._tg: TaskGroup | None = None
        self._agent: Agent | None = None
        self._clock: Clock | None = None
        if faults:
            self.facts, injections = plan_faults(self.facts, faults, views)
            self.injector = FaultInjector(injections, on_duplicate=self._open_duplicate)
        else:
            logged = [Injection.logged(f) for f in views.faults]
            # A real recogniser (offline mode) loses its connection again; a recorded
            # one answers from the log, where the drop's effects already are.
            again: tuple[FaultKind, ...] = ("stt_drop",) if reenact_drops else ()
            backoffs = backoffs_of(views.states)
            self.injector = (
                FaultInjector(logged, act=False, reenact=again, backoffs_ms=backoffs)
                if logged
                else None
            )

    def live_streams(self) -> LiveStreams:
        return LiveStreams(dict(self.views.duplicates_refused))

    def recognizer(self, factory: Callable[[], SpeechRecognizer]) -> Callable[[], SpeechRecognizer]:
        if self.injector is None or not (self.injector.act or self.injector.reenact):
            return factory
        return self.injector.recognizer(factory)

    def agent(self, agent: Agent) -> Agent:
        return agent if self.injector is None else self.injector.agent(agent)

    def attach(self, tg: TaskGroup, agent: Agent, clock: Clock) -> None:
        """Where a duplicate stream runs: beside the replayed call, with its agent."""
        self._tg, self._agent, self._clock = tg, agent, clock

    def merge_into(self, log: MemoryEventLog) -> None:
        """Copy the duplicate's call into the replay's log (after the replay: the
        replay phone counts the replayed call's events as they come)."""
        for call in self.side_log.calls():
            log.open_call(call)
            for event in self.side_log.events(call.call_id):
                log.append(event)
            for track in ("caller", "agent"):
                for chunk in self.side_log.audio(call.call_id, track):
                    log.append_audio(chunk)

    def _open_duplicate(self, call_sid: str) -> None:
        assert self._tg is not None and self._agent is not None and self._clock is not None
        start = next(
            (f.message for f in self.facts if f.message and f.message["event"] == "start"), None
        )
        if start is None:
            return
        server_end, phone_end = memory_socket_pair()
        runtime = CallRuntime(
            server_end,
            wire=MEDIA_STREAMS,
            call_id=self.recording.call_id + DUPLICATE_SUFFIX,
            clock=self._clock,
            log=self.side_log,
            agent=self._agent,
            machine_name=self.recording.machine,
        )
        self._tg.start_soon(runtime.run)
        self._tg.start_soon(_dial_duplicate, phone_end, start, call_sid)


def recorded_backoffs(events: tuple[EventRecord, ...]) -> list[int]:
    """How long the recogniser waited in `reconnecting` each time, in order."""
    return backoffs_of(state_changes(events))


def backoffs_of(states: Sequence[StateChange]) -> list[int]:
    backoffs: list[int] = []
    since: int | None = None
    for change in states:
        if change.machine != "stt":
            continue
        if change.state == "reconnecting":
            since = change.t_ms
        elif change.state == "connecting" and since is not None:
            backoffs.append(change.t_ms - since)
            since = None
    return backoffs


async def _dial_duplicate(socket: MemorySocket, start: dict[str, object], call_sid: str) -> None:
    """The platform's second stream: connected, the same call's start, then listen."""
    details = dict(start["start"])  # type: ignore[call-overload]
    details["callSid"] = call_sid
    details["streamSid"] = str(details.get("streamSid", "")) + "-2"
    messages = [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": details,
            "streamSid": details["streamSid"],
        },
    ]
    try:
        for message in messages:
            await socket.send(json.dumps(message, separators=(",", ":")))
        while True:  # until the runtime hangs up
            await socket.receive()
    except SocketClosed:
        pass
    finally:
        await socket.drop()
        await anyio.lowlevel.checkpoint()
