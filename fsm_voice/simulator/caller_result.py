"""What a scripted caller reports: the result of `ScriptedCaller.run()` and its steps.

`CallerResult` holds what the phone did and heard, with times in ms since the caller's
`t0_ms`: the lines it said (`SpokenLine`), the agent audio its steps waited for
(`HeardPrompt`), the keys it pressed (`KeyPress`), and how the script ended.
`StepEvent` is passed to `on_step` as each step starts and ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fsm_voice.simulator.caller_script import Step


@dataclass(frozen=True, slots=True)
class SpokenLine:
    """A line the caller said: its frames went out from `start_ms` until `end_ms`
    (exclusive); `voiced_end_ms` leaves out the synthesiser's trailing silence."""

    step: int
    text: str
    start_ms: int
    end_ms: int
    voiced_end_ms: int
    over_agent_audio: bool  # agent audio was playing when the caller started (barge-in)


@dataclass(frozen=True, slots=True)
class HeardPrompt:
    """Agent audio a step waited for: when it started playing and when it went idle."""

    step: int
    first_audio_ms: int
    idle_ms: int | None  # None: the call ended while it was still playing
    played_bytes: int


@dataclass(frozen=True, slots=True)
class KeyPress:
    step: int
    digit: str
    t_ms: int


@dataclass
class CallerResult:
    script: str
    steps_total: int
    steps_done: int = 0
    lines: list[SpokenLine] = field(default_factory=list)
    prompts: list[HeardPrompt] = field(default_factory=list)
    keys: list[KeyPress] = field(default_factory=list)
    # Every time agent audio started playing after quiet or a clear, whichever step ran.
    agent_onsets_ms: list[int] = field(default_factory=list)
    hung_up_ms: int | None = None  # the caller hung up (sent `stop`) at this time
    close_code: int | None = None  # set when the call was over before the script was
    failure: str | None = None  # why the script could not finish ("file:line: ...")

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def digits(self) -> str:
        return "".join(key.digit for key in self.keys)

    def turn_latencies_ms(self) -> list[int]:
        """For each line: its voiced end → the first agent audio that started after it."""
        latencies = []
        for line in self.lines:
            later = [t for t in self.agent_onsets_ms if t >= line.voiced_end_ms]
            if later:
                latencies.append(min(later) - line.voiced_end_ms)
        return latencies


@dataclass(frozen=True, slots=True)
class StepEvent:
    """Passed to `on_step` as each step starts and ends (e.g. to print the call live)."""

    index: int
    step: Step
    phase: Literal["started", "done", "failed"]
    t_ms: int
    detail: str = ""
