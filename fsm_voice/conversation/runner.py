"""The async shell around one conversation machine: the agent of a call.

It turns the call's audio, DTMF and end, and the recogniser's results, into
conversation events; feeds them one at a time to the pure machine; logs every event
and effect; and carries the effects out: prompts (TTS sentence by sentence, a mark
after each), barge-in (stop synthesis + `clear`), timers on the call's Clock, hooks,
SMS, transfer and hangup.

What the caller actually heard is read from the marks: a sentence counts as heard
only when the platform echoed the mark queued right after its audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import anyio
from anyio.abc import TaskGroup

from fsm_voice.audio.frames import pad_to_frame
from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE
from fsm_voice.audio.wav import read_wav_as_mulaw_8k
from fsm_voice.call.handle import CallHandle, MarkOutcome
from fsm_voice.call.runtime import Agent
from fsm_voice.clock import TimerHandle
from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.hooks import HookContext, HookResult, call_hook, resolve_hook
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.conversation.machine import ConversationMachine, move_of
from fsm_voice.conversation.payload import snapshot
from fsm_voice.conversation.streams import LiveStreams
from fsm_voice.conversation.telephony import SimulatedTelephony, Telephony
from fsm_voice.driver import MachineDriver
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.providers.base import (
    Grammar,
    SpeechRecognizer,
    SpeechSynthesizer,
    Transcript,
    split_sentences,
)
from fsm_voice.providers.state_log import watch_states

__all__ = [
    "MARK_WATCHDOG_MARGIN_MS",
    "ConversationRunner",
    "HookCaller",
    "conversation_agent",
    "run_hook",
]

_BYTES_PER_MS = SAMPLE_RATE // 1000  # μ-law: one byte per sample
ACTION_GRACE_MS = 5_000  # how long an SMS in flight may outlive the call
# Mark watchdog: a prompt's mark that the platform never echoes (a lost message, a
# platform bug) would hold the prompt, and so the conversation, forever. Each mark
# times out once all the audio queued before it has had time to play (it plays at
# real time, so never later than that) plus this margin for the platform's latency.
MARK_WATCHDOG_MARGIN_MS = 3_000
# Events whose facts another source already logged (stt, transport): not logged twice.
_LOGGED_ELSEWHERE = (ev.SpeechStarted, ev.TranscriptReceived, ev.DigitPressed)

# Runs one hook: (target "module:function", directories to find it in, context).
HookCaller = Callable[[str, tuple[str, ...], HookContext], Awaitable[HookResult]]


async def run_hook(target: str, paths: tuple[str, ...], context: HookContext) -> HookResult:
    """The default `HookCaller`: the user's function, found next to the machine."""
    return await call_hook(resolve_hook(target, paths), context)


def conversation_agent(
    spec: MachineSpec,
    *,
    recognizer: Callable[[], SpeechRecognizer],
    synthesizer: SpeechSynthesizer,
    telephony: Telephony | None = None,
    hooks: HookCaller = run_hook,
    live_streams: LiveStreams | None = None,
) -> Agent:
    """An `Agent` that holds each call's conversation with `spec`.

    `hooks` replaces how hooks run (replay answers them from the recording).
    `live_streams` is the set of Twilio calls being served (shared by every call of
    the agent unless given): a second stream for a call already live is refused.
    """
    shared_telephony = telephony or SimulatedTelephony()
    streams = live_streams if live_streams is not None else LiveStreams()

    async def agent(call: CallHandle) -> None:
        if not streams.claim(call):
            await call.hangup("duplicate_stream")
            return
        try:
            runner = ConversationRunner(
                call, spec, recognizer(), synthesizer, shared_telephony, hooks=hooks
            )
            await runner.run()
        finally:
            streams.release(call)

    return agent


@dataclass
class _Prompt:
    prompt_id: str
    sentences: list[str] = field(default_factory=list)
    marks: list[asyncio.Future[MarkOutcome]] = field(default_factory=list)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stopped: bool = False
    queued_bytes: int = 0  # agent audio sent for this prompt so far


class ConversationRunner:
    def __init__(
        self,
        call: CallHandle,
        spec: MachineSpec,
        recognizer: SpeechRecognizer,
        synthesizer: SpeechSynthesizer,
        telephony: Telephony,
        *,
        hooks: HookCaller = run_hook,
        mark_margin_ms: int = MARK_WATCHDOG_MARGIN_MS,
    ) -> None:
        self.call = call
        self._hooks = hooks
        self._mark_margin_ms = mark_margin_ms
        self.spec = spec
        self.machine = ConversationMachine(spec)
        self._recognizer = recognizer
        attach = getattr(recognizer, "attach_record", None)
        if attach is not None:  # e.g. a TeeRecognizer: its secondary's results, logged
            attach(lambda kind, data: call.record("stt", kind, data))
        self._synthesizer = synthesizer
        self._telephony = telephony
        # The one loop that runs the machine: each event logged, then handled.
        self._driver: MachineDriver[ev.ConversationEvent, fx.ConversationEffect] = MachineDriver(
            "conversation",
            self.machine,
            record=lambda kind, data: call.record("conversation", kind, data),
            execute=self._record_and_execute,
            before=self._record_event,
            moves_in_effects=move_of,
        )
        self.dispatch = self._driver.feed  # events raised while handling one queue behind it
        self._timers: dict[str, TimerHandle] = {}
        self._prompts: dict[str, _Prompt] = {}
        self._tg: TaskGroup | None = None
        self._actions: list[anyio.Event] = []  # SMS and transfers in flight
        self._base = Path(spec.path).parent

    # --- lifecycle ---

    async def run(self) -> None:
        # The synthesiser serves every call of the process: this call logs its moves
        # while it lives (from its start() on), as the recogniser's are logged.
        unwatch = watch_states(self._synthesizer, self._record_tts_move)
        try:
            await self._run()
        finally:
            unwatch()

    async def _run(self) -> None:
        call = self.call
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._start_provider("tts", self._synthesizer.name, self._synthesizer.start())
            await self._start_provider(
                "stt", self._recognizer.name, self._recognizer.start(_Listener(self))
            )
            call.on_caller_audio(lambda frame: self._recognizer.feed(frame, call.caller_frame_ms()))
            call.on_dtmf(lambda digit: self.dispatch(ev.DigitPressed(digit)))
            call.on_end(lambda reason: self.dispatch(ev.CallerHungUp(reason)))
            self.dispatch(ev.CallConnected(self._call_variables()))
            call.on_notice(self._on_notice)
            await call.wait_ended()
            # The caller may hang up while an SMS is in flight: give it a bounded time
            # (on the call's clock) to finish and be logged before everything stops.
            grace = call.clock.call_later(ACTION_GRACE_MS, tg.cancel_scope.cancel)
            await self._actions_settled()
            grace.cancel()
            tg.cancel_scope.cancel()
        for timer in self._timers.values():
            timer.cancel()
        await self._recognizer.stop()

    def _record_tts_move(self, kind: KindName, data: dict[str, Any]) -> None:
        self.call.record("tts", kind, data)

    async def _start_provider(
        self, source: Literal["stt", "tts"], name: str, starting: Awaitable[None]
    ) -> None:
        try:
            await starting  # idempotent for shared providers: loads models once
        except Exception as error:  # a provider that cannot start is an `error` event
            data = {"error": f"{type(error).__name__}: {error}", "provider": name}
            self.call.record(source, "provider_failed", data)
            self.dispatch(ev.ProviderFailed(name, str(error)))

    def _call_variables(self) -> dict[str, Any]:
        params = self.call.custom_parameters
        return {
            "call_id": self.call.call_id,
            "call_sid": self.call.call_sid or "",
            "caller": params.get("caller", params.get("From", "")),
            "called": params.get("called", params.get("To", "")),
            **{k: v for k, v in params.items() if k.isidentifier()},
        }

    # --- events in ---

    def _on_notice(self, kind: str, data: dict[str, Any]) -> None:
        """Platform facts from outside the stream (webhooks) the machine can branch on."""
        if kind == "amd":
            self.dispatch(ev.AnsweringMachineDetected(str(data.get("answered_by", "unknown"))))

    def _record_event(self, event: ev.ConversationEvent) -> None:
        if not isinstance(event, _LOGGED_ELSEWHERE):
            # A logged event's kind is declared (tests/test_kind_names.py checks each
            # event class); the three logged elsewhere are not log kinds at all.
            kind = cast("KindName", event.kind)
            self.call.record("conversation", kind, snapshot(event.data()))

    def _record_and_execute(self, effect: fx.ConversationEffect) -> None:
        if isinstance(effect, fx.Note):
            self.call.record("conversation", effect.note_kind, effect.details)
            return
        self.call.record("conversation", effect.kind, effect.data())
        self._execute(effect)

    # --- effects out ---

    def _execute(self, effect: fx.ConversationEffect) -> None:
        match effect:
            case fx.Speak(prompt_id=prompt_id, text=text):
                self._start_prompt(prompt_id, self._speak, text)
            case fx.PlayFile(prompt_id=prompt_id, path=path):
                self._start_prompt(prompt_id, self._play_file, path)
            case fx.StopPrompt(prompt_id=prompt_id):
                self._stop_prompt(prompt_id)
            case fx.StartListening(phrases=phrases, free_form=free_form, grammar=name):
                self._recognizer.set_grammar(Grammar(phrases, free_form, name))
            case fx.StopListening():
                self._recognizer.set_grammar(None)
            case fx.StartTimer(name=name, after_ms=after_ms, token=token):
                self._cancel_timer(name)
                self._timers[name] = self.call.clock.call_later(
                    after_ms, lambda: self._timer_fired(name, token)
                )
            case fx.CancelTimer(name=name):
                self._cancel_timer(name)
            case fx.CallHook():
                self._spawn(self._run_hook, effect)
            case fx.SendSms(action_id=action_id, to=to, body=body):
                self._spawn(self._act, action_id, self._telephony.send_sms, to, body)
            case fx.TransferCall(action_id=action_id, to=to):
                self._spawn(self._transfer, action_id, to)
            case fx.HangupCall(reason=reason):
                self._spawn(self._hangup, f"conversation:{reason}")

    def _spawn(self, func: Callable[..., Any], *args: Any) -> None:
        assert self._tg is not None
        self._tg.start_soon(func, *args)

    def _timer_fired(self, name: str, token: int) -> None:
        self._timers.pop(name, None)
        self.dispatch(ev.TimerFired(name, token))

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    # --- prompts ---

    def _start_prompt(self, prompt_id: str, body: Callable[..., Any], arg: str) -> None:
        prompt = _Prompt(prompt_id)
        self._prompts[prompt_id] = prompt
        self._spawn(self._run_prompt, prompt, body, arg)

    async def _run_prompt(self, prompt: _Prompt, body: Callable[..., Any], arg: str) -> None:
        self._recognizer.set_speaking(True)
        try:
            with prompt.scope:
                await body(prompt, arg)
                # `asyncio.wait`, not `gather`: cancelling a gather cancels the marks
                # too, and a gather cancelled with some marks already released can
                # escape the prompt's scope and end the whole conversation.
                if prompt.marks:
                    await asyncio.wait(prompt.marks)
        except Exception as error:  # a synthesis failure must not hang the state
            name = self._synthesizer.name  # logged: replay's stand-in answers to it
            data = {"error": f"{type(error).__name__}: {error}", "provider": name}
            self.call.record("tts", "synthesis_failed", data)
            self.dispatch(ev.ProviderFailed(name, str(error)))
        finally:
            self._recognizer.set_speaking(False)
        heard = tuple(
            sentence
            for sentence, mark in zip(prompt.sentences, prompt.marks, strict=False)
            if mark.done() and not mark.cancelled() and mark.result() == MarkOutcome.PLAYED
        )
        self._prompts.pop(prompt.prompt_id, None)
        self.dispatch(ev.PromptFinished(prompt.prompt_id, heard, prompt.stopped))

    async def _speak(self, prompt: _Prompt, text: str) -> None:
        first = True
        for sentence in split_sentences(text):
            pending = b""
            sent = 0
            pieces: list[list[int]] = []  # [t_ms, bytes] of each send: replay re-times them
            index = len(prompt.marks)
            chunks = self._synthesizer.synthesize(sentence)
            try:
                async for chunk in chunks:
                    pending += chunk
                    whole = len(pending) - len(pending) % FRAME_BYTES
                    if whole:
                        if first:
                            first = False
                            self.call.record(
                                "tts", "first_audio_sent", {"prompt_id": prompt.prompt_id}
                            )
                        self.call.send_audio_nowait(pending[:whole])
                        pieces.append([self.call.t_ms(), whole])
                        sent += whole
                        pending = pending[whole:]
            except BaseException as stop:
                # Stopped (barge-in, hang-up) or failed mid-sentence: what already went
                # out is on the line, and replay must send exactly that, then stop too.
                cut: dict[str, Any] = {"prompt_id": prompt.prompt_id, "index": index}
                cut |= {"bytes": sent, "pieces": pieces}
                if isinstance(stop, Exception):
                    cut["error"] = f"{type(stop).__name__}: {stop}"
                self.call.record("tts", "sentence_cut", cut)
                raise
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            if pending:
                self.call.send_audio_nowait(pad_to_frame(pending))
                pieces.append([self.call.t_ms(), FRAME_BYTES])
                sent += FRAME_BYTES
            # Where each sentence ends in the agent track: replay re-creates the audio.
            data = {"prompt_id": prompt.prompt_id, "index": index, "bytes": sent, "pieces": pieces}
            self.call.record("tts", "sentence_synthesized", data)
            prompt.sentences.append(sentence)
            prompt.queued_bytes += sent
            self._mark(prompt)

    async def _play_file(self, prompt: _Prompt, path: str) -> None:
        audio = read_wav_as_mulaw_8k(self._base / path)
        self.call.record("tts", "first_audio_sent", {"prompt_id": prompt.prompt_id})
        self.call.send_audio_nowait(audio)
        prompt.sentences.append(path)
        prompt.queued_bytes += len(audio)
        self._mark(prompt)

    def _mark(self, prompt: _Prompt) -> None:
        """Queue the mark after the sentence just sent, with its watchdog.

        Every byte of the prompt so far is at most that many ms of playing ahead of
        the mark (what already played only makes it sooner), so the timeout is never
        shorter than the playback, whatever the synthesiser's pace.
        """
        timeout_ms = prompt.queued_bytes // _BYTES_PER_MS + self._mark_margin_ms
        name = f"{prompt.prompt_id}.{len(prompt.marks)}"
        prompt.marks.append(self.call.mark(name, timeout_ms))

    def _stop_prompt(self, prompt_id: str) -> None:
        prompt = self._prompts.get(prompt_id)
        if prompt is None or prompt.stopped:
            return
        prompt.stopped = True
        prompt.scope.cancel()  # stops synthesis, not just the forwarding
        # Clear now, before PromptFinished can queue the next prompt's audio behind it.
        self.call.clear_nowait()

    # --- hooks and telephony ---

    async def _run_hook(self, effect: fx.CallHook) -> None:
        context = HookContext(self.call.call_id, self.machine.state, dict(effect.context))
        scope = anyio.CancelScope()
        timer = self.call.clock.call_later(effect.timeout_ms, scope.cancel)
        result = None
        error = "timeout"
        try:
            with scope:
                result = await self._hooks(effect.target, (str(self._base),), context)
        except Exception as failure:  # the user's code failed: an `error` event
            error = f"{type(failure).__name__}: {failure}"
        finally:
            timer.cancel()
        if result is None:
            self.dispatch(ev.HookFailed(effect.call_id, error))
        else:
            self.dispatch(ev.HookReturned(effect.call_id, result.event, dict(result.variables)))

    async def _act(
        self, action_id: int, request: Callable[..., Awaitable[dict[str, Any]]], *args: Any
    ) -> None:
        """A telephony request (an SMS, a transfer), kept in flight until its result is
        dispatched."""
        done = anyio.Event()
        self._actions.append(done)
        try:
            result = await request(*args)
            self.dispatch(ev.ActionCompleted(action_id, True, snapshot(result)))
        except Exception as error:
            self.dispatch(ev.ActionCompleted(action_id, False, {"error": str(error)}))
        finally:
            done.set()
            self._actions.remove(done)

    async def _actions_settled(self) -> None:
        """Wait for the SMS still in flight: ending the call must not lose them."""
        while self._actions:
            await self._actions[0].wait()

    async def _hangup(self, reason: str) -> None:
        await self._actions_settled()
        await self.call.hangup(reason)

    async def _transfer(self, action_id: int, to: str) -> None:
        await self._actions_settled()
        # Kept like an SMS in flight: the platform ends the stream as it redirects the
        # call, often before its answer arrives, and the result must still be logged.
        await self._act(action_id, self._telephony.transfer, self.call.call_sid, to)
        await self.call.hangup("conversation:transferred")


class _Listener:
    """The recogniser's callbacks: logged (source `stt`), then fed to the machine."""

    def __init__(self, runner: ConversationRunner) -> None:
        self._runner = runner
        self._call = runner.call
        self._state: str | None = None  # the recogniser's last reported state

    def on_speech_started(self, t_ms: int) -> None:
        self._call.record("stt", "speech_started", {"at_ms": t_ms})
        self._runner.dispatch(ev.SpeechStarted(t_ms))

    def on_recognizing(self, text: str) -> None:
        self._call.record("stt", "transcript_partial", {"text": text})

    def on_committed(self, transcript: Transcript) -> None:
        self._call.record(
            "stt",
            "transcript_committed",
            {
                "text": transcript.text,
                "confidence": transcript.confidence,
                "start_ms": transcript.start_ms,
                "end_ms": transcript.end_ms,
                "alternatives": list(transcript.alternatives),
            },
        )
        rejected = not transcript.text.strip() and bool(transcript.alternatives)
        self._runner.dispatch(
            ev.TranscriptReceived(
                transcript.text,
                transcript.confidence,
                transcript.start_ms,
                transcript.end_ms,
                rejected,
            )
        )

    def on_discarded(self, transcript: Transcript, reason: str) -> None:
        """A transcript the recogniser dropped (e.g. the agent's own voice as echo):
        logged, never fed to the machine, so the log explains the silence."""
        self._call.record(
            "stt",
            "transcript_discarded",
            {
                "text": transcript.text,
                "reason": reason,
                "start_ms": transcript.start_ms,
                "end_ms": transcript.end_ms,
            },
        )

    def on_error(self, reason: str, fatal: bool) -> None:
        self._call.record("stt", "provider_error", {"reason": reason, "fatal": fatal})
        if fatal:
            self._runner.dispatch(ev.ProviderFailed(self._runner._recognizer.name, reason))

    def on_state(self, state: str, detail: str) -> None:
        # The provider's name: offline replay must know what made a recording's words.
        name = self._runner._recognizer.name
        # `on`: the provider's callback does not say which event moved it.
        moved = {"machine": "stt", "state": state, "from": self._state, "on": None}
        self._state = state
        self._call.record("stt", "state_entered", {**moved, "detail": detail, "provider": name})
