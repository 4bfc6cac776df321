"""One whole call on this machine: a real server on 127.0.0.1 runs a conversation
machine, the phone simulator dials it and follows a caller script.

`fsm-voice demo`, `fsm-voice bench turns`, the corpus script and the end-to-end tests
all place their calls here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fsm_voice.agents.machines import Providers
    from fsm_voice.conversation.language.spec import MachineSpec
    from fsm_voice.eventlog.base import EventLog
    from fsm_voice.simulator.caller import CallerResult, StepEvent
    from fsm_voice.simulator.caller_script import CallerScript

__all__ = ["StepWatcher", "run_demo_call"]


class StepWatcher(Protocol):
    """What shows the caller's steps as they happen (the demo's console view)."""

    def on_step(self, step: StepEvent) -> None: ...


async def run_demo_call(
    spec: MachineSpec,
    script: CallerScript,
    kit: Providers,
    log: EventLog,
    view: StepWatcher | None = None,
) -> tuple[CallerResult, str | None, str]:
    """One call of `script` against `spec` over a real socket; returns the caller's
    result, the conversation's last state and the call id."""
    from fsm_voice.clock import RandomIds, SystemClock
    from fsm_voice.conversation.runner import conversation_agent
    from fsm_voice.server import create_app, serve_in_background
    from fsm_voice.simulator.caller import ScriptedCaller
    from fsm_voice.simulator.client import dial
    from fsm_voice.simulator.phone import PhoneSimulator

    clock = SystemClock()
    agent = conversation_agent(
        spec, recognizer=kit.recognizer, synthesizer=kit.synthesizer, telephony=kit.telephony
    )
    app = create_app(
        log, agent=agent, machine_name=spec.name, machine_version=spec.version, clock=clock
    )
    params = {"caller": "+15550100", "called": "+15550199", "machine": spec.name}
    async with serve_in_background(app) as server, dial(server.url) as socket:
        sim = PhoneSimulator(socket, clock, RandomIds(), custom_parameters=params)
        async with sim:
            caller = ScriptedCaller(
                sim,
                script,
                kit.caller_voice,
                clock,
                on_step=view.on_step if view else None,
                agent_marks=True,  # our own server: it marks every sentence
            )
            result = await caller.run()
            if not result.hung_up_ms and result.close_code is None:
                await sim.hangup()  # the script ended with the call still up
        await app.state.voice.wait_finished(1)
    await log.flush()
    call_id = app.state.voice.finished[0]  # this server's call (the log may be shared)
    ended = log.events(call_id, kind="conversation_ended")
    end_state = str(ended[-1].data["state"]) if ended else None
    return result, end_state, call_id
