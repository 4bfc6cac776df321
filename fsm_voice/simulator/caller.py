"""`ScriptedCaller`: runs a caller script against a call, from the phone's side.

Three tasks share the call while the script runs:

- the *mouth* sends one 160-byte frame every 20 ms on the Clock, without a break, as a
  real phone line does (the server's recogniser needs continuous frames to endpoint):
  the next frame of the line being said if there is one, else μ-law silence;
- the *ear* watches the simulator's playout (`sim.played`) and cuts it into stretches
  of agent audio: a stretch starts when audio plays after more than a frame of quiet,
  or after a `clear`;
- the steps, in order. `wait_prompt` waits for a stretch it has not yet heard (or for
  audio playing right now) and then for `quiet_ms` of idle playback after the end of
  what the agent said: an agent that marks its audio (a `mark` after each sentence)
  has not finished while its last audio has no mark after it. Only what reaches the
  phone counts, never the server's internals.

Times in the result are ms since `t0_ms` (by default when `run()` began), so a spoken
line's end and the next prompt's first audio give the turn latency directly
(`CallerResult.turn_latencies_ms()`).

    async with dial(url) as socket, PhoneSimulator(socket, clock, ids) as sim:
        caller = ScriptedCaller(sim, load_caller_script(path), synthesizer, clock)
        await caller.prepare()   # optional: synthesise every line up front
        result = await caller.run()
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import anyio

from fsm_voice.clock import Clock
from fsm_voice.errors import SocketClosed
from fsm_voice.providers.base import SpeechSynthesizer, split_sentences
from fsm_voice.simulator.caller_result import (
    CallerResult,
    HeardPrompt,
    KeyPress,
    SpokenLine,
    StepEvent,
)
from fsm_voice.simulator.caller_script import (
    CallerScript,
    Hangup,
    Press,
    Say,
    Silence,
    Step,
    WaitPrompt,
)
from fsm_voice.simulator.phone import BYTES_PER_MS, FRAME_MS, PhoneSimulator
from fsm_voice.simulator.utterance import SILENT_FRAME, Utterance

__all__ = [
    "CallerResult",
    "HeardPrompt",
    "KeyPress",
    "ScriptedCaller",
    "SpokenLine",
    "StepEvent",
]


class _StepFailed(Exception):
    """A step could not do its job; the message names the step and where it was written."""


class _CallEnded(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Stretch:
    t_ms: int  # when its first frame started playing
    position: int  # its first byte's offset in `sim.played`


class ScriptedCaller:
    """Runs one `CallerScript` on a live `PhoneSimulator` (already entered)."""

    def __init__(
        self,
        sim: PhoneSimulator,
        script: CallerScript,
        synthesizer: SpeechSynthesizer,
        clock: Clock,
        *,
        on_step: Callable[[StepEvent], None] | None = None,
        t0_ms: int | None = None,
        agent_marks: bool = False,
    ) -> None:
        # agent_marks: the agent marks the end of each sentence (fsm_voice's runtime does),
        # so even the first prompt is not over before its mark. Otherwise that is learnt
        # from the first mark the agent sends.
        if agent_marks:
            sim.expect_marks()
        self.sim = sim
        self.script = script
        self.synthesizer = synthesizer
        self.clock = clock
        self.on_step = on_step
        self.t0_ms = t0_ms
        self.result = CallerResult(script.name, len(script.steps))
        self._audio: dict[str, bytes] = {}  # synthesised lines, by text
        self._prepared = False
        self._utterance: Utterance | None = None
        self._stretches: list[_Stretch] = []
        self._heard = 0  # stretches already claimed by a step
        self._last_end_ms = -(10**9)  # when the last played frame ends (relative ms)
        self._ear_position = 0  # how much of `sim.played` the ear has seen
        self._changed = anyio.Event()
        self._mouth_scope = anyio.CancelScope()
        self._mouth_done = anyio.Event()

    def now(self) -> int:
        assert self.t0_ms is not None
        return self.clock.now_ms() - self.t0_ms

    async def prepare(self) -> None:
        """Synthesise every line of the script now (run() does it too, if not done)."""
        if self._prepared:
            return
        self._prepared = True
        await self.synthesizer.start()
        for text in self.script.lines():
            await self._speech(text)

    async def run(self) -> CallerResult:
        """Run every step (once per instance); returns what happened.

        A step that fails is reported in the result, not raised; a synthesiser error is
        raised. Streaming stops when the script ends: leaving the simulator's context
        hangs up if the script did not.
        """
        if self.t0_ms is None:
            self.t0_ms = self.clock.now_ms()
        error: Exception | None = None
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._mouth)
            tasks.start_soon(self._ear)
            try:
                await self.prepare()  # while the mouth already streams silence
                await self._steps()
            except Exception as e:
                error = e  # raised below as itself, not inside an ExceptionGroup
            finally:
                tasks.cancel_scope.cancel()
        if error is not None:
            raise error
        return self.result

    # ------------------------------------------------------------------ steps

    async def _steps(self) -> None:
        result = self.result
        for index, step in enumerate(self.script.steps):
            self._report(index, step, "started")
            try:
                if self.sim.close_code is not None:
                    raise _CallEnded
                if await _first(partial(self._step, index, step), self._wait_closed) == 1:
                    raise _CallEnded
            except _StepFailed as e:
                result.failure = str(e)
                self._report(index, step, "failed", str(e))
                return
            except (_CallEnded, SocketClosed):
                result.close_code = self.sim.close_code
                # A prompt already heard when the agent hung up still counts as heard.
                done = (isinstance(step, WaitPrompt) and self._claim_partial(index)) or (
                    isinstance(step, Hangup) and result.hung_up_ms is not None
                )
                rest = self.script.steps[index + int(done) :]
                if done:
                    result.steps_done += 1
                    detail = "the call ended" if isinstance(step, WaitPrompt) else "hung up"
                    self._report(index, step, "done", detail)
                # Waiting (silence) and hanging up are passive: a call the agent ends
                # during them is how such a script is meant to finish.
                if any(not isinstance(s, Hangup | Silence) for s in rest):
                    result.failure = (
                        f"{rest[0].source}: the call ended (close code {result.close_code}) "
                        f"before {rest[0].describe()} could finish"
                    )
                return
            result.steps_done += 1
            self._report(index, step, "done", self._detail(step))

    async def _step(self, index: int, step: Step) -> None:
        if isinstance(step, WaitPrompt):
            await self._wait_prompt(index, step)
        elif isinstance(step, Say):
            await self._say(index, step)
        elif isinstance(step, Press):
            await self._press(index, step)
        elif isinstance(step, Silence):
            await self.clock.sleep(step.ms)
        else:
            await self._hangup(step)

    async def _wait_prompt(self, index: int, step: WaitPrompt) -> None:
        speaking = False

        async def body() -> None:
            nonlocal speaking
            stretch = await self._prompt()
            speaking = True
            await self._until_quiet(step.quiet_ms)
            self._heard = len(self._stretches)
            played = len(self.sim.played) - stretch.position
            self.result.prompts.append(HeardPrompt(index, stretch.t_ms, self._last_end_ms, played))

        if await _first(body, lambda: self.clock.sleep(step.timeout_ms)) == 1:
            if not speaking:
                what = f"no agent audio within {step.timeout_ms} ms"
            elif self.sim.awaiting_mark:
                what = f"the agent's audio had no mark after it within {step.timeout_ms} ms"
            else:
                what = f"the agent was still speaking after {step.timeout_ms} ms"

            raise _StepFailed(f"{step.source}: {step.describe()}: {what}")

    def _claim_partial(self, index: int) -> bool:
        """The call ended during a wait_prompt: record the prompt if one was playing."""
        if len(self._stretches) <= self._heard:
            return False
        stretch = self._stretches[self._heard]
        self._heard = len(self._stretches)
        played = len(self.sim.played) - stretch.position
        idle_ms = None if self._playing() else self._last_end_ms
        self.result.prompts.append(HeardPrompt(index, stretch.t_ms, idle_ms, played))
        return True

    async def _say(self, index: int, step: Say) -> None:
        audio = await self._speech(step.text)  # before waiting: barge in on time
        if step.barge_in_after_ms is not None:
            stretch = await self._within(step.timeout_ms, self._prompt, step, "no agent audio")
            self._heard = len(self._stretches)
            await self.clock.sleep(stretch.t_ms + step.barge_in_after_ms - self.now())
        over_agent_audio = self._playing()
        utterance = self._utter(audio)
        await utterance.done.wait()
        # Agent audio that began before the caller stopped talking is what they talked
        # over (a prompt that paused splits into stretches): the next wait_prompt is for
        # the agent's answer. One still playing now is still found by `_prompt`.
        talked_over = sum(1 for s in self._stretches if s.t_ms < utterance.voiced_end_ms)
        self._heard = max(self._heard, talked_over)
        self.result.lines.append(
            SpokenLine(
                index,
                step.text,
                utterance.start_ms,
                utterance.end_ms,
                utterance.voiced_end_ms,
                over_agent_audio,
            )
        )
        await self.clock.sleep(step.pause_ms)

    async def _press(self, index: int, step: Press) -> None:
        for i, digit in enumerate(step.digits):
            if i:
                await self.clock.sleep(step.gap_ms)
            await self.sim.send_dtmf(digit)
            self.result.keys.append(KeyPress(index, digit, self.now()))

    async def _hangup(self, step: Hangup) -> None:
        if step.after_ms is not None:
            stretch = await self._within(step.timeout_ms, self._prompt, step, "no agent audio")
            self._heard = len(self._stretches)
            await self.clock.sleep(stretch.t_ms + step.after_ms - self.now())
        # Stop the mouth first: nothing may follow `stop` on the wire.
        self._mouth_scope.cancel()
        await self._mouth_done.wait()
        self.result.hung_up_ms = self.now()
        await self.sim.hangup()
        self.result.close_code = self.sim.close_code

    # ------------------------------------------------------------------ listening

    async def _prompt(self) -> _Stretch:
        """The first stretch of agent audio no step has claimed, or the one playing now."""
        while True:
            if len(self._stretches) > self._heard:
                return self._stretches[self._heard]
            # Only a frame the ear has seen: audio that just arrived may start a new stretch.
            if self._stretches and self.now() < self._last_end_ms:
                return self._stretches[-1]
            await self._changed.wait()

    def _playing(self) -> bool:
        return self.sim.playback_pending_bytes > 0 or self.now() < self._last_end_ms

    async def _until_quiet(self, quiet_ms: int) -> None:
        while True:
            await self.sim.wait_playback_idle()
            if self.sim.awaiting_mark:
                # The agent marks the end of what it says (fsm_voice after each sentence,
                # voice_runtime after each speak): audio with no mark after it yet is a
                # synthesiser running behind, not the end of the prompt.
                await self.sim.wait_audio_marked()
                continue
            if len(self.sim.played) != self._ear_position:
                await self._changed.wait()  # let the ear see the last frame first
                continue
            wait_ms = self._last_end_ms + quiet_ms - self.now()
            if wait_ms <= 0 and self.sim.playback_pending_bytes == 0:
                return
            await self.clock.sleep(max(wait_ms, 1))

    async def _ear(self) -> None:
        cleared = self.sim.cleared
        try:
            while True:
                position = len(self.sim.played)
                await self.sim.wait_played_bytes(position + 1)
                now = self.now()
                # More than a frame of quiet, or a clear, means the agent started anew.
                if now > self._last_end_ms + FRAME_MS or self.sim.cleared != cleared:
                    self._stretches.append(_Stretch(now, position))
                    self.result.agent_onsets_ms.append(now)
                cleared = self.sim.cleared
                self._ear_position = len(self.sim.played)
                self._last_end_ms = now + (self._ear_position - position) // BYTES_PER_MS
                self._notify()
        except SocketClosed:
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_closed(self) -> None:
        await self.sim.wait_closed()

    # ------------------------------------------------------------------ speaking

    async def _speech(self, text: str) -> bytes:
        if text not in self._audio:
            chunks: list[bytes] = []
            for sentence in split_sentences(text):
                async for chunk in self.synthesizer.synthesize(sentence):
                    chunks.append(chunk)
            self._audio[text] = b"".join(chunks)
        return self._audio[text]

    def _utter(self, audio: bytes) -> Utterance:
        utterance = Utterance.of(audio)
        self._utterance = utterance
        return utterance

    async def _mouth(self) -> None:
        """One frame every 20 ms on the Clock, on an absolute grid so it never drifts."""
        try:
            with self._mouth_scope:
                due_ms = self.clock.now_ms()
                while True:
                    delay = due_ms - self.clock.now_ms()
                    if delay > 0:
                        await self.clock.sleep(delay)
                    await self.sim.send_audio(self._next_frame())
                    due_ms += FRAME_MS
        except SocketClosed:
            pass  # the server ended the call
        except RuntimeError:
            # Someone hung up the simulator: the call is over. `hangup` marks the call
            # hung up before it sends `stop` and closes, so the close code may still be
            # unset here (a busy machine widens that window).
            if self.sim.close_code is None and not self.sim.hung_up:
                raise
        finally:
            self._mouth_done.set()

    def _next_frame(self) -> bytes:
        utterance = self._utterance
        if utterance is None or not utterance.frames:
            return SILENT_FRAME
        now = self.now()
        if utterance.sent == 0:
            utterance.start_ms = now
        # Ends are exclusive: the caller is quiet from the moment the next frame is due.
        if utterance.sent == utterance.last_voiced:
            utterance.voiced_end_ms = now + FRAME_MS
        utterance.sent += 1
        frame = utterance.frames.popleft()
        if not utterance.frames:
            utterance.end_ms = now + FRAME_MS
            self._utterance = None
            utterance.done.set()
        return frame

    # ------------------------------------------------------------------ plumbing

    async def _within(
        self, timeout_ms: int, job: Callable[[], Awaitable[_Stretch]], step: Step, what: str
    ) -> _Stretch:
        found: list[_Stretch] = []

        async def run() -> None:
            found.append(await job())

        if await _first(run, lambda: self.clock.sleep(timeout_ms)) == 1:
            raise _StepFailed(f"{step.source}: {step.describe()}: {what} within {timeout_ms} ms")
        return found[0]

    def _report(
        self, index: int, step: Step, phase: Literal["started", "done", "failed"], detail: str = ""
    ) -> None:
        if self.on_step is not None:
            self.on_step(StepEvent(index, step, phase, self.now(), detail))

    def _detail(self, step: Step) -> str:
        if isinstance(step, WaitPrompt) and self.result.prompts:
            prompt = self.result.prompts[-1]
            return f"heard {prompt.played_bytes // BYTES_PER_MS} ms of agent audio"
        if isinstance(step, Say) and self.result.lines:
            line = self.result.lines[-1]
            return f"said {line.text!r} ({line.end_ms - line.start_ms} ms)"
        if isinstance(step, Hangup):
            return "hung up"
        return step.describe()


async def _first(*jobs: Callable[[], Awaitable[None]]) -> int:
    """Run `jobs` concurrently; cancel the rest once one ends. Returns its index and
    re-raises its exception (anyio would wrap it in an ExceptionGroup)."""
    winner: list[int] = []
    error: list[Exception] = []
    async with anyio.create_task_group() as tasks:

        async def run(i: int, job: Callable[[], Awaitable[None]]) -> None:
            try:
                await job()
            except Exception as e:
                if not winner:
                    error.append(e)
            if not winner:
                winner.append(i)
            tasks.cancel_scope.cancel()

        for i, job in enumerate(jobs):
            tasks.start_soon(run, i, job)
    if error:
        raise error[0]
    return winner[0]
