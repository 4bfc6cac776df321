"""Two recognisers on one stream: the native TeeRecognizer and voice_runtime's SttTee."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from compat_harness import tone

from fsm_voice.audio.frames import silence, split_frames
from fsm_voice.providers.base import Grammar, SttListener, Transcript
from fsm_voice.providers.scripted import ScriptedRecognizer
from fsm_voice.providers.tee import TeeRecognizer
from fsm_voice.stt import ScriptedStt
from fsm_voice.stt_tee import SttTee

pytestmark = pytest.mark.anyio

Events = list[tuple[str, dict[str, Any]]]


class RecordingRecognizer:
    """A provider at the outermost seam: keeps every frame; can stall or fail."""

    def __init__(self, name: str, *, fail_feed_at: int | None = None) -> None:
        self.name = name
        self.frames: list[tuple[bytes, int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_feed_at = fail_feed_at
        self.stopped = False

    async def start(self, listener: SttListener) -> None:
        await self.release.wait()  # a slow connect: the tee must queue, then drop

    def feed(self, mulaw: bytes, t_ms: int) -> None:
        if self.fail_feed_at is not None and len(self.frames) == self.fail_feed_at:
            raise ConnectionResetError("secondary socket reset")
        self.frames.append((mulaw, t_ms))

    def set_grammar(self, grammar: Grammar | None) -> None:
        pass

    def set_speaking(self, speaking: bool) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


class Committed:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors: list[str] = []

    def on_speech_started(self, t_ms: int) -> None:
        pass

    def on_recognizing(self, text: str) -> None:
        pass

    def on_committed(self, transcript: Transcript) -> None:
        self.texts.append(transcript.text)

    def on_error(self, reason: str, fatal: bool) -> None:
        self.errors.append(reason)

    def on_state(self, state: str, detail: str) -> None:
        pass


def utterance() -> list[bytes]:
    return split_frames(tone(400) + silence(400))


async def settle(tee: TeeRecognizer) -> None:
    while tee._queue:
        await anyio.lowlevel.checkpoint()


async def test_both_recognizers_see_identical_frames() -> None:
    primary, secondary = RecordingRecognizer("a"), RecordingRecognizer("b")
    tee = TeeRecognizer(primary, secondary)
    await tee.start(Committed())
    for i, frame in enumerate(utterance()):
        tee.feed(frame, i * 20)
    await settle(tee)
    await tee.stop()
    assert primary.frames == secondary.frames and len(primary.frames) == 40
    assert (tee.dropped, secondary.stopped) == (0, True)


async def test_a_slow_secondary_loses_frames_counted_never_the_primarys() -> None:
    events: Events = []
    primary, secondary = RecordingRecognizer("a"), RecordingRecognizer("b")
    secondary.release.clear()
    tee = TeeRecognizer(
        primary, secondary, record=lambda k, d: events.append((k, d)), max_queued_frames=25
    )
    await tee.start(Committed())
    frames = utterance()
    for i, frame in enumerate(frames):
        tee.feed(frame, i * 20)
    secondary.release.set()
    await settle(tee)
    await tee.stop()
    assert len(primary.frames) == 40
    assert secondary.frames == primary.frames[:25]
    assert tee.dropped == 15
    assert events[-1] == ("secondary_frames_summary", {"provider": "b", "fed": 25, "dropped": 15})


async def test_secondary_failures_are_events_and_the_primary_carries_on() -> None:
    events: Events = []
    listener = Committed()
    primary = ScriptedRecognizer(["book it"], endpoint_ms=200)
    secondary = RecordingRecognizer("flaky", fail_feed_at=3)
    tee = TeeRecognizer(primary, secondary, record=lambda k, d: events.append((k, d)))
    await tee.start(listener)
    for i, frame in enumerate(utterance()):
        tee.feed(frame, i * 20)
        await anyio.lowlevel.checkpoint()
    await tee.stop()
    assert listener.texts == ["book it"] and listener.errors == []
    failed = [d for k, d in events if k == "secondary_failed"]
    assert failed == [
        {
            "provider": "flaky",
            "stage": "feed",
            "error": "ConnectionResetError: secondary socket reset",
        }
    ]
    assert len(secondary.frames) == 3


async def test_secondary_results_are_logged_for_comparison() -> None:
    events: Events = []
    listener = Committed()
    tee = TeeRecognizer(
        ScriptedRecognizer(["primary says"], endpoint_ms=200),
        ScriptedRecognizer(["secondary says"], endpoint_ms=200, name="other"),
        record=lambda k, d: events.append((k, d)),
    )
    await tee.start(listener)
    for i, frame in enumerate(utterance()):
        tee.feed(frame, i * 20)
        await anyio.lowlevel.checkpoint()
    await settle(tee)
    await tee.stop()
    assert listener.texts == ["primary says"]
    assert tee.report.committed == ["secondary says"]
    assert ("secondary_transcript_committed", {"provider": "other", "text": "secondary says"}) in (
        events
    )


async def test_stt_tee_proxies_callbacks_to_the_primary_and_copies_frames() -> None:
    events: Events = []
    primary = ScriptedStt(script=["yes"], endpoint_ms=200)
    secondary = ScriptedStt(script=["yeah"], endpoint_ms=200)
    tee = SttTee(primary, secondary, event_sink=lambda k, d: events.append((k, d)))
    heard: list[str] = []
    tee.on_committed = heard.append
    assert primary.on_committed == heard.append
    inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
    await tee.start(inbound)
    for frame in utterance():
        inbound.put_nowait(frame)
    inbound.put_nowait(None)
    while not heard or not tee.report.committed:
        await anyio.lowlevel.checkpoint()
    await tee.stop()
    assert heard == ["yes"]
    assert tee.report.committed == ["yeah"]
    assert ("secondary_transcript_committed", {"provider": "ScriptedStt", "text": "yeah"}) in events
    assert events[-1] == ("secondary_frames_summary", {"provider": "ScriptedStt", "dropped": 0})


async def test_stt_tee_counts_frames_a_full_secondary_queue_dropped() -> None:
    class Stalled(ScriptedStt):
        async def start(self, inbound_queue: Any) -> None:
            await asyncio.Event().wait()  # never reads its queue

    primary, secondary = ScriptedStt(), Stalled()
    tee = SttTee(primary, secondary, max_queued_frames=10)
    inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
    await tee.start(inbound)
    for frame in utterance():
        inbound.put_nowait(frame)
    while not inbound.empty():
        await anyio.lowlevel.checkpoint()
    await tee.stop()
    assert tee.dropped == 30
    assert not tee.report.failed


async def test_stt_tee_primary_failure_propagates_and_stops_the_secondary() -> None:
    class Broken(ScriptedStt):
        async def start(self, inbound_queue: Any) -> None:
            raise ConnectionRefusedError("primary down")

    secondary = ScriptedStt()
    tee = SttTee(Broken(), secondary)
    with pytest.raises(ConnectionRefusedError):
        await tee.start(asyncio.Queue())
    assert secondary.recognizer.machine.state == "closed"  # type: ignore[attr-defined]
