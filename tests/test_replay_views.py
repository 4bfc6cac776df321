"""Replay's typed views of a recording: parsed once, from a real call and a made one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fsm_voice.eventlog.records import EventRecord, Source
from fsm_voice.eventlog.upcast import current_v, upcast
from fsm_voice.replay.compare import decisions
from fsm_voice.replay.facts import inbound_facts
from fsm_voice.replay.recording import CallerFrames, Recording, load_fixture
from fsm_voice.replay.view_parser import parse
from fsm_voice.replay.views import (
    Action,
    Completion,
    Heard,
    HookAnswer,
    Mark,
    Notice,
    RemoteHangupAnswer,
    SpeechStart,
    StateChange,
    SttError,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reconnect() -> Recording:
    return load_fixture(ROOT / "replays" / "appointment-stt-reconnect")


def _raw(recording: Recording, kind: str, source: str | None = None) -> list[EventRecord]:
    return [
        e for e in recording.events if e.kind == kind and (source is None or e.source == source)
    ]


def test_a_recorded_call_parses_into_its_views(reconnect: Recording) -> None:
    views = parse(reconnect)
    caller_bytes = sum(len(run.payload) for run in reconnect.caller)
    assert len(views.caller) == caller_bytes // 160 > 100
    assert [f.number for f in views.caller] == list(range(len(views.caller)))
    assert [m.kind for m in views.platform[:2]] == ["connected", "start"]
    assert [m.kind for m in views.platform[-1:]] == ["mark"]  # the close is the runtime's
    assert len(views.marks) == 11
    assert all(m.sent_ms is not None and m.echoed_ms is not None for m in views.marks)
    assert all(m.echoed_ms >= m.sent_ms for m in views.marks)  # type: ignore[operator]
    said = [str(e.data["text"]) for e in _raw(reconnect, "say_started")]
    assert [p.text for p in views.prompts] == said
    assert all(p.first_audio_ms is not None and p.finished_ms is not None for p in views.prompts)
    assert sum(len(p.sentences) for p in views.prompts) == 11
    committed = [str(e.data["text"]) for e in _raw(reconnect, "transcript_committed")]
    assert [h.text for h in views.transcripts] == committed
    assert all(h.committed for h in views.transcripts)
    assert len(views.speech_starts) == 3
    assert views.decisions == tuple(decisions(reconnect.events))
    assert views.actions == (Action("sms", views.actions[0].answer),)
    assert views.actions[0].answer is not None and views.actions[0].answer.ok
    assert [f.fault for f in views.faults] == ["stt_drop"]


def test_the_state_changes_of_every_machine_are_one_view(reconnect: Recording) -> None:
    views = parse(reconnect)
    conversation = [str(e.data["state"]) for e in _raw(reconnect, "state_entered", "conversation")]
    assert [s.state for s in views.states_of("conversation")] == conversation
    assert len(views.states_of("call")) == 29
    stt = views.states_of("stt")
    assert [s.state for s in stt] == [
        "connecting",
        "streaming",
        "reconnecting",
        "connecting",
        "streaming",
        "closed",
    ]
    at_start, mid, at_stop = views.stt_phases()
    assert [s.state for s in at_start] == ["connecting", "streaming"]
    assert [s.state for s in at_stop] == ["closed"]
    assert sum(isinstance(o, StateChange) for o in mid) == 3
    assert sum(isinstance(o, SttError) for o in mid) == 1


def test_the_inbound_facts_come_from_the_views_in_the_recorded_order(
    reconnect: Recording,
) -> None:
    views = parse(reconnect)
    facts = inbound_facts(views)
    events = [f for f in facts if f.seq is not None]
    assert [f.seq for f in events] == sorted(f.seq for f in events if f.seq is not None)
    assert sum(f.kind == "media" for f in facts) == len(views.caller)
    assert sum(f.kind == "stt" for f in facts) == len(views.stt_phases()[1])


# --- a made recording: every kind the views read, in each form the log has held ---


def _version(source: str, kind: str, data: dict[str, Any]) -> int:
    """A made row's version: the old forms of a move (no `machine`, the recogniser's
    `provider_state_entered`) are v1, as an old log held them; the rest current."""
    if kind == "provider_state_entered" or (kind == "state_entered" and "machine" not in data):
        return 1
    return current_v(source, kind)


def _made(*rows: tuple[int, Source, str, dict[str, Any]]) -> Recording:
    # Read as every read path reads a log: upcast to the catalogue's current forms.
    events = tuple(
        upcast(EventRecord("made", seq, t_ms, 0, source, kind, data, _version(source, kind, data)))
        for seq, (t_ms, source, kind, data) in enumerate(rows, 1)
    )
    caller = (CallerFrames(40, 0, bytes(320)), CallerFrames(100, 5, bytes(160)))
    return Recording("made", "m", 0, events, caller, b"", "made")


MADE = _made(
    (3, "runtime", "socket_opened", {}),
    (4, "transport", "connected", {"protocol": "Call", "version": "1.0.0"}),
    (5, "transport", "stream_started", {"stream_sid": "MZ1", "call_sid": "CA1"}),
    (6, "stt", "provider_state_entered", {"state": "connecting", "detail": "", "provider": "az"}),
    (6, "call", "state_entered", {"state": "streaming", "from": "connected", "on": "start"}),
    (7, "runtime", "platform_notice", {"notice": "amd", "answered": "human"}),
    (8, "conversation", "state_entered", {"state": "greet", "previous": "", "event": "start"}),
    (9, "conversation", "say_started", {"prompt_id": "p1", "text": "Hello. How are you?"}),
    (10, "tts", "first_audio_sent", {"prompt_id": "p1"}),
    (11, "tts", "sentence_synthesized", {"prompt_id": "p1", "index": 0, "bytes": 320}),
    (12, "transport", "mark_sent", {"mark_id": 1, "name": "m1"}),
    (13, "stt", "speech_started", {"at_ms": 12}),
    (14, "stt", "transcript_partial", {"text": "I am"}),
    (15, "tts", "sentence_cut", {"prompt_id": "p1", "index": 1, "bytes": 0, "error": "E: x"}),
    (16, "transport", "mark_echoed", {"name": "m1"}),
    (17, "conversation", "prompt_finished", {"prompt_id": "p1"}),
    (
        18,
        "stt",
        "transcript_committed",
        {"text": "I am fine", "confidence": 0.5, "start_ms": 12, "end_ms": 17},
    ),
    (19, "stt", "provider_error", {"reason": "blip", "fatal": False}),
    (19, "stt", "state_entered", {"machine": "stt", "state": "reconnecting", "from": None}),
    (20, "conversation", "sms_requested", {"action_id": 1}),
    (21, "conversation", "hook_called", {"call_id": 7}),
    (22, "conversation", "action_completed", {"action_id": 1, "ok": False, "result": {}}),
    (23, "conversation", "hook_returned", {"call_id": 7, "event": "done", "variables": {}}),
    (24, "runtime", "fault_injected", {"fault": "mark_lost", "at_ms": 20, "mark": "m1"}),
    (25, "runtime", "duplicate_stream_refused", {"call_sid": "CA1", "live_call": "c0"}),
    (26, "tts", "synthesis_failed", {"error": "E: x", "provider": "eleven"}),
    (27, "runtime", "remote_hangup_requested", {}),
    (28, "runtime", "remote_hangup_done", {"outcome": "completed"}),
    (29, "call", "socket_close_requested", {}),
    (30, "transport", "socket_closed", {"code": 1000}),
    (31, "call", "call_ended", {}),
    (32, "stt", "provider_state_entered", {"state": "closed", "detail": "", "provider": "az"}),
    (33, "tts", "first_audio_sent", {"prompt_id": "p1"}),  # a prompt's first audio is once
)


def test_a_made_recording_parses_into_typed_views() -> None:
    views = parse(MADE)
    assert (views.opened_ms, views.ended_ms, views.ended_seq) == (3, 31, 31)
    assert views.began is not None and views.began.kind == "state_entered"
    assert [(f.t_ms, f.number) for f in views.caller] == [(40, 0), (60, 1), (100, 5)]
    assert [m.kind for m in views.platform] == ["connected", "start", "mark"]
    assert views.platform[2].mark == "m1"
    assert views.marks == (Mark("m1", 12, 16),)
    assert views.stt[1:] == (
        SpeechStart(12, 13, 12),
        Heard(13, 14, "I am", committed=False),
        Heard(17, 18, "I am fine", True, 0.5, 12, 17),
        SttError(18, 19, "blip", False),
        StateChange(19, 19, "stt", "reconnecting", "", ""),
        StateChange(32, 32, "stt", "closed", "", "", "", "az"),
    )
    assert views.recognizer == "az"
    (prompt,) = views.prompts
    assert (prompt.text, prompt.first_audio_ms, prompt.finished_ms) == (
        "Hello. How are you?",
        10,
        17,
    )
    assert prompt.sentences[0].size == 320 and not prompt.sentences[0].cut
    assert prompt.sentences[1].cut and prompt.sentences[1].error == "E: x"
    assert views.actions == (Action("sms", Completion(22, False, {})),)
    assert views.hooks == (HookAnswer(23, False, "", "done", {}),)
    assert views.notices == (Notice(6, 7, "amd", {"answered": "human"}),)
    assert views.remote_hangup_requested
    assert views.remote_hangup_answers == (RemoteHangupAnswer(28, False, "completed", ""),)
    assert [(f.fault, f.at_ms, f.detail) for f in views.faults] == [
        ("mark_lost", 20, {"mark": "m1"})
    ]
    assert views.duplicates_refused == {"CA1": "c0"}
    assert views.synthesizer == "eleven"


def test_every_machine_moves_in_one_view_whatever_form_the_log_wrote() -> None:
    views = parse(MADE)
    assert [(s.machine, s.state, s.previous, s.on) for s in views.states] == [
        ("stt", "connecting", "", ""),
        ("call", "streaming", "connected", "start"),
        ("conversation", "greet", "", "start"),
        ("stt", "reconnecting", "", ""),
        ("stt", "closed", "", ""),
    ]
    at_start, mid, at_stop = views.stt_phases()
    assert [s.state for s in at_start] == ["connecting"]  # before the conversation began
    assert [s.state for s in at_stop] == ["closed"]  # after the call ended
    assert len(mid) == 5
