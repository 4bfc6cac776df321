"""Outbound calls end to end: `fsm-voice call`'s function against the fake Twilio API.

Real sockets on 127.0.0.1 all the way: the SDK creates the call at the fake, the fake
answers like a phone (signed callbacks, the phone simulator on `/voice` with the
TwiML's parameters, a caller script), the conversation runs with the scripted
providers (tones of a speech-like length, shortened so a call takes a few seconds),
its SMS goes through the fake's Messages endpoint and its hangup goes REST-first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from fsm_voice.call.config import derive_stream_key
from fsm_voice.cli import main
from fsm_voice.clock import CountingIds, SystemClock
from fsm_voice.commands.call import OutboundResult, run_outbound_call
from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.language.loader import load_machine, load_machine_text
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.conversation.machine import ConversationMachine
from fsm_voice.errors import ConfigError, MissingStreamUrlError
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.replay import replay_call
from fsm_voice.security import Secret, call_token_valid
from fsm_voice.simulator.caller_script import CallerScript, load_caller_script, parse_caller_script
from fsm_voice.transport import create_transport, get_sms_transport
from fsm_voice.transports.twilio_call import (
    build_stream_twiml,
    build_stream_xml,
    initiate_outbound_call,
)
from fsm_voice.twilio.settings import TwilioSettings
from tests.fake_twilio_api import Answer, FakeTwilioApi, reserved_port, stream_of

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "AC" + "3" * 32
TOKEN = "call-test-token"
PATIENT = "+15550123"


def fast_voice() -> ScriptedSynthesizer:
    return ScriptedSynthesizer(ms_per_char=8, min_ms=200)


@dataclass
class Outcome:
    result: OutboundResult
    fake: FakeTwilioApi
    log: MemoryEventLog

    def stream_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        assert self.result.stream_call_id is not None
        return [e.data for e in self.log.events(self.result.stream_call_id, kind=kind)]

    def stream_kinds(self) -> list[str]:
        assert self.result.stream_call_id is not None
        return [e.kind for e in self.log.events(self.result.stream_call_id)]


async def outbound(
    spec: MachineSpec,
    script: CallerScript,
    *,
    heard: Sequence[str] | None = None,
    answered_by: str = "human",
    amd: bool = False,
    fault: dict[str, Any] | None = None,
    unanswered: str | None = None,
    mask_phone_numbers: bool = False,
) -> Outcome:
    clock = SystemClock()
    lines = list(heard if heard is not None else script.lines())
    fake = FakeTwilioApi(
        ACCOUNT,
        TOKEN,
        clock,
        answer=Answer(script, fast_voice(), answered_by=answered_by, unanswered=unanswered),
    )
    for name, value in (fault or {}).items():
        setattr(fake, name, value)
    log = MemoryEventLog()
    async with fake.running() as api_base:
        with reserved_port() as port:
            settings = TwilioSettings(
                account_sid=ACCOUNT,
                auth_token=Secret(TOKEN),
                from_number="+15550100",
                public_url=f"http://127.0.0.1:{port}",
                api_base=api_base,
            )
            result = await run_outbound_call(
                settings,
                spec,
                PATIENT,
                log,
                recognizer=lambda: ScriptedRecognizer(lines),
                synthesizer=fast_voice(),
                amd=amd,
                port=port,
                clock=clock,
                ids=CountingIds(),
                mask_phone_numbers=mask_phone_numbers,
            )
        for call in fake.calls.values():
            await call.done.wait()
    return Outcome(result, fake, log)


async def test_outbound_appointment_call_end_to_end() -> None:
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    script = load_caller_script(ROOT / "callers" / "appointment-happy.yaml")
    outcome = await outbound(spec, script)
    result, fake = outcome.result, outcome.fake

    # The call was created through the SDK with TwiML that streams back to /voice.
    (call,) = fake.calls.values()
    assert result.call_sid == call.sid and call.to == PATIENT
    params = call.stream_parameters
    assert params["call_id"] == result.call_id and params["machine"] == "appointment"
    assert call_token_valid(derive_stream_key(Secret(TOKEN)), result.call_id, params["token"])
    assert call.result is not None and call.result.failure is None

    # The conversation ran to its end state and texted the patient through the fake.
    ended = outcome.stream_events("conversation_ended")
    assert ended and ended[-1]["state"] == "rescheduled"
    (message,) = fake.messages
    assert message["to"] == PATIENT
    assert message["body"] == "Riverside Clinic: your appointment is now tuesday at two o'clock."
    (sms,) = [e for e in outcome.stream_events("action_completed") if "sid" in e["result"]]
    assert sms["ok"] and sms["result"]["message_sid"] == message["sid"]
    assert sms["result"]["status"] == "queued"

    # The hangup went REST-first, and the fake (like Twilio) then closed the stream.
    assert call.ended_by == "rest_hangup"
    hangup = fake.requests_to(f"/Calls/{call.sid}.json")
    assert [r.one("Status") for r in hangup] == ["completed"]
    assert outcome.stream_events("remote_hangup_requested") == [{"call_sid": call.sid}]
    # Twilio may close the stream before its HTTP answer arrives: the call then ends
    # at once and the answer is not waited for; when it came first, it is logged.
    assert outcome.stream_events("remote_hangup_done") in ([], [{"outcome": "completed"}])
    assert "socket_close_failed" not in outcome.stream_kinds()
    assert result.end_reason == "conversation:rescheduled"

    # Twilio's status callbacks were signed, accepted and logged under the CallSid.
    assert {c.status_code for c in fake.callbacks} == {204}
    statuses = [e.data["status"] for e in outcome.log.events(call.sid)]
    assert statuses == ["queued", "ringing", "in-progress", "completed"]
    assert result.status == "completed"

    # The Twilio call replays: SMS result and REST-first hangup answered from the log.
    replayed = await replay_call(outcome.log, call_id=result.stream_call_id, machine=spec)
    assert replayed.ok, replayed.divergence and replayed.divergence.describe()


@pytest.mark.parametrize(
    ("fault", "logged", "ended_by"),
    [
        # REST fails (a server error at Twilio): we close the stream at once.
        ({"update_error": (500, 20500, "Internal Server Error")}, "remote_hangup_failed", None),
        # The call was already over (21220): nothing will close the stream but us.
        (
            {"update_error": (400, 21220, "Call is not in-progress.")},
            "remote_hangup_done",
            {"outcome": "already_ended"},
        ),
        # Twilio accepted the hangup but never closed the stream: the hangup grace ends
        # the call and the runtime closes the socket.
        ({"closes_stream_on_hangup": False}, "remote_hangup_done", {"outcome": "completed"}),
    ],
)
async def test_the_stream_is_closed_by_us_when_twilio_does_not(
    fault: dict[str, Any], logged: str, ended_by: dict[str, str] | None
) -> None:
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    script = load_caller_script(ROOT / "callers" / "appointment-confirm.yaml")
    outcome = await outbound(spec, script, fault=fault)
    (call,) = outcome.fake.calls.values()
    assert call.ended_by == "stream_closed"  # by our side, not by the fake's REST hangup
    events = outcome.stream_events(logged)
    assert len(events) == 1
    if ended_by is not None:
        assert events[0] == ended_by
    else:
        assert "20500" in events[0]["error"]
    assert outcome.result.end_reason == "conversation:confirmed"
    assert outcome.stream_events("conversation_ended")[-1]["state"] == "confirmed"


async def test_an_unanswered_call_ends_on_its_final_status() -> None:
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    script = load_caller_script(ROOT / "callers" / "appointment-happy.yaml")
    outcome = await outbound(spec, script, unanswered="no-answer")
    assert outcome.result.status == "no-answer"
    assert outcome.result.stream_call_id is None and outcome.result.end_reason is None
    (call,) = outcome.fake.calls.values()
    assert call.sim is None  # no stream was ever opened
    leg = outcome.log.call(call.sid)
    assert leg is not None and leg.outcome == "no-answer"
    assert outcome.fake.messages == []


TRANSFER_MACHINE = """
name: front-desk
initial: hello
states:
  hello:
    actions:
      - say: "Connecting you to the front desk."
      - transfer: "+15550142"
"""


async def test_a_transfer_redirects_the_call_and_does_not_hang_it_up() -> None:
    spec = load_machine_text(TRANSFER_MACHINE, ROOT / "tests" / "front-desk.yaml")
    script = parse_caller_script(LISTENER.replace("amd-branch", "front-desk"), "l.yaml")
    outcome = await outbound(spec, script, heard=[])
    (call,) = outcome.fake.calls.values()
    assert call.redirects == [
        '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15550142</Dial></Response>'
    ]
    assert call.ended_by == "redirect"  # Twilio ended the stream for the <Dial>
    updates = outcome.fake.requests_to(f"/Calls/{call.sid}.json")
    assert [r.one("Status") for r in updates] == [None]  # the redirect; no Status=completed
    (transfer,) = outcome.stream_events("action_completed")
    assert transfer["ok"] and transfer["result"]["status"] == "redirected"


AMD_MACHINE = """
name: amd-branch
initial: waiting
states:
  waiting:
    actions:
      - timer: {name: give_up, after_ms: 20000}
    on:
      amd_machine: {goto: voicemail, when: "answered_by != 'fax'"}
      amd_human: human
      give_up: human
  voicemail:
    actions:
      - say: "Please call the clinic back."
      - hangup: voicemail
  human:
    actions:
      - say: "Hello, this is the clinic."
      - hangup: human
"""

LISTENER = """
name: amd-listener
machine: amd-branch
steps:
  - wait_prompt: {timeout_ms: 20000}
"""


@pytest.mark.parametrize(
    ("answered_by", "end_state"),
    [("machine_end_beep", "voicemail"), ("human", "human"), ("unknown", "human")],
)
async def test_the_amd_verdict_lets_the_machine_branch(answered_by: str, end_state: str) -> None:
    spec = load_machine_text(AMD_MACHINE, ROOT / "tests" / "amd-branch.yaml")
    script = parse_caller_script(LISTENER, "amd-listener.yaml")
    outcome = await outbound(spec, script, heard=[], answered_by=answered_by, amd=True)
    (call,) = outcome.fake.calls.values()
    assert call.form["MachineDetection"] == ["Enable"] and call.form["AsyncAmd"] == ["true"]
    detected = outcome.stream_events("answering_machine_detected")
    assert detected == [{"answered_by": answered_by}]
    ended = outcome.stream_events("conversation_ended")
    assert ended[-1]["state"] == end_state
    assert outcome.result.end_reason == f"conversation:{end_state}"
    leg = [e.data for e in outcome.log.events(call.sid, kind="answering_machine_detected")]
    assert leg == [{"answered_by": answered_by, "detection_ms": "1200"}]
    # The verdict is an input of the stream's call: a replay delivers it again.
    stream_call = outcome.result.stream_call_id
    assert outcome.stream_events("platform_notice") == [
        {"notice": "amd", "answered_by": answered_by, "detection_ms": "1200"}
    ]
    replayed = await replay_call(outcome.log, call_id=stream_call, machine=spec)
    assert replayed.ok, replayed.divergence and replayed.divergence.describe()


# --- the voice_runtime-compatible API (fsm_voice.transports.twilio_call, .transport) ---

ENV = {
    "TWILIO_ACCOUNT_SID": ACCOUNT,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_PHONE_NUMBER": "+15550100",
}


def test_initiate_outbound_call_needs_a_stream_url() -> None:
    with pytest.raises(MissingStreamUrlError, match="VOICE_STREAM_URL"):
        initiate_outbound_call("+15550199", environ=ENV)


def test_missing_credentials_are_named() -> None:
    env = {"VOICE_STREAM_URL": "wss://h.test/voice", "TWILIO_ACCOUNT_SID": ACCOUNT}
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER"):
        initiate_outbound_call("+15550199", environ=env)


async def test_initiate_outbound_call_streams_to_voice_stream_url() -> None:
    fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock())
    async with fake.running() as api_base:
        env = ENV | {"VOICE_STREAM_URL": "wss://h.test/voice"}
        sid = await anyio.to_thread.run_sync(
            lambda: initiate_outbound_call(
                "+15550199", environ=env, api_base=api_base, parameters={"machine": "survey"}
            )
        )
    call = fake.calls[sid]
    url, params = stream_of(call.twiml)
    assert url == "wss://h.test/voice" and params["machine"] == "survey"
    assert call_token_valid(derive_stream_key(Secret(TOKEN)), params["call_id"], params["token"])
    assert build_stream_xml is build_stream_twiml
    assert stream_of(build_stream_twiml("wss://other.test/voice")) == ("wss://other.test/voice", {})


async def test_sms_transport_returns_sid_status_and_recipient() -> None:
    fake = FakeTwilioApi(ACCOUNT, TOKEN, SystemClock())
    async with fake.running() as api_base:
        sms = get_sms_transport(environ=ENV, api_base=api_base)
        result = await anyio.to_thread.run_sync(
            lambda: sms.send_sms(to="+358401234567", body="Your appointment is confirmed.")
        )
        transport = create_transport("twilio", environ=ENV, api_base=api_base)
        env_url = ENV | {"VOICE_STREAM_URL": "wss://h.test/voice"}
        calling = create_transport(environ=env_url, api_base=api_base)
        sid = await anyio.to_thread.run_sync(calling.initiate_call, "+15550199")
        assert await anyio.to_thread.run_sync(transport.hangup, sid) == "completed"
        assert await anyio.to_thread.run_sync(transport.hangup, sid) == "already_ended"
    (message,) = fake.messages
    assert result == {"message_sid": message["sid"], "status": "queued", "to": "+358401234567"}


def test_unknown_transports_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="choose from twilio"):
        get_sms_transport("carrier-pigeon")
    with pytest.raises(ConfigError, match="choose from twilio"):
        create_transport("sip")
    # Credentials are read on first use, not when the transport is made.
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        get_sms_transport(environ={}).send_sms("+15550199", "hi")


# --- the command line ---


def test_call_refuses_a_number_that_is_not_e164(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "machines/appointment.yaml", "--to", "555-0199"]) == 2
    assert "E.164" in capsys.readouterr().out


def test_call_names_the_missing_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VOICE_STREAM_URL", raising=False)
    monkeypatch.delenv("VOICE_PUBLIC_URL", raising=False)
    machine = str(ROOT / "machines" / "appointment.yaml")
    assert main(["call", machine, "--to", "+15550199"]) == 1
    out = capsys.readouterr().out
    assert "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER, VOICE_PUBLIC_URL" in out


def test_settings_derive_the_webhook_base_from_the_stream_url() -> None:
    env = ENV | {"VOICE_STREAM_URL": "wss://voice.example.test/voice"}
    settings = TwilioSettings.from_env(env)
    assert settings.webhook_url("/twiml") == "https://voice.example.test/twiml"
    assert settings.voice_url == "wss://voice.example.test/voice"
    assert "call-test-token" not in repr(settings)
    public = TwilioSettings.from_env(ENV, public_url="https://pub.example.test/")
    assert public.voice_url == "wss://pub.example.test/voice"
    assert public.webhook_url("/amd") == "https://pub.example.test/amd"


# --- the AMD event in the pure conversation machine ---


@pytest.mark.parametrize(
    ("answered_by", "state", "event"),
    [
        ("machine_start", "voicemail", "amd_machine"),
        ("machine_end_silence", "voicemail", "amd_machine"),
        ("fax", "waiting", "amd_machine"),  # the `when` excludes fax: no handler taken
        ("human", "human", "amd_human"),
        ("unknown", "human", "amd_human"),
    ],
)
def test_amd_verdicts_map_to_events_and_set_answered_by(
    answered_by: str, state: str, event: str
) -> None:
    machine = ConversationMachine(load_machine_text(AMD_MACHINE, Path("amd.yaml")))
    machine.handle(ev.CallConnected({}))
    verdict = ev.AnsweringMachineDetected(answered_by)
    assert verdict.event == event
    effects = machine.handle(verdict)
    assert machine.variables["answered_by"] == answered_by
    assert machine.state == state
    if state == "waiting":
        notes = [e.details for e in effects if isinstance(e, fx.Note)]
        assert {"event": "amd_machine", "state": "waiting"} in notes


async def test_no_token_and_no_unmasked_number_reaches_the_log() -> None:
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    script = load_caller_script(ROOT / "callers" / "appointment-happy.yaml")
    outcome = await outbound(spec, script, mask_phone_numbers=True)
    (call,) = outcome.fake.calls.values()
    assert outcome.fake.messages[0]["to"] == PATIENT  # the SMS still went to the number
    token = call.stream_parameters["token"]
    calls = outcome.log.calls()
    logged = [json.dumps(e.data) for c in calls for e in outcome.log.events(c.call_id)]
    logged += [json.dumps([c.from_number, c.to_number, c.custom_parameters]) for c in calls]
    assert any("+****0123" in line for line in logged)  # masked numbers are there
    leaks = [line for line in logged if token in line or TOKEN in line or "5550123" in line]
    assert logged and not leaks
