"""Caller scripts: the loader's errors, and ScriptedCaller against a real in-process call."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from fsm_voice.audio.mulaw import FRAME_BYTES, SILENCE_BYTE, decode, encode
from fsm_voice.call.handle import CallHandle, MarkOutcome
from fsm_voice.call.socket import MemorySocket, memory_socket_pair
from fsm_voice.clock import Clock, CountingIds, VirtualClock
from fsm_voice.providers.base import SpeechSynthesizer
from fsm_voice.providers.scripted import ScriptedSynthesizer
from fsm_voice.simulator.caller import CallerResult, ScriptedCaller, StepEvent
from fsm_voice.simulator.caller_script import (
    CallerScript,
    CallerScriptError,
    Hangup,
    Press,
    Say,
    Silence,
    WaitPrompt,
    load_caller_script,
    parse_caller_script,
)
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.testing import InProcessCall, in_process_call

EXAMPLE = Path(__file__).parent.parent / "callers" / "example.yaml"

# ---------------------------------------------------------------------- the loader


def test_the_example_loads_with_its_defaults() -> None:
    script = load_caller_script(EXAMPLE)
    assert (script.name, script.machine) == ("example", "example")
    assert (script.expect.end_state, script.expect.outcome) == ("goodbye", "completed")
    assert [type(s) for s in script.steps] == [
        WaitPrompt, Say, WaitPrompt, Press, WaitPrompt, Silence, Say, Hangup,
    ]  # fmt: skip
    first, say = script.steps[0], script.steps[1]
    assert first == WaitPrompt(first.source, timeout_ms=15_000, quiet_ms=600)
    assert say == Say(say.source, "yes please", barge_in_after_ms=None, pause_ms=300)
    assert str(first.source) == f"{EXAMPLE}:18"
    assert script.steps[6] == Say(script.steps[6].source, "agent please", barge_in_after_ms=800)
    assert script.steps[7] == Hangup(script.steps[7].source, after_ms=500)


def test_short_and_long_forms_mean_the_same() -> None:
    short = parse_caller_script(
        H + "  - wait_prompt:\n  - say: yes\n  - press: 0012#\n  - silence: 1_500\n  - hangup:\n"
    )
    long = parse_caller_script(
        H + ""
        "  - wait_prompt: {}\n  - say: {text: 'yes'}\n  - press: {digits: '0012#'}\n"
        "  - silence: {ms: 1500}\n  - hangup: {}\n"
    )
    assert short.steps == long.steps
    # Kept as written: YAML 1.1 would make `yes` True and 0012 the octal number 10.
    assert short.steps[1] == Say(short.steps[1].source, "yes")
    assert short.steps[2] == Press(short.steps[2].source, "0012#")
    assert short.expect.end_state is None and short.lines() == ["yes"]


H = "name: a\nmachine: m\nsteps:\n"  # a good head; the steps start on line 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: a\nmachin: m\nsteps: [hangup: {}]\n",
            "<t>:2: a caller script: unknown key 'machin'; did you mean 'machine'?",
        ),
        ("name: a\nmachine: m\n", "<t>:1: missing required key 'steps'"),
        (
            H + "  - hangup: {}\n  - wait_promt: {}\n",
            "<t>:5: unknown step 'wait_promt'; did you mean 'wait_prompt'?",
        ),
        (H + "  - say: {txt: hi}\n", "<t>:4: say: unknown key 'txt'; did you mean 'text'?"),
        (H + "\n  - press: 12a\n", "<t>:5: press: 'a' are not phone keys"),
        (H + "  - press: #\n", '<t>:4: press needs digits (quote it if it starts with "#"'),
        (H + "  - silence: -5\n", "<t>:4: silence.ms must be a whole number of milliseconds ≥ 0"),
        (
            H + "  - wait_prompt: {timeout_ms: 1.5}\n",
            "<t>:4: wait_prompt.timeout_ms must be a whole number",
        ),
        (H + "  - say: ''\n", "<t>:4: say.text must be non-empty text"),
        (H + "  - {say: a, press: '1'}\n", "<t>:4: a step is a mapping with exactly one of"),
        ("name: a\nmachine: m\nsteps: []\n", "<t>:3: steps must be a non-empty list"),
        (
            "name: a\nmachine: m\nexpect: {end: x}\nsteps: [hangup:]\n",
            "<t>:3: expect: unknown key 'end'",
        ),
        (
            "name: a\nname: b\nmachine: m\nsteps: [hangup:]\n",
            "<t>:2: a caller script: 'name' given twice",
        ),
        (H + "  - say: [oops\n", "<t>:5: not valid YAML"),
        ("- just\n- a list\n", "<t>:1: a caller script must be a mapping"),
        ("", "<t>:1: the file is empty"),
    ],
)
def test_a_bad_script_is_rejected_with_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(CallerScriptError) as caught:
        parse_caller_script(text, "<t>")
    assert any(str(p).startswith(expected) for p in caught.value.problems), caught.value


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(H + "  - say: {txt: hi}\n  - silence: x\n")
    with pytest.raises(CallerScriptError) as caught:
        load_caller_script(bad)
    assert [str(p).split(": ")[0] for p in caught.value.problems] == [f"{bad}:4", f"{bad}:5"]


# ---------------------------------------------------------------------- audio helpers


def tone(ms: int, level: int = 8000) -> bytes:
    """A loud square wave (plainly voiced), 8 kHz μ-law."""
    n = ms * 8
    pcm = np.where((np.arange(n) // 10) % 2 == 0, level, -level).astype(np.int16)
    return encode(pcm)


GOODBYE_LEVEL = 4000  # its μ-law bytes differ from the other prompts'


def voiced(frame: bytes) -> bool:
    pcm = decode(frame).astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm))) > 300


class ToneSynthesizer:
    """A SpeechSynthesizer whose audio length is known exactly: 50 ms a character of
    tone, then 100 ms of silence (as a real synthesiser trails off). Counts requests."""

    name = "tone"

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.requests.append(text)
        audio = tone(50 * len(text)) + bytes([SILENCE_BYTE]) * 800
        for i in range(0, len(audio), 1000):  # in uneven chunks, like a streaming TTS
            yield audio[i : i + 1000]


def speech_ms(text: str) -> int:
    """How long ToneSynthesizer's audio for `text` is, in whole 20 ms frames."""
    return -(-(50 * len(text) + 100) // 20) * 20


# ---------------------------------------------------------------------- a small agent


class Ivr:
    """The agent `callers/example.yaml` is written for, with a log of what it heard.

    greeting (1 s) → waits for the caller to speak and stop → ask_pin (0.8 s) → waits for
    "#" → thanks (0.6 s) → 3 s of quiet → a long prompt (4 s), cleared if the caller talks
    over it → after the caller stops, goodbye (2 s) → waits for the end of the call.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.frames: list[tuple[int, bool]] = []  # every caller frame: (t_ms, voiced)
        self.keys: list[tuple[int, str]] = []
        self.marks: dict[str, tuple[int, MarkOutcome]] = {}  # name: (t released, outcome)
        self.sent_at: dict[str, int] = {}  # prompt name: when it was queued
        self._changed = anyio.Event()

    def _seen(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _frame(self, frame: bytes) -> None:
        self.frames.append((self.clock.now_ms(), voiced(frame)))
        self._seen()

    def _key(self, digit: str) -> None:
        self.keys.append((self.clock.now_ms(), digit))
        self._seen()

    async def until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    def spoke_and_stopped(self, since: int) -> bool:
        """Voiced frames after `since`, then at least 300 ms of unvoiced ones."""
        after = [(t, v) for t, v in self.frames if t >= since]
        last_voiced = max((t for t, v in after if v), default=None)
        return last_voiced is not None and after[-1][0] - last_voiced >= 300

    def spoke(self, since: int) -> bool:
        return any(v for t, v in self.frames if t >= since)

    async def prompt(self, call: CallHandle, name: str, ms: int) -> MarkOutcome:
        self.sent_at[name] = self.clock.now_ms()
        await call.send_audio(tone(ms, GOODBYE_LEVEL if name == "goodbye" else 8000))
        outcome = await call.send_mark(name)
        self.marks[name] = (self.clock.now_ms(), outcome)
        return outcome

    async def __call__(self, call: CallHandle) -> None:
        call.on_caller_audio(self._frame)
        call.on_dtmf(self._key)
        await self.prompt(call, "greeting", 1000)
        t = self.clock.now_ms()
        await self.until(lambda: self.spoke_and_stopped(t))
        await self.prompt(call, "ask_pin", 800)
        await self.until(lambda: any(d == "#" for _, d in self.keys))
        await self.prompt(call, "thanks", 600)
        t = self.clock.now_ms()
        await self.clock.sleep(3000)  # the noinput timeout
        assert not self.spoke(t)

        async def barge_in() -> None:
            await self.until(lambda: self.spoke(t))
            await call.clear()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(barge_in)
            await self.prompt(call, "long", 4000)
            tasks.cancel_scope.cancel()
        t = self.clock.now_ms()
        await self.until(lambda: self.spoke_and_stopped(t))
        await self.prompt(call, "goodbye", 2000)
        await call.wait_ended()


# ---------------------------------------------------------------------- the runner


Agent = Callable[[CallHandle], Awaitable[None]]


async def run(
    script: CallerScript,
    make_agent: Callable[[Clock], Agent] = Ivr,
    synthesizer: SpeechSynthesizer | None = None,
) -> tuple[CallerResult, Any, InProcessCall, list[StepEvent]]:
    """Run `script` against the agent `make_agent(clock)` in process on the virtual clock."""
    clock = VirtualClock()
    agent = make_agent(clock)
    events: list[StepEvent] = []
    async with in_process_call(agent, clock=clock) as call:
        caller = ScriptedCaller(
            call.sim, script, synthesizer or ToneSynthesizer(), clock, on_step=events.append
        )
        result = await caller.run()
    return result, agent, call, events


def script(steps: str) -> CallerScript:
    """A script from its steps; they start on line 4 of "<t>"."""
    return parse_caller_script(f"name: t\nmachine: m\nsteps:\n{steps}", "<t>")


@pytest.mark.anyio
async def test_the_example_script_runs_a_whole_call() -> None:
    result, ivr, call, events = await run(load_caller_script(EXAMPLE))
    assert result.ok and result.steps_done == result.steps_total == 8, result.failure
    assert await call.wait_ended() == "caller_hangup"
    # Each wait_prompt heard the prompt the agent queued, from its first to last frame.
    heard = [(p.first_audio_ms, p.idle_ms) for p in result.prompts]
    sent = ivr.sent_at
    assert heard == [
        (sent["greeting"], sent["greeting"] + 1000),
        (sent["ask_pin"], sent["ask_pin"] + 800),
        (sent["thanks"], sent["thanks"] + 600),
    ]
    assert [(line.text, line.end_ms - line.start_ms) for line in result.lines] == [
        ("yes please", speech_ms("yes please")),
        ("agent please", speech_ms("agent please")),
    ]
    # The agent answers once it has had 300 ms of frames after the last voiced one.
    assert result.turn_latencies_ms() == [280, 280]
    assert [(e.index, e.phase) for e in events] == [
        (i, phase) for i in range(8) for phase in ("started", "done")
    ]


@pytest.mark.anyio
async def test_the_caller_streams_one_frame_every_20_ms_without_a_break() -> None:
    result, ivr, call, _ = await run(load_caller_script(EXAMPLE))
    media = [m for m in call.sim.sent if m["event"] == "media"]
    stamps = [int(m["media"]["timestamp"]) for m in media]
    assert stamps == list(range(0, result.hung_up_ms or 0, 20))
    assert all(len(base64.b64decode(m["media"]["payload"])) == FRAME_BYTES for m in media)
    # The agent got every one of them, on time, and voice exactly while a line was said.
    assert [t for t, _ in ivr.frames] == stamps
    voiced_at = [t for t, v in ivr.frames if v]
    expected = [t for line in result.lines for t in range(line.start_ms, line.voiced_end_ms, 20)]
    assert voiced_at == expected
    assert call.sim.sent[-1]["event"] == "stop"  # nothing after the hangup


@pytest.mark.anyio
async def test_digits_arrive_in_order_gap_ms_apart() -> None:
    result, ivr, _, _ = await run(load_caller_script(EXAMPLE))
    assert "".join(d for _, d in ivr.keys) == result.digits == "12#"
    times = [t for t, _ in ivr.keys]
    assert [b - a for a, b in itertools.pairwise(times)] == [300, 300]
    assert times == [key.t_ms for key in result.keys]


@pytest.mark.anyio
async def test_wait_prompt_waits_for_the_prompt_to_finish_and_go_quiet() -> None:
    result, ivr, _, _ = await run(load_caller_script(EXAMPLE))
    greeting_played_ms, outcome = ivr.marks["greeting"]
    assert outcome is MarkOutcome.PLAYED
    first_voice = next(t for t, v in ivr.frames if v)
    # quiet_ms (600) after the greeting's last frame, plus at most one frame to the grid.
    assert greeting_played_ms + 600 <= first_voice <= greeting_played_ms + 620
    assert first_voice == result.lines[0].start_ms


@pytest.mark.anyio
async def test_a_pause_inside_a_prompt_shorter_than_quiet_ms_does_not_end_it() -> None:
    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            await call.send_audio(tone(500))
            await call.send_mark("half")
            await clock.sleep(400)
            await call.send_audio(tone(500))
            await call.send_mark("end")
            await call.wait_ended()

        return agent

    result, _, _, _ = await run(script("  - wait_prompt: {}\n  - hangup: {}\n"), make_agent)
    assert result.ok
    assert [(p.first_audio_ms, p.idle_ms, p.played_bytes) for p in result.prompts] == [
        (0, 1400, 8000)
    ]
    assert result.hung_up_ms == 2000


@pytest.mark.anyio
async def test_a_stall_before_a_sentence_mark_does_not_end_the_prompt() -> None:
    """A synthesiser running behind (a busy machine) leaves the line quiet mid-sentence for
    longer than quiet_ms; the sentence's mark has not come, so the prompt is not over."""

    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            await call.send_audio(tone(500))
            await call.send_mark("s0")  # returns once it has played, at 500 ms
            await call.send_audio(tone(500))
            await clock.sleep(1500)  # playback runs dry from 1000 ms to 2000 ms
            await call.send_audio(tone(500))
            await call.send_mark("s1")
            await call.wait_ended()

        return agent

    result, _, _, _ = await run(script("  - wait_prompt: {}\n  - hangup: {}\n"), make_agent)
    assert result.ok, result.failure
    assert [(p.first_audio_ms, p.idle_ms, p.played_bytes) for p in result.prompts] == [
        (0, 2500, 12000)
    ]
    assert result.hung_up_ms == 3100


@pytest.mark.anyio
async def test_an_agent_known_to_mark_keeps_even_its_first_prompt_open_until_its_mark() -> None:
    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            await call.send_audio(tone(300))  # a first clause, then the synthesiser lags
            await clock.sleep(1500)
            await call.send_audio(tone(500))
            await call.send_mark("s0")
            await call.wait_ended()

        return agent

    steps = "  - wait_prompt: {}\n  - hangup: {}\n"
    clock = VirtualClock()
    async with in_process_call(make_agent(clock), clock=clock) as call:
        told = ScriptedCaller(call.sim, script(steps), ToneSynthesizer(), clock, agent_marks=True)
        result = await told.run()
    assert result.ok, result.failure
    assert [(p.idle_ms, p.played_bytes) for p in result.prompts] == [(2000, 6400)]
    # Not told, the caller cannot know yet that this agent marks: the gap ends the prompt.
    unknown, _, _, _ = await run(script(steps), make_agent)
    assert [(p.idle_ms, p.played_bytes) for p in unknown.prompts] == [(300, 2400)]


@pytest.mark.anyio
async def test_an_agent_that_never_marks_ends_its_prompt_by_quiet_alone() -> None:
    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            await call.send_audio(tone(500))
            await call.wait_ended()

        return agent

    result, _, _, _ = await run(script("  - wait_prompt: {}\n  - hangup: {}\n"), make_agent)
    assert result.ok, result.failure
    assert [(p.idle_ms, p.played_bytes) for p in result.prompts] == [(500, 4000)]
    assert result.hung_up_ms == 1100


@pytest.mark.anyio
async def test_a_marking_agent_that_leaves_its_last_audio_unmarked_fails_the_wait() -> None:
    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            await call.send_mark("hello")
            await call.send_audio(tone(500))
            await call.wait_ended()

        return agent

    steps = "  - wait_prompt: {timeout_ms: 3000}\n  - hangup: {}\n"
    result, _, _, _ = await run(script(steps), make_agent)
    assert result.failure == (
        "<t>:4: wait_prompt: the agent's audio had no mark after it within 3000 ms"
    )


@pytest.mark.anyio
async def test_barge_in_starts_speaking_while_the_prompt_is_still_playing() -> None:
    result, ivr, call, _ = await run(load_caller_script(EXAMPLE))
    line = result.lines[1]
    assert line.start_ms == ivr.sent_at["long"] + 800 and line.over_agent_audio
    assert not result.lines[0].over_agent_audio
    # The agent heard the caller during its prompt and cleared it: a barge-in.
    assert ivr.marks["long"][1] is MarkOutcome.CLEARED
    assert call.sim.cleared == 1
    assert ivr.marks["long"][0] < ivr.sent_at["long"] + 4000


@pytest.mark.anyio
async def test_after_a_barge_in_wait_prompt_waits_for_the_reply() -> None:
    """A prompt that pauses (a slow synthesiser, a busy machine) plays as two stretches.
    Both are the prompt the caller barged in on; the next wait_prompt is for the reply."""

    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            heard = anyio.Event()
            call.on_caller_audio(lambda frame: heard.set() if voiced(frame) else None)
            await call.send_audio(tone(500))
            await clock.sleep(700)  # a pause inside the prompt: a second stretch
            await call.send_audio(tone(3000))
            await heard.wait()
            await call.clear()
            await clock.sleep(1500)  # thinking: longer than the caller's quiet_ms
            await call.send_audio(tone(800))
            await call.wait_ended()

        return agent

    steps = (
        "  - say: {text: 'cancel', barge_in_after_ms: 1500}\n"
        "  - wait_prompt: {}\n"
        "  - say: 'yes'\n"
        "  - hangup: {}\n"
    )
    result, _, _, _ = await run(script(steps), make_agent)
    assert result.ok, result.failure
    cancel, yes = result.lines
    (reply,) = result.prompts
    # The reply started after the caller's line, and "yes" came only once it was over.
    assert reply.first_audio_ms > cancel.voiced_end_ms
    assert reply.played_bytes == 800 * 8
    assert yes.start_ms >= reply.first_audio_ms + 800 and not yes.over_agent_audio


@pytest.mark.anyio
async def test_hangup_after_ms_ends_the_call_mid_prompt_with_stop() -> None:
    result, ivr, call, _ = await run(load_caller_script(EXAMPLE))
    assert result.hung_up_ms == ivr.sent_at["goodbye"] + 500
    assert ivr.marks["goodbye"][1] is MarkOutcome.CALL_ENDED
    assert call.sim.sent[-1]["event"] == "stop" and result.close_code == 1000
    assert await call.wait_ended() == "caller_hangup"
    # The caller heard 500 ms of the 2 s goodbye (a frame more if it began at that ms).
    played = bytes(call.sim.played)
    goodbye_heard = len(played) - len(played.rstrip(tone(20, GOODBYE_LEVEL)))
    assert 500 * 8 <= goodbye_heard <= 520 * 8


def speaker(*prompt_ms: int, hang_up: bool = False) -> Callable[[Clock], Agent]:
    """An agent that says prompts of these lengths back to back, then maybe hangs up."""

    def make_agent(clock: Clock) -> Agent:
        async def agent(call: CallHandle) -> None:
            for ms in prompt_ms:
                await call.send_audio(tone(ms))
                await call.send_mark("prompt")
            if hang_up:
                await call.hangup()
            await call.wait_ended()

        return agent

    return make_agent


@pytest.mark.anyio
async def test_a_wait_prompt_with_no_agent_audio_fails_naming_its_line() -> None:
    result, _, _, events = await run(
        script("  - wait_prompt: {}\n  - wait_prompt: {timeout_ms: 2000}\n"), speaker(500)
    )
    assert result.failure == "<t>:5: wait_prompt: no agent audio within 2000 ms"
    assert not result.ok and result.steps_done == 1
    assert (events[-1].index, events[-1].phase, events[-1].t_ms) == (1, "failed", 1100 + 2000)


@pytest.mark.anyio
async def test_a_wait_prompt_on_a_prompt_longer_than_its_timeout_fails() -> None:
    result, _, _, _ = await run(script("  - wait_prompt: {timeout_ms: 2000}\n"), speaker(5000))
    assert result.failure == "<t>:4: wait_prompt: the agent was still speaking after 2000 ms"


@pytest.mark.anyio
async def test_a_barge_in_with_no_prompt_to_talk_over_fails() -> None:
    steps = "  - say: {text: hi, barge_in_after_ms: 100, timeout_ms: 1000}\n"
    result, _, _, _ = await run(script(steps), speaker())
    assert result.failure == "<t>:4: say 'hi': no agent audio within 1000 ms"
    assert result.lines == []


@pytest.mark.anyio
async def test_the_agent_hanging_up_ends_the_script_and_names_the_step_cut_short() -> None:
    result, _, call, _ = await run(
        script("  - wait_prompt: {}\n  - say: too late\n  - hangup: {}\n"),
        speaker(1000, hang_up=True),
    )
    assert await call.wait_ended() == "agent_hangup"
    # The prompt was heard in full before the agent hung up during the quiet wait.
    assert [(p.first_audio_ms, p.idle_ms) for p in result.prompts] == [(0, 1000)]
    assert result.steps_done == 1 and result.close_code == 1000
    assert (
        result.failure
        == "<t>:5: the call ended (close code 1000) before say 'too late' could finish"
    )


@pytest.mark.anyio
async def test_a_script_whose_last_steps_are_hangups_is_fine_when_the_agent_hangs_up() -> None:
    result, _, _, _ = await run(
        script("  - wait_prompt: {}\n  - hangup: {}\n"), speaker(1000, hang_up=True)
    )
    assert result.ok and result.steps_done == 1 and result.hung_up_ms is None


class SlowStop:
    """The caller's end of a line on which `stop` is held until released: the window in
    which a hangup has begun and the socket is not closed yet (wide on a busy machine)."""

    def __init__(self, line: MemorySocket) -> None:
        self.line = line
        self.stop_pending = anyio.Event()
        self.release = anyio.Event()

    async def receive(self) -> str | bytes:
        return await self.line.receive()

    async def send(self, text: str) -> None:
        if json.loads(text)["event"] == "stop":
            self.stop_pending.set()
            await self.release.wait()
        await self.line.send(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.line.close(code, reason)


@pytest.mark.anyio
async def test_a_hangup_from_outside_while_the_caller_streams_ends_its_script() -> None:
    # Twilio ends the stream on a redirect or a REST hangup: the fake hangs the
    # simulator up while the script's mouth streams a frame every 20 ms.
    clock = VirtualClock()
    client, server = memory_socket_pair()
    line = SlowStop(client)
    sim = PhoneSimulator(line, clock, CountingIds())
    caller = ScriptedCaller(sim, script("  - silence: 10000\n"), ToneSynthesizer(), clock)
    results: list[CallerResult] = []

    async def run_caller() -> None:
        results.append(await caller.run())

    async with sim, anyio.create_task_group() as tasks:
        tasks.start_soon(run_caller)
        await clock.advance(100)
        tasks.start_soon(sim.hangup)
        await line.stop_pending.wait()
        await clock.advance(40)  # the mouth's next frames fall due while `stop` is held
        line.release.set()
    (result,) = results
    assert result.ok and result.close_code == 1000
    await server.drop()


@pytest.mark.anyio
async def test_lines_are_synthesised_once_per_sentence_and_cached_per_text() -> None:
    synthesizer = ToneSynthesizer()
    steps = "  - say: Yes. On Tuesday.\n  - say: hi\n  - say: Yes. On Tuesday.\n  - hangup:\n"
    result, _, _, _ = await run(script(steps), speaker(), synthesizer)
    assert result.ok
    assert synthesizer.requests == ["Yes.", "On Tuesday.", "hi"]
    first, _, third = result.lines
    expected_ms = speech_ms("Yes.") + speech_ms("On Tuesday.")
    assert first.end_ms - first.start_ms == third.end_ms - third.start_ms == expected_ms


class BrokenSynthesizer(ToneSynthesizer):
    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        raise RuntimeError(f"no voice for {text!r}")
        yield b""  # an async generator all the same


@pytest.mark.anyio
async def test_a_synthesiser_error_is_raised_as_itself() -> None:
    clock = VirtualClock()
    async with in_process_call(speaker()(clock), clock=clock) as call:
        caller = ScriptedCaller(call.sim, script("  - say: hi\n"), BrokenSynthesizer(), clock)
        with pytest.raises(RuntimeError, match="no voice for 'hi'"):
            await caller.run()


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_caller_script_loads(path: Path) -> None:
    script = load_caller_script(path)
    assert script.steps and script.name == path.stem


@pytest.mark.anyio
async def test_the_example_with_the_scripted_synthesizer() -> None:
    synthesizer = ScriptedSynthesizer()
    result, ivr, _, _ = await run(load_caller_script(EXAMPLE), synthesizer=synthesizer)
    assert result.ok, result.failure
    # Its audio is all voice: the line is as long as the synthesiser says, voiced to the end.
    assert [(line.end_ms - line.start_ms, line.voiced_end_ms) for line in result.lines] == [
        (synthesizer.duration_ms(line.text), line.end_ms) for line in result.lines
    ]
    assert synthesizer.requests == ["yes please", "agent please"]
    assert sum(v for _, v in ivr.frames) * 20 == sum(
        synthesizer.duration_ms(line.text) for line in result.lines
    )
