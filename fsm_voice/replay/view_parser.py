"""Parse a recording into its views (`replay.views`): one walk over the events.

Every kind replay reads is named here (and the machines' moves and decisions in
`replay.decisions`, which read the replayed log too) and nowhere else in `replay/`: a
helper that needs a new fact of the recording gets it as a view, not by scanning
`events`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay.decisions import is_decision, state_change
from fsm_voice.replay.recording import Recording
from fsm_voice.replay.views import (
    Action,
    ActionKind,
    CallerFrame,
    Completion,
    FaultLogged,
    Heard,
    HookAnswer,
    Mark,
    Notice,
    PlatformMessage,
    Prompt,
    RecordingViews,
    RemoteHangupAnswer,
    SentenceDone,
    SpeechStart,
    StateChange,
    SttError,
    SttOutput,
)

__all__ = ["parse"]


def parse(recording: Recording) -> RecordingViews:
    return _Parser(recording).views()


def _caller_frames(recording: Recording) -> tuple[CallerFrame, ...]:
    frames: list[CallerFrame] = []
    for run in recording.caller:  # (a comprehension: a five-minute call has 15,000 frames)
        payload, t0, first = run.payload, run.t_ms, run.first_frame
        frames.extend(
            CallerFrame(
                t0 + FRAME_MS * k, first + k, payload[k * FRAME_BYTES : (k + 1) * FRAME_BYTES]
            )
            for k in range(len(payload) // FRAME_BYTES)
        )
    return tuple(frames)


class _Parser:
    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.opened_ms: int | None = None
        self.began: EventRecord | None = None
        self.ended: EventRecord | None = None
        self.closing = False  # the runtime asked to close: the socket_closed is its own
        self.platform: list[PlatformMessage] = []
        self.marks: dict[str, deque[int]] = {}  # name -> index in marks_out, not yet echoed
        self.marks_out: list[Mark] = []
        self.stt: list[SttOutput] = []
        self.states: list[StateChange] = []
        self.prompts: dict[str, dict[str, Any]] = {}
        self.plays_files = False
        self.decisions: list[EventRecord] = []
        self.completed: dict[Any, Completion] = {}
        self.requested: list[tuple[Any, ActionKind]] = []  # (action_id, sms or transfer)
        self.hook_answers: dict[Any, HookAnswer] = {}
        self.hook_calls: list[Any] = []
        self.notices: list[Notice] = []
        self.hangup_requested = False
        self.hangup_answers: list[RemoteHangupAnswer] = []
        self.faults: list[FaultLogged] = []
        self.duplicates: dict[str, str] = {}
        self.synthesizer: str | None = None
        self.by_kind: dict[str, Callable[[EventRecord], None]] = {
            "socket_opened": self._opened,
            "call_ended": self._ended,
            "socket_close_requested": self._close_requested,
            "mark_sent": self._mark_sent,
            "say_started": self._said,
            "play_started": self._played,
            "first_audio_sent": self._first_audio,
            "sentence_synthesized": self._sentence,
            "sentence_cut": self._sentence,
            "prompt_finished": self._finished,
            "synthesis_failed": self._tts_failed,
            "provider_failed": self._tts_failed,
            "sms_requested": self._action,
            "transfer_requested": self._action,
            "action_completed": self._completed,
            "hook_called": lambda e: self.hook_calls.append(e.data.get("call_id")),
            "hook_returned": self._hook_answer,
            "hook_failed": self._hook_answer,
            "platform_notice": self._notice,
            "remote_hangup_requested": self._hangup_requested,
            "remote_hangup_done": self._hangup_answer,
            "remote_hangup_failed": self._hangup_answer,
            "fault_injected": self._fault,
            "duplicate_stream_refused": self._duplicate,
        }

    def views(self) -> RecordingViews:
        for e in self.recording.events:
            self._read(e)
        ended = self.ended
        return RecordingViews(
            self.recording.events,
            self.opened_ms or 0,
            self.began,
            None if ended is None else ended.t_ms,
            None if ended is None else ended.seq,
            _caller_frames(self.recording),
            tuple(self.platform),
            tuple(self.marks_out),
            tuple(self.stt),
            tuple(self.states),
            tuple(Prompt(**p) for p in self.prompts.values()),
            self.plays_files,
            tuple(self.decisions),
            tuple(Action(kind, self.completed.get(a)) for a, kind in self.requested),
            tuple(self.hook_answers.get(c) for c in self.hook_calls),
            tuple(self.notices),
            self.hangup_requested,
            tuple(self.hangup_answers),
            tuple(self.faults),
            self.duplicates,
            self.synthesizer,
        )

    def _read(self, e: EventRecord) -> None:
        if self.began is None and e.source == "conversation":
            self.began = e
        if is_decision(e):
            self.decisions.append(e)
        change = state_change(e)
        if change is not None:
            self.states.append(change)
            if change.machine == "stt":
                self.stt.append(change)
        elif e.source == "stt":
            self._stt(e)
        elif e.source == "transport":
            self._transport(e)
        handler = self.by_kind.get(e.kind)
        if handler is not None:
            handler(e)

    # --- the recogniser ---

    def _stt(self, e: EventRecord) -> None:
        d = e.data
        if e.kind == "speech_started":
            self.stt.append(SpeechStart(e.seq, e.t_ms, int(d["at_ms"])))
        elif e.kind == "transcript_partial":
            self.stt.append(Heard(e.seq, e.t_ms, str(d["text"]), committed=False))
        elif e.kind == "transcript_committed":
            alternatives = tuple(str(a) for a in d.get("alternatives", ()))
            self.stt.append(
                Heard(
                    e.seq,
                    e.t_ms,
                    str(d["text"]),
                    True,
                    d.get("confidence"),
                    d["start_ms"],
                    d["end_ms"],
                    alternatives,
                )
            )
        elif e.kind == "provider_error":
            self.stt.append(SttError(e.seq, e.t_ms, str(d["reason"]), bool(d["fatal"])))

    # --- the platform ---

    def _transport(self, e: EventRecord) -> None:
        d = e.data
        if e.kind == "connected":
            self._platform(e, "connected")
        elif e.kind == "stream_started":
            self._platform(e, "start")
        elif e.kind == "dtmf_received":
            self.platform.append(PlatformMessage(e.seq, e.t_ms, "dtmf", d, digit=d["digit"]))
        elif e.kind == "mark_echoed":
            self.platform.append(PlatformMessage(e.seq, e.t_ms, "mark", d, mark=d["name"]))
            self._mark_echoed(str(d["name"]), e.t_ms)
        elif e.kind == "stream_stopped":
            self._platform(e, "stop")
        elif e.kind == "socket_closed" and not self.closing:
            code = int(d.get("code", 1000))
            self.platform.append(PlatformMessage(e.seq, e.t_ms, "close", d, code=code))

    def _platform(self, e: EventRecord, kind: Any) -> None:
        self.platform.append(PlatformMessage(e.seq, e.t_ms, kind, e.data))

    def _mark_sent(self, e: EventRecord) -> None:
        name = str(e.data.get("name", ""))
        self.marks.setdefault(name, deque()).append(len(self.marks_out))
        self.marks_out.append(Mark(name, e.t_ms, None))

    def _mark_echoed(self, name: str, t_ms: int) -> None:
        waiting = self.marks.get(name)
        if waiting:
            index = waiting.popleft()
            self.marks_out[index] = Mark(name, self.marks_out[index].sent_ms, t_ms)
        else:
            self.marks_out.append(Mark(name, None, t_ms))

    # --- the call's moments ---

    def _opened(self, e: EventRecord) -> None:
        if self.opened_ms is None:
            self.opened_ms = e.t_ms

    def _ended(self, e: EventRecord) -> None:
        if self.ended is None:
            self.ended = e

    def _close_requested(self, e: EventRecord) -> None:
        self.closing = True

    # --- the agent's prompts ---

    def _prompt(self, prompt_id: Any) -> dict[str, Any]:
        key = str(prompt_id)
        if key not in self.prompts:
            self.prompts[key] = {
                "prompt_id": key,
                "text": None,
                "first_audio_ms": None,
                "finished_seq": None,
                "finished_ms": None,
                "sentences": {},
            }
        return self.prompts[key]

    def _said(self, e: EventRecord) -> None:
        self._prompt(e.data["prompt_id"])["text"] = str(e.data["text"])

    def _played(self, e: EventRecord) -> None:
        self.plays_files = True
        self._prompt(e.data.get("prompt_id", ""))

    def _first_audio(self, e: EventRecord) -> None:
        prompt = self._prompt(e.data.get("prompt_id", ""))
        if prompt["first_audio_ms"] is None:
            prompt["first_audio_ms"] = e.t_ms

    def _sentence(self, e: EventRecord) -> None:
        d = e.data
        pieces = tuple((int(t), int(n)) for t, n in d.get("pieces", ()))
        cut = e.kind == "sentence_cut"
        error = d.get("error") if cut else None
        done = SentenceDone(int(d["index"]), e.t_ms, int(d["bytes"]), pieces, cut, error)
        self._prompt(d["prompt_id"])["sentences"][done.index] = done

    def _finished(self, e: EventRecord) -> None:
        prompt = self._prompt(e.data.get("prompt_id", ""))
        if prompt["finished_seq"] is None:
            prompt["finished_seq"], prompt["finished_ms"] = e.seq, e.t_ms

    def _tts_failed(self, e: EventRecord) -> None:
        provider = e.data.get("provider")
        if e.source == "tts" and self.synthesizer is None and provider is not None:
            self.synthesizer = str(provider)

    # --- the outside world's answers ---

    def _action(self, e: EventRecord) -> None:
        kind: ActionKind = "sms" if e.kind == "sms_requested" else "transfer"
        self.requested.append((e.data.get("action_id"), kind))

    def _completed(self, e: EventRecord) -> None:
        d = e.data
        self.completed[d["action_id"]] = Completion(
            e.t_ms, bool(d.get("ok", True)), dict(d.get("result", {}))
        )

    def _hook_answer(self, e: EventRecord) -> None:
        d = e.data
        self.hook_answers[d["call_id"]] = HookAnswer(
            e.t_ms,
            e.kind == "hook_failed",
            str(d.get("reason", "")),
            d.get("event"),
            dict(d.get("variables", {})),
        )

    def _notice(self, e: EventRecord) -> None:
        fields = dict(e.data)
        notice = str(fields.pop("notice"))
        self.notices.append(Notice(e.seq, e.t_ms, notice, fields))

    def _hangup_requested(self, e: EventRecord) -> None:
        self.hangup_requested = True

    def _hangup_answer(self, e: EventRecord) -> None:
        d, failed = e.data, e.kind == "remote_hangup_failed"
        outcome = "" if failed else str(d["outcome"])
        self.hangup_answers.append(
            RemoteHangupAnswer(e.t_ms, failed, outcome, str(d.get("error", "")))
        )

    def _fault(self, e: EventRecord) -> None:
        detail = dict(e.data)
        fault, at_ms = str(detail.pop("fault")), int(detail.pop("at_ms"))
        self.faults.append(FaultLogged(e.t_ms, fault, at_ms, detail))

    def _duplicate(self, e: EventRecord) -> None:
        self.duplicates[str(e.data["call_sid"])] = str(e.data["live_call"])
