"""The echo (loopback) agent: plays back what it hears, with a mark after each chunk.

Used by the call-engine tests and `fsm-voice bench calls`: every caller frame goes
straight back out through the ordered outbound queue, and every `mark_every` frames a
mark follows, so the platform confirms playback as the call goes.
"""

from __future__ import annotations

from fsm_voice.call.handle import CallHandle
from fsm_voice.call.runtime import Agent


def echo_agent(mark_every: int = 10) -> Agent:
    async def echo(call: CallHandle) -> None:
        frames = 0

        def on_frame(frame: bytes) -> None:
            nonlocal frames
            call.send_audio_nowait(frame)
            frames += 1
            if mark_every and frames % mark_every == 0:
                call.mark(f"echo-{frames}")  # not awaited: the echo never stalls on marks

        call.on_caller_audio(on_frame)
        await call.wait_ended()

    return echo
