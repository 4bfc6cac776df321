"""Every real call replays: the cases a quiet machine and instant speech never made.

Live calls stop sentences half-sent (a barge-in, a hang-up while a cloud voice still
streams), open their socket late on a loaded server, get caller frames late, and
run a machine file that has since gained a comment. Each is recorded here on the
virtual clock, through the real runtime and conversation runner, and replayed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import cache
from pathlib import Path

import anyio
import pytest

from fsm_voice.audio.mulaw import FRAME_BYTES
from fsm_voice.call.runtime import CallRuntime
from fsm_voice.call.socket import memory_socket_pair
from fsm_voice.clock import VirtualClock
from fsm_voice.conversation.language.loader import load_machine, load_machine_text
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import Grammar, SttListener
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.replay import ReplayInputError, assert_replays, load_from_log, replay
from fsm_voice.replay.providers import UNLOGGED_CUT
from fsm_voice.replay.replayer import CUT_OFF
from fsm_voice.simulator.caller import ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.testing import in_process_call
from fsm_voice.twilio.media_streams import MEDIA_STREAMS

ROOT = Path(__file__).resolve().parent.parent
TONE = bytes([0x10, 0x90] * (FRAME_BYTES // 2))  # loud enough to be agent speech


class StreamingVoice:
    """A synthesiser that streams like a cloud voice: `piece_frames` of audio every
    `every_ms` of call time, so a sentence is still arriving when the caller cuts it.
    `fail_at`: the sentence number (from 0) whose synthesis fails after two pieces."""

    name = "streaming"

    def __init__(self, clock: VirtualClock, every_ms: int = 60, fail_at: int | None = None):
        self.clock = clock
        self.every_ms = every_ms
        self.piece_frames = 5
        self.fail_at = fail_at
        self.sentences = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        number, self.sentences = self.sentences, self.sentences + 1
        return self._stream(text, number)

    async def _stream(self, text: str, number: int) -> AsyncIterator[bytes]:
        frames = max(20, len(text) * 65 // 20)
        sent = 0
        while sent < frames:
            await self.clock.sleep(self.every_ms)
            if number == self.fail_at and sent >= 2 * self.piece_frames:
                raise ConnectionError("voice socket closed")
            n = min(self.piece_frames, frames - sent)
            yield TONE * n
            sent += n


async def _record(caller: str, log: MemoryEventLog, fail_at: int | None) -> str:
    script = load_caller_script(ROOT / "callers" / f"{caller}.yaml")
    spec = load_machine(ROOT / "machines" / f"{script.machine}.yaml")
    clock = VirtualClock()
    agent = conversation_agent(
        spec,
        recognizer=lambda: ScriptedRecognizer(script.lines()),
        synthesizer=StreamingVoice(clock, fail_at=fail_at),
    )
    params = {"caller": "+15550123"}
    async with in_process_call(agent, clock=clock, log=log, custom_parameters=params) as call:
        await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
        await call.wait_ended()
    log.update_call(call.runtime.call_id, machine=spec.name)
    await log.flush()
    return call.runtime.call_id


@cache
def recorded(caller: str, fail_at: int | None = None) -> MemoryEventLog:
    log = MemoryEventLog()
    anyio.run(_record, caller, log, fail_at)
    return log


def kinds(events: tuple[EventRecord, ...], kind: str) -> list[EventRecord]:
    return [e for e in events if e.kind == kind]


# --- a sentence stopped half-sent ---


@pytest.mark.parametrize("caller", ["appointment-hangup", "appointment-bargein"])
def test_a_sentence_stopped_half_sent_replays_as_recorded(caller: str) -> None:
    log = recorded(caller)
    recording = load_from_log(log)
    (cut,) = kinds(recording.events, "sentence_cut")
    assert cut.data["pieces"] and cut.data["bytes"] == sum(n for _, n in cut.data["pieces"])
    result = assert_replays(log)
    assert result.notes == ()
    # Event for event, and the agent track byte for byte: the half sentence went out again.
    assert [(e.t_ms, e.source, e.kind, e.data) for e in result.events] == [
        (e.t_ms, e.source, e.kind, e.data) for e in recording.events
    ]
    assert result.agent_audio == recording.agent and len(recording.agent) >= cut.data["bytes"]


def test_a_recording_from_before_cut_sentences_were_logged_replays_and_says_so() -> None:
    recording = load_from_log(recorded("appointment-hangup"))
    old = replace(recording, events=tuple(e for e in recording.events if e.kind != "sentence_cut"))
    result = replay(old)
    assert result.notes == (UNLOGGED_CUT,)


def test_a_synthesis_that_failed_half_sent_replays_as_recorded() -> None:
    log = recorded("appointment-happy", fail_at=0)
    recording = load_from_log(log)
    (cut,) = kinds(recording.events, "sentence_cut")
    assert cut.data["error"] == "ConnectionError: voice socket closed" and cut.data["pieces"]
    assert kinds(recording.events, "synthesis_failed")
    assert assert_replays(log).compared > 10


# --- time 0 is when the socket opened ---


@pytest.mark.anyio
async def test_the_call_clock_starts_when_the_call_runs_not_when_it_is_built() -> None:
    clock = VirtualClock()
    log = MemoryEventLog()
    server_end, phone_end = memory_socket_pair()
    runtime = CallRuntime(server_end, wire=MEDIA_STREAMS, call_id="FVlate", clock=clock, log=log)
    await clock.advance(58)  # a loaded server: the runtime runs 58 ms after it was built
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        await phone_end.close()
        await runtime.finished.wait()
    (opened,) = [e for e in log.events("FVlate") if e.kind == "socket_opened"]
    assert opened.t_ms == 0


def _shifted(log: MemoryEventLog, ms: int) -> MemoryEventLog:
    """The same call as if the live runtime had logged everything `ms` later."""
    recording = load_from_log(log)
    (call,) = log.calls()
    shifted = MemoryEventLog()
    shifted.open_call(call)
    for e in recording.events:
        data = dict(e.data)
        if e.kind == "speech_started":
            data["at_ms"] += ms
        if "pieces" in data:  # each send of a sentence, at its call time
            data["pieces"] = [[t + ms, n] for t, n in data["pieces"]]
        if e.kind == "transcript_committed":
            data["start_ms"] += ms
            data["end_ms"] += ms
        shifted.append(replace(e, t_ms=e.t_ms + ms, data=data))
    for track in ("caller", "agent"):
        for chunk in log.audio(call.call_id, track):
            shifted.append_audio(replace(chunk, t_ms=chunk.t_ms + ms))
    return shifted


def test_a_call_whose_socket_opened_late_replays_from_that_time() -> None:
    late = _shifted(recorded("appointment-bargein"), 58)  # beyond the 50 ms tolerance
    assert assert_replays(late).compared > 20


# --- what is compared ---


def test_a_comment_added_to_the_machine_file_changes_no_decision() -> None:
    log = recorded("appointment-bargein")
    path = ROOT / "machines" / "appointment.yaml"
    spec = load_machine_text("# a note for the reader\n\n" + path.read_text(), path)
    result = assert_replays(log, machine=spec)
    live = [e.data["line"] for e in kinds(load_from_log(log).events, "handler_selected")]
    again = [e.data["line"] for e in kinds(result.events, "handler_selected")]
    assert again == [line + 2 for line in live] and live  # still in the log, for people


def test_offline_mode_refuses_a_recording_made_with_the_scripted_recogniser() -> None:
    with pytest.raises(ReplayInputError, match="scripted recogniser") as refused:
        replay(recorded("appointment-bargein"), mode="offline")
    assert "--mode recorded" in str(refused.value)


# --- a log cut off by a crash ---


def test_a_call_cut_off_by_a_crash_replays_as_cut_off() -> None:
    recording = load_from_log(recorded("appointment-bargein"))
    half = len(recording.events) // 2
    last_ms = recording.events[half - 1].t_ms
    caller = tuple(c for c in recording.caller if c.t_ms <= last_ms)
    cut = replace(recording, events=recording.events[:half], caller=caller, ended=False)
    result = replay(cut)
    assert result.status == "cut_off" and result.ok and CUT_OFF in result.notes
    assert result.compared > 5
    # The same prefix from a call that had ended is a divergence: the flag is what says.
    assert replay(replace(cut, ended=True)).status == "diverged"


# --- the recogniser hears the line, not the server's load ---


class FedTimes:
    """A recogniser that notes the call time of every frame it is fed."""

    name = "fed-times"

    def __init__(self) -> None:
        self.fed: list[int] = []

    async def start(self, listener: SttListener) -> None:
        pass

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        self.fed.append(t_ms)

    def set_grammar(self, grammar: Grammar | None) -> None:
        pass

    def set_speaking(self, speaking: bool) -> None:
        pass

    async def stop(self) -> None:
        pass


@pytest.mark.anyio
async def test_late_caller_frames_reach_the_recogniser_at_their_place_on_the_line() -> None:
    recognizer = FedTimes()
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    agent = conversation_agent(
        spec, recognizer=lambda: recognizer, synthesizer=ScriptedSynthesizer()
    )
    async with in_process_call(agent) as call:
        await call.sim.send_silence(200)  # 10 frames, steady
        frame = {"track": "inbound", "payload": "//////////8="}

        async def send(chunk: int) -> None:
            media = {"event": "media", "streamSid": call.sim.stream_sid, "media": frame}
            media["media"] = frame | {"chunk": str(chunk)}
            await call.phone_socket.send(json.dumps(media))

        await call.clock.sleep(96)  # frame 11 is 76 ms late...
        for chunk in (11, 12, 13, 14):  # ...and the next three come in a burst with it
            await send(chunk)
        await call.clock.sleep(20)
        await send(17)  # two frames lost on the line: a real gap
        await call.clock.sleep(40)
    fed = recognizer.fed
    first = fed[0]
    assert fed[:14] == [first + 20 * k for k in range(14)]  # no silence for lateness
    assert fed[14] == first + 20 * 16  # the lost frames keep their 40 ms


def test_replay_command_reports_a_crash_cut_log_as_cut_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fsm_voice.cli import main
    from fsm_voice.eventlog import SqliteEventLog

    source = recorded("appointment-bargein")
    (call,) = source.calls()
    events = list(source.events(call.call_id))
    last_ms = events[len(events) // 2 - 1].t_ms
    db = tmp_path / "crashed.db"
    with SqliteEventLog(db) as log:  # what a SIGKILL half-way through leaves behind
        log.open_call(replace(call, ended_wall_ms=None, duration_ms=None, end_reason=None))
        for event in events[: len(events) // 2]:
            log.append(event)
        for chunk in source.audio(call.call_id, "caller"):
            if chunk.t_ms <= last_ms:
                log.append_audio(chunk)
    assert main(["replay", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cut_off   call {call.call_id}: ") and "note: the log stops" in out
    assert main(["replay", "--json", "--db", str(db)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "cut_off" and report["notes"] == [CUT_OFF]
