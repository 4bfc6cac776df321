"""Whole calls of machines/appointment.yaml with the Azure pair on the fake SDK.

The runtime, the conversation machine, the phone simulator and the caller scripts
are the real ones; the Azure adapters run on the fake SDK, whose threads do the
recognising and synthesising. The call runs on a VirtualClock that jumps whenever
everything is idle; "everything" includes the fake service's threads, so time does
not run ahead while the SDK is still working on what it was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_azure_sdk import FakeSpeechSdk, FakeSpeechService, drained

from fsm_voice.clock import VirtualClock
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.conversation.telephony import SimulatedTelephony
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.azure_stt import AzureRecognizer
from fsm_voice.providers.azure_tts import AzureSynthesizer
from fsm_voice.providers.scripted import ScriptedSynthesizer
from fsm_voice.simulator.caller import CallerResult, ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.testing import in_process_call

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key"
pytestmark = pytest.mark.anyio


class ServiceAwareClock(VirtualClock):
    """A VirtualClock that counts the fake service's threads as "not idle"."""

    def __init__(self, service: FakeSpeechService) -> None:
        super().__init__()
        self.service = service

    async def settle(self) -> None:
        while True:
            await drained(self.service)
            await super().settle()
            if self.service.idle:
                return


async def azure_call(
    caller: str, service: FakeSpeechService
) -> tuple[CallerResult, list[EventRecord], SimulatedTelephony]:
    script = load_caller_script(ROOT / "callers" / f"{caller}.yaml")
    service.script = script.lines()
    sdk = FakeSpeechSdk(service)
    clock = ServiceAwareClock(service)
    telephony = SimulatedTelephony()
    synthesizer = AzureSynthesizer(key=KEY, sdk=sdk, environ={})
    agent = conversation_agent(
        load_machine(ROOT / "machines" / f"{script.machine}.yaml"),
        recognizer=lambda: AzureRecognizer(
            key=KEY,
            sdk=sdk,
            clock=clock,
            jitter=lambda: 0.5,
            silence_timeout_ms=500,
            environ={},
        ),
        synthesizer=synthesizer,
        telephony=telephony,
    )
    log = MemoryEventLog()
    params = {"caller": "+15550123"}
    async with in_process_call(agent, clock=clock, log=log, custom_parameters=params) as call:
        result = await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
        await call.wait_ended()
    await synthesizer.stop()
    (record,) = log.calls()
    return result, list(log.events(record.call_id)), telephony


def of(events: list[EventRecord], source: str, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.source == source and e.kind == kind]


@pytest.fixture
def service() -> Any:
    service = FakeSpeechService()
    yield service
    service.close()
    assert not service.callback_errors


async def test_the_appointment_is_rescheduled_over_the_azure_pair(
    service: FakeSpeechService,
) -> None:
    result, events, telephony = await azure_call("appointment-happy", service)
    assert result.ok, result.failure
    states = [d["state"] for d in of(events, "conversation", "state_entered")]
    assert states == ["greet", "pick_day", "pick_time", "rescheduled"]
    assert telephony.sms == [
        ("+15550123", "Riverside Clinic: your appointment is now tuesday at two o'clock.")
    ]
    committed = [d["text"] for d in of(events, "stt", "transcript_committed")]
    assert committed == service.script
    assert of(events, "stt", "transcript_partial")  # interim results were logged too
    stt_states = [d["state"] for d in of(events, "stt", "state_entered")]
    assert stt_states == ["connecting", "streaming", "closed"]
    spoken = [text for s in service.synthesizers for text in s.spoken]
    assert spoken[0].startswith("Hi Alex, this is Riverside Clinic")
    assert "Which day works better?" in spoken
    # each listen state's expectations reached the service as a phrase list
    (sdk_recognizer,) = service.recognizers
    assert {"reschedule", "tuesday", "two o'clock"} <= sdk_recognizer.phrases_ever


async def test_barge_in_stops_azure_synthesis_mid_sentence(service: FakeSpeechService) -> None:
    # The service is slow: 3 s of the greeting's audio until the agent stops speaking
    # (the caller barges in 2 s into it), so there is synthesis left to stop.
    service.chunk_allowance = 15
    service.release_on_stop = True
    result, events, _ = await azure_call("appointment-bargein", service)
    assert result.ok, result.failure
    ended = of(events, "conversation", "conversation_ended")
    assert [d["state"] for d in ended] == ["cancelled"]
    finished = of(events, "conversation", "prompt_finished")
    assert finished[0]["interrupted"]
    (stopped,) = [s for s in service.synthesizers if s.stop_calls]
    assert stopped.stop_calls == 1 and stopped.outcomes == ["stopped"]
    assert stopped.spoken[0].startswith("Hi Alex") and stopped.chunks_sent == 15
