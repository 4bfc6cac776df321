"""The async shell around one conversation machine: the agent of a call.

It turns the call's audio, DTMF and end, and the recogniser's results, into
conversation events; feeds them one at a time to the pure machine (through
`MachineDriver`); logs every event and effect; and carries the effects out: timers on
the call's Clock and listening here; prompts and barge-in through its `PromptPlayer`
(`conversation.prompts`, the output half); hooks, SMS, transfer and hangup through its
`OutsideActions` (`conversation.actions`). The recogniser's callbacks are a
`RecognitionListener` (`conversation.recognition`, the hearing half).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, cast

import anyio
from anyio.abc import TaskGroup

from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent
from fsm_voice.clock import TimerHandle
from fsm_voice.conversation import effects as fx
from fsm_voice.conversation import events as ev
from fsm_voice.conversation.actions import HookCaller, OutsideActions, run_hook
from fsm_voice.conversation.language.spec import MachineSpec
from fsm_voice.conversation.machine import ConversationMachine, move_of
from fsm_voice.conversation.payload import snapshot
from fsm_voice.conversation.prompts import MARK_WATCHDOG_MARGIN_MS, PromptPlayer
from fsm_voice.conversation.recognition import RecognitionListener
from fsm_voice.conversation.streams import LiveStreams
from fsm_voice.conversation.telephony import SimulatedTelephony, Telephony
from fsm_voice.driver import MachineDriver
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.providers.base import Grammar, SpeechRecognizer, SpeechSynthesizer
from fsm_voice.providers.state_log import watch_states

__all__ = [
    "MARK_WATCHDOG_MARGIN_MS",
    "ConversationRunner",
    "HookCaller",
    "conversation_agent",
    "run_hook",
]

ACTION_GRACE_MS = 5_000  # how long an SMS in flight may outlive the call
# Events whose facts another source already logged (stt, transport): not logged twice.
_LOGGED_ELSEWHERE = (ev.SpeechStarted, ev.TranscriptReceived, ev.DigitPressed)


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
        self.spec = spec
        self.machine = ConversationMachine(spec)
        self._recognizer = recognizer
        attach = getattr(recognizer, "attach_record", None)
        if attach is not None:  # e.g. a TeeRecognizer: its secondary's results, logged
            attach(lambda kind, data: call.record("stt", kind, data))
        self._synthesizer = synthesizer
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
        self._tg: TaskGroup | None = None
        base = Path(spec.path).parent  # prompt files and hooks are found next to the machine
        self._prompts = PromptPlayer(
            call,
            synthesizer,
            set_speaking=recognizer.set_speaking,
            spawn=self._spawn,
            dispatch=self.dispatch,
            audio_dir=base,
            mark_margin_ms=mark_margin_ms,
        )
        self._actions = OutsideActions(
            call,
            telephony,
            hooks=hooks,
            hook_dir=base,
            current_state=lambda: self.machine.state,
            dispatch=self.dispatch,
        )

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
            hearing = RecognitionListener(call, self._recognizer, self.dispatch)
            await self._start_provider(
                "stt", self._recognizer.name, self._recognizer.start(hearing)
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
            await self._actions.settled()
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
                self._prompts.speak(prompt_id, text)
            case fx.PlayFile(prompt_id=prompt_id, path=path):
                self._prompts.play_file(prompt_id, path)
            case fx.StopPrompt(prompt_id=prompt_id):
                self._prompts.stop(prompt_id)
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
                self._spawn(self._actions.run_hook, effect)
            case fx.SendSms(action_id=action_id, to=to, body=body):
                self._spawn(self._actions.send_sms, action_id, to, body)
            case fx.TransferCall(action_id=action_id, to=to):
                self._spawn(self._actions.transfer, action_id, to)
            case fx.HangupCall(reason=reason):
                self._spawn(self._actions.hang_up, f"conversation:{reason}")

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
