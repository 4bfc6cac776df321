"""The synthesiser's machine in a call's log: its moves are logged live, as `state_entered`
of machine `tts`, and replay's stand-in synthesiser reports them again where they were.

The live synthesiser serves every call of the process; a call logs its moves while it
lives. Here one is stopped mid-call, so the log holds connecting → streaming → closed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer
from fsm_voice.replay import assert_replays, load_from_log
from fsm_voice.simulator.caller import ScriptedCaller
from fsm_voice.simulator.caller_script import load_caller_script
from fsm_voice.testing import in_process_call

ROOT = Path(__file__).resolve().parent.parent
STOPPED_AT_MS = 3_000  # into the call: the greeting is playing


async def _record(log: MemoryEventLog, *, stop_mid_call: bool) -> str:
    spec = load_machine(ROOT / "machines" / "appointment.yaml")
    script = load_caller_script(ROOT / "callers" / "appointment-happy.yaml")
    synthesizer = ScriptedSynthesizer()
    agent = conversation_agent(
        spec, recognizer=lambda: ScriptedRecognizer(script.lines()), synthesizer=synthesizer
    )
    async with in_process_call(agent, log=log) as call, anyio.create_task_group() as tg:
        if stop_mid_call:

            async def stop_the_synthesizer() -> None:
                await call.clock.sleep(STOPPED_AT_MS)  # virtual: a point in call time
                await synthesizer.stop()

            tg.start_soon(stop_the_synthesizer)
        await ScriptedCaller(call.sim, script, ScriptedSynthesizer(), call.clock).run()
        await call.wait_ended()
    call_id = call.runtime.call_id
    log.update_call(call_id, machine=spec.name)  # as `serve` names it
    await log.flush()
    return call_id


def _tts_moves(events: Any) -> list[tuple[str, str, Any, str]]:
    return [
        (e.data["from"], e.data["state"], e.data["on"], e.data["provider"])
        for e in events
        if e.source == "tts" and e.kind == "state_entered" and e.data["machine"] == "tts"
    ]


@pytest.mark.anyio
async def test_a_live_call_logs_its_synthesizers_moves() -> None:
    log = MemoryEventLog()
    call_id = await _record(log, stop_mid_call=True)
    events = log.events(call_id)
    assert _tts_moves(events) == [
        ("idle", "connecting", None, "scripted"),
        ("connecting", "streaming", None, "scripted"),
        ("streaming", "closed", None, "scripted"),
    ]
    began = next(e for e in events if e.source == "conversation")
    connecting, streaming, closed = (
        e for e in events if e.source == "tts" and e.kind == "state_entered"
    )
    assert connecting.seq < streaming.seq < began.seq  # inside the synthesiser's start()
    assert closed.t_ms == STOPPED_AT_MS


@pytest.mark.anyio
async def test_the_same_call_logs_its_recognizers_moves_chained() -> None:
    # The recogniser's moves go through the same recorder as the synthesiser's; its
    # first `from` is not known (None: nothing reported before it), then each starts
    # where the one before it ended, named by the live recogniser.
    log = MemoryEventLog()
    call_id = await _record(log, stop_mid_call=False)
    moves = [
        (e.data["from"], e.data["state"], e.data["on"], e.data["provider"])
        for e in log.events(call_id, kind="state_entered", source="stt")
    ]
    assert moves == [
        (None, "connecting", None, "scripted"),
        ("connecting", "streaming", None, "scripted"),
        ("streaming", "closed", None, "scripted"),
    ]


@pytest.mark.parametrize("stop_mid_call", [False, True])
def test_a_recording_with_tts_moves_replays_them_as_recorded(stop_mid_call: bool) -> None:
    log = MemoryEventLog()
    anyio.run(lambda: _record(log, stop_mid_call=stop_mid_call))
    recording = load_from_log(log)
    assert len(_tts_moves(recording.events)) == 2 + stop_mid_call
    result = assert_replays(log)
    assert result.ok
    # The stand-in reports each move where the live synthesiser did: event for event.
    assert [(e.t_ms, e.source, e.kind, e.data) for e in result.events] == [
        (e.t_ms, e.source, e.kind, e.data) for e in recording.events
    ]


def test_a_recording_without_tts_moves_replays_without_them() -> None:
    # The corpus predates logged tts moves: the stand-in then reports none.
    result = assert_replays(ROOT / "replays" / "appointment-happy")
    assert result.ok and _tts_moves(result.events) == []
