"""Replay a recorded call through a fresh runtime and compare the machines' decisions.

`replay_call` (async) and `replay` (sync) return a `ReplayResult`; `assert_replays`
raises `ReplayDivergence` on the first differing decision: the pytest one-liner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import anyio

from fsm_voice import shipped
from fsm_voice.call.runtime import CallRuntime
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.records import EventRecord
from fsm_voice.providers.base import SpeechRecognizer
from fsm_voice.providers.offline_stt import DecoderPool
from fsm_voice.replay.compare import ReplayDivergence, first_divergence
from fsm_voice.replay.driver import CountingLog, ReplayClock, ReplayPhone
from fsm_voice.replay.facts import Fact
from fsm_voice.replay.fault_replay import ReplayFaults
from fsm_voice.replay.faults import Fault
from fsm_voice.replay.offline import heard_frames, inline_decoder, offline_recognizer, prepare
from fsm_voice.replay.providers import (
    RecordedHooks,
    RecordedRecognizer,
    RecordedSynthesizer,
    RecordedTelephony,
    recorded_sentences,
    recorded_tts_moves,
    replay_notes,
)
from fsm_voice.replay.recording import (
    Recording,
    ReplayInputError,
    load_fixture,
    load_from_log,
)
from fsm_voice.replay.view_parser import parse
from fsm_voice.replay.views import RecordingViews
from fsm_voice.twilio.media_streams import MEDIA_STREAMS

__all__ = [
    "MODES",
    "Mode",
    "ReplayResult",
    "assert_replays",
    "replay",
    "replay_call",
    "resolve_machine",
]

Mode = Literal["recorded", "offline"]
MODES: tuple[Mode, ...] = ("recorded", "offline")
Source = Recording | EventLog | str | Path
MachineArg = MachineSpec | str | Path | None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    call_id: str
    origin: str
    machine: str
    compared: int  # decisions that matched
    events: tuple[EventRecord, ...]  # the replayed call's whole log
    divergence: ReplayDivergence | None
    caller_audio: bytes = b""  # the replayed tracks, chunks concatenated
    agent_audio: bytes = b""
    log: EventLog | None = None  # the replay's log (export it: a faulted run's fixture)
    mode: Mode = "recorded"
    notes: tuple[str, ...] = ()  # what this replay could not re-make exactly, and why
    cut_off: bool = False  # the recording stops before its call ended (see `status`)

    @property
    def ok(self) -> bool:
        return self.divergence is None

    @property
    def status(self) -> Literal["ok", "cut_off", "diverged"]:
        """ok: every decision as recorded. cut_off: as recorded as far as the log goes,
        which stops before the call ended (a crash). diverged: a decision differs."""
        if self.divergence is not None:
            return "diverged"
        return "cut_off" if self.cut_off else "ok"

    def stream_json(self) -> str:
        """The replayed events as JSON lines, keys sorted: equal runs give equal bytes."""
        return "".join(
            json.dumps(
                [e.seq, e.t_ms, e.wall_ms, e.source, e.kind, e.data],
                sort_keys=True,
                ensure_ascii=False,
            )
            + "\n"
            for e in self.events
        )


def load_recording(source: Source, call_id: str | None = None) -> Recording:
    if isinstance(source, Recording):
        return source
    if isinstance(source, str | Path):
        return load_fixture(source)
    return load_from_log(source, call_id)


def resolve_machine(recording: Recording, machine: MachineArg = None) -> MachineSpec:
    """`machine` if given (a spec or a file), else the recorded machine, found by name."""
    if isinstance(machine, MachineSpec):
        return machine
    if machine is not None:
        return _load(shipped.resolve_machine(machine))
    name = recording.machine
    if not name:
        raise ReplayInputError(f"{recording.origin}: no machine recorded; pass one (--machine)")
    places = [Path.cwd() / "machines"]
    shipped_machines = shipped.shipped_folder("machines")
    if shipped_machines is not None:
        places.append(shipped_machines)
    if recording.directory is not None:
        places[:0] = [recording.directory, recording.directory.parent]
    for place in places:
        for candidate in (place / f"{name}.yaml", place / f"{name}.yml"):
            if candidate.is_file():
                return _load(candidate)
    raise ReplayInputError(f"{recording.origin}: machine {name!r} not found; pass --machine FILE")


CUT_OFF = (
    "the log stops before the call ended (the server was killed, or the call is still "
    "live): decisions are compared up to its last event"
)

_specs: dict[tuple[Path, int, int], MachineSpec] = {}


def _load(path: Path) -> MachineSpec:
    """A machine file, parsed once while it stays unchanged (a corpus replays the same
    few machines over and over; the conversation copies what it changes)."""
    try:
        stat = path.stat()
    except OSError:
        return load_machine(path)  # let the loader say what is wrong
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size)
    spec = _specs.get(key)
    if spec is None:
        spec = _specs[key] = load_machine(path)
    return spec


async def replay_call(
    source: Source,
    *,
    call_id: str | None = None,
    machine: MachineArg = None,
    mode: Mode = "recorded",
    faults: Sequence[Fault] = (),
    decoder: DecoderPool | None = None,
) -> ReplayResult:
    """Replay one recorded call.

    recorded mode: every provider answers from the log. offline mode: the offline
    recogniser (pocketsphinx) re-transcribes the recorded caller audio instead, with
    `decoder` (default: the process's inline decoder); the other providers still
    answer from the log. `faults` are injected at their times (see
    `fsm_voice.replay.faults`); the run then differs from the recording by design,
    and `log` holds it for export.
    """
    if mode not in MODES:
        raise ReplayInputError(f"unknown replay mode {mode!r} (one of: {', '.join(MODES)})")
    recording = load_recording(source, call_id)
    spec = resolve_machine(recording, machine)
    views = parse(recording)
    faulted = ReplayFaults(recording, views, faults, reenact_drops=mode == "offline")
    # The call's time 0 is the clock's 0; the replay starts where the live socket
    # opened (older runtimes logged it a few ms in, however long setup took).
    clock = ReplayClock(views.opened_ms, recording.started_wall_ms)
    log = CountingLog()
    sentences = recorded_sentences(views, recording.agent)
    recognizer, recorded = await _recognizer(mode, recording, views, faulted.facts, clock, decoder)
    # The live conversation had its providers started by its first event.
    ready_ms = 0 if views.began is None else views.began.t_ms
    agent = conversation_agent(
        spec,
        recognizer=faulted.recognizer(lambda: recognizer),
        synthesizer=RecordedSynthesizer(
            sentences, clock, 0, ready_ms, views.synthesizer, recorded_tts_moves(views)
        ),
        telephony=RecordedTelephony(views.actions, clock, 0),
        hooks=RecordedHooks(views.hooks, clock, 0),
        live_streams=faulted.live_streams(),
    )
    agent = faulted.agent(agent)
    facts = faulted.facts
    if recorded is None:  # the recogniser's outputs are what the replay re-makes
        facts = [f for f in facts if f.kind != "stt"]
    phone = ReplayPhone(facts, recording.duration_ms, clock, log, recorded)
    runtime = CallRuntime(
        phone,
        wire=MEDIA_STREAMS,
        call_id=recording.call_id,
        clock=clock,
        log=log,
        agent=agent,
        machine_name=spec.name,
        origin_ms=0,
    )
    _deliver_notices(views, runtime, clock)
    _answer_remote_hangups(views, runtime, clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        faulted.attach(tg, agent, clock)
        await phone.run(runtime.finished)
        tg.cancel_scope.cancel()
    faulted.merge_into(log)
    replayed = tuple(log.events(recording.call_id))
    cut_off = not recording.ended
    comparison = first_divergence(recording.call_id, recording.events, replayed, cut_off=cut_off)
    notes = replay_notes(sentences)
    if cut_off:
        notes.append(CUT_OFF)
    return ReplayResult(
        recording.call_id,
        recording.origin,
        spec.name,
        comparison.compared,
        replayed,
        comparison.divergence,
        b"".join(c.payload for c in log.audio(recording.call_id, "caller")),
        b"".join(c.payload for c in log.audio(recording.call_id, "agent")),
        log,
        mode,
        tuple(notes),
        cut_off,
    )


def _deliver_notices(views: RecordingViews, runtime: CallRuntime, clock: ReplayClock) -> None:
    """Platform notices from outside the stream (e.g. Twilio's answering-machine
    verdict), delivered again at their recorded times."""
    for notice in views.notices:
        deliver = partial(runtime.handle.notify, notice.notice, dict(notice.fields))
        if views.began is not None and notice.seq < views.began.seq:
            # it came before the conversation subscribed (a webhook ahead of the
            # stream): held by the call, the conversation takes it as it starts
            deliver()
        else:
            clock.call_later(notice.t_ms - clock.now_ms(), deliver)


class RecordedHangupFailure(Exception):
    """A REST hangup that failed in the recording fails again in the replay."""


def _answer_remote_hangups(views: RecordingViews, runtime: CallRuntime, clock: ReplayClock) -> None:
    """A call hung up REST-first (Twilio) is hung up the same way in the replay: the
    platform's answers (`remote_hangup_done`/`_failed`) come from the log at their times;
    without an answer in the log (Twilio closed the stream first), none comes."""
    if not views.remote_hangup_requested:
        return
    answers = iter(views.remote_hangup_answers)

    async def hangup(call_sid: str) -> str:
        answer = next(answers, None)
        if answer is None:
            await anyio.Event().wait()  # the stream closes first; this is cancelled
        assert answer is not None
        await clock.sleep(max(0, answer.t_ms - clock.now_ms()))
        if answer.failed:
            raise RecordedHangupFailure(answer.error)
        return answer.outcome

    runtime.remote_hangup = hangup


async def _recognizer(
    mode: Mode,
    recording: Recording,
    views: RecordingViews,
    facts: list[Fact],
    clock: ReplayClock,
    decoder: DecoderPool | None,
) -> tuple[SpeechRecognizer, RecordedRecognizer | None]:
    """The call's recogniser, and the recorded one the phone feeds (recorded mode)."""
    if mode == "recorded":
        at_start, _, at_stop = views.stt_phases()
        recorded = RecordedRecognizer(at_start, at_stop, views.recognizer)
        return recorded, recorded
    if not recording.caller:
        raise ReplayInputError(f"{recording.origin}: no caller audio to re-transcribe")
    if views.recognizer == "scripted":
        raise ReplayInputError(
            f"{recording.origin}: recorded with the scripted recogniser, whose words came "
            "from its script, not from the caller audio; re-transcribing that audio cannot "
            "give them back. Replay it in recorded mode (--mode recorded)."
        )
    decoder = decoder or inline_decoder()
    await prepare(decoder)
    offline = offline_recognizer(views, heard_frames(facts), clock, decoder)
    clock.hold_while(lambda: offline.decoding)  # see replay/offline.py
    return offline, None


def replay(
    source: Source,
    *,
    call_id: str | None = None,
    machine: MachineArg = None,
    mode: Mode = "recorded",
    faults: Sequence[Fault] = (),
    decoder: DecoderPool | None = None,
) -> ReplayResult:
    """`replay_call` from synchronous code (not from inside a running event loop)."""

    async def run() -> ReplayResult:
        return await replay_call(
            source, call_id=call_id, machine=machine, mode=mode, faults=faults, decoder=decoder
        )

    return anyio.run(run)


def assert_replays(
    source: Source,
    call_id: str | None = None,
    machine: MachineArg = None,
    mode: Mode = "recorded",
) -> ReplayResult:
    """Replay (recorded mode by default); raise `ReplayDivergence` unless every decision
    matches."""
    result = replay(source, call_id=call_id, machine=machine, mode=mode)
    if result.divergence is not None:
        raise result.divergence
    return result
