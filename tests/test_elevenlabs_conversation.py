"""A whole call with the ElevenLabs pair: machines/appointment.yaml over real sockets.

The demo's own call path (a uvicorn server on 127.0.0.1, the phone simulator dialling
it, the caller script) with the agent's ears and voice on ElevenLabs — the SDK's
realtime client and HTTP streaming — against the local fake. The fake hears the
caller's tone-speech with its VAD and returns the script's lines as committed
transcripts; it speaks μ-law tones. A real-time call: the test checks outcomes and
facts in the log, never timings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fsm_voice.agents.machines import Providers
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.telephony import SimulatedTelephony
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import SpeechRecognizer
from fsm_voice.providers.elevenlabs_stt import ElevenLabsRecognizer
from fsm_voice.providers.elevenlabs_tts import ElevenLabsSynthesizer
from fsm_voice.providers.scripted import ScriptedSynthesizer
from fsm_voice.simulator.caller import CallerResult
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.simulator.demo_call import run_demo_call
from tests.fake_elevenlabs import API_KEY, FakeElevenLabs

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.anyio, pytest.mark.real_server, pytest.mark.slow]


async def run_call(
    name: str, fake: FakeElevenLabs | None = None
) -> tuple[CallerResult, str | None, list[EventRecord], FakeElevenLabs]:
    """One caller script against its machine, the agent on the ElevenLabs pair."""
    script = load_caller_script(ROOT / "callers" / f"{name}.yaml")
    spec = load_machine(ROOT / "machines" / f"{script.machine}.yaml")
    fake = fake or FakeElevenLabs(ms_per_char=25)
    fake.script = script.lines()
    log = MemoryEventLog()
    async with fake.serve() as base_url:
        options: dict[str, Any] = {"api_key": API_KEY, "base_url": base_url, "environ": {}}

        def recognizer() -> SpeechRecognizer:
            return ElevenLabsRecognizer(**options)

        tts = ElevenLabsSynthesizer(**options)
        kit = Providers(recognizer, tts, ScriptedSynthesizer(), SimulatedTelephony())
        try:
            result, end_state, call_id = await run_demo_call(spec, script, kit, log)
        finally:
            await kit.stop()
    assert end_state == script.expect.end_state, (result.failure, end_state)
    assert result.failure is None, result.failure
    return result, end_state, list(log.events(call_id)), fake


def conv(events: list[EventRecord], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.source == "conversation" and e.kind == kind]


async def test_appointment_call_on_the_elevenlabs_pair() -> None:
    _, end_state, events, fake = await run_call("appointment-happy")
    assert end_state == "rescheduled"
    heard = [e.data for e in events if e.kind == "transcript_committed"]
    assert [h["text"] for h in heard] == ["reschedule", "tuesday", "two o'clock"]
    # call times from Scribe's word timestamps: each utterance ends after it starts
    assert all(0 < h["start_ms"] < h["end_ms"] for h in heard)
    stt_states = [
        e.data["state"] for e in events if e.source == "stt" and e.kind == "state_entered"
    ]
    assert stt_states[:2] == ["connecting", "streaming"] and stt_states[-1] == "closed"
    assert not [e for e in events if e.kind in ("provider_error", "provider_failed")]
    # the agent's every sentence was one ulaw_8000 request, its audio sent to the caller
    said = [e for e in events if e.kind == "sentence_synthesized"]
    assert len(said) == len(fake.tts_requests) > 3
    assert {r.output_format for r in fake.tts_requests} == {"ulaw_8000"}
    assert all(r.finished for r in fake.tts_requests)
    # every caller frame went to Scribe, in one session
    (session,) = fake.sessions
    assert session.closed_by == "client"
    assert len(session.audio) >= 8000 * 5  # several seconds of caller audio


async def test_barge_in_stops_the_elevenlabs_request_mid_stream() -> None:
    fake = FakeElevenLabs(ms_per_char=40)
    fake.tts_real_time = True  # the greeting is still streaming when the caller talks
    _, end_state, events, fake = await run_call("appointment-bargein", fake)
    assert end_state == "cancelled"
    assert conv(events, "prompt_stopped")[0]["reason"] == "barge_in"
    assert any(e.kind == "clear_sent" for e in events)
    greeting = fake.tts_requests[0]
    assert greeting.client_left and not greeting.finished  # the service stopped
    assert greeting.sent_bytes < len(greeting.text) * 40 * 8
