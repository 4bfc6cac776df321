"""voice_runtime's scripted providers (`fsm_voice.mock`) through their public API.

`MockStt` commits injected text on the loop it runs on and reads (drops) the caller's
audio; `MockTts` records, relays and waits for the call's mark. Their real calls are
in tests/test_compat_mock_call.py.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

from fsm_voice.compat import mock_bridge, mock_stt, mock_tts
from fsm_voice.mock import MockStt, MockTts
from fsm_voice.session import VoiceSession
from fsm_voice.stt import create_stt, get_stt_class
from fsm_voice.tts import create_tts


def test_the_seed_import_paths_are_the_bodies() -> None:
    import fsm_voice.mock.stt
    import fsm_voice.mock.tts
    import fsm_voice.transports.mock_bridge

    assert fsm_voice.mock.stt is mock_stt
    assert fsm_voice.mock.tts is mock_tts
    assert fsm_voice.transports.mock_bridge is mock_bridge
    assert fsm_voice.mock.stt.MockStt is MockStt


def test_the_factories_build_the_mocks_with_their_options() -> None:
    stt = create_stt(provider="mock", language_code="fi")
    assert type(stt) is MockStt
    assert stt.options == {"language_code": "fi"}
    assert get_stt_class(provider="mock") is MockStt
    said: list[str] = []
    tts = create_tts(provider="mock", voice_id="v1", on_spoken=said.append)
    assert type(tts) is MockTts
    assert tts.options == {"voice_id": "v1"}
    tts.speak("relayed", VoiceSession())
    assert said == ["relayed"]


class Committed:
    """on_committed that records each text, the thread it ran on, and wakes a waiter."""

    def __init__(self, want: int) -> None:
        self.texts: list[str] = []
        self.threads: set[int] = set()
        self.want = want
        self.done = asyncio.Event()

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.threads.add(threading.get_ident())
        if len(self.texts) >= self.want:
            self.done.set()


@pytest.mark.anyio
async def test_injected_text_is_committed_on_the_loop_in_order_from_any_thread() -> None:
    stt = MockStt()
    events: list[tuple[str, dict[str, Any]]] = []
    stt.event_sink = lambda kind, data: events.append((kind, data))
    committed = stt.on_committed = Committed(want=3)
    stt.inject("before start")  # waits for start()
    await stt.start(asyncio.Queue())
    stt.inject("same thread")
    worker = threading.Thread(target=stt.inject, args=("other thread",))
    worker.start()
    worker.join()
    with anyio.fail_after(5):
        await committed.done.wait()
    await stt.stop()
    assert committed.texts == ["before start", "same thread", "other thread"]
    assert committed.threads == {threading.get_ident()}  # the loop's thread, never the injector's
    assert stt.committed == committed.texts
    assert [d["text"] for k, d in events if k == "transcript_committed"] == committed.texts


@pytest.mark.anyio
async def test_the_caller_audio_is_read_until_end_of_input() -> None:
    stt = MockStt()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(2)
    await stt.start(queue)
    with anyio.fail_after(5):  # 50 frames through a 2-frame queue: only if someone reads
        for _ in range(50):
            await queue.put(b"\xff" * 160)
        await queue.put(None)
        await queue.put(b"after the end")  # nobody reads past end-of-input
        await queue.put(b"x")
    assert queue.full()
    await stt.stop()


@pytest.mark.anyio
async def test_a_failing_callback_is_an_event_and_the_next_text_still_arrives() -> None:
    stt = MockStt()
    events: list[tuple[str, dict[str, Any]]] = []
    stt.event_sink = lambda kind, data: events.append((kind, data))
    committed = Committed(want=2)

    def on_committed(text: str) -> None:
        committed(text)
        if text == "first":
            raise ValueError("consumer bug")

    stt.on_committed = on_committed
    await stt.start(asyncio.Queue())
    stt.inject("first")
    stt.inject("second")
    with anyio.fail_after(5):
        await committed.done.wait()
    await stt.stop()
    assert committed.texts == ["first", "second"]
    failed = [d for k, d in events if k == "callback_failed"]
    assert failed == [{"callback": "on_committed", "error": "ValueError: consumer bug"}]


def test_text_injected_while_stopped_is_delivered_by_the_next_start_on_another_loop() -> None:
    stt = MockStt()
    heard: list[str] = []

    async def one_run(text: str | None, want: int) -> None:
        committed = Committed(want)
        stt.on_committed = committed
        await stt.start(asyncio.Queue())
        if text is not None:
            stt.inject(text)
        with anyio.fail_after(5):
            await committed.done.wait()
        await stt.stop()
        heard.extend(committed.texts)

    asyncio.run(one_run("first call", 1))
    stt.inject("between calls")
    asyncio.run(one_run(None, 1))  # a new loop: what waited arrives there
    assert heard == ["first call", "between calls"]


def test_set_speaking_is_accepted_and_changes_nothing() -> None:
    stt = MockStt()
    stt.set_speaking(True)
    stt.set_speaking(False)
    assert stt.committed == []


# --- MockTts outside a call (a call echoes its mark: tests/test_compat_mock_call.py) ---
def test_speak_without_a_call_records_relays_and_returns_at_once() -> None:
    relayed: list[str] = []
    tts = MockTts(on_spoken=relayed.append)
    session = VoiceSession()
    assert tts.speak("one", session) == {"last_spoken": "one", "interrupted": False}
    tts.speak("two", session)
    assert tts.spoken == ["one", "two"]
    assert relayed == ["one", "two"]


def test_a_failing_relay_does_not_fail_the_turn(caplog: pytest.LogCaptureFixture) -> None:
    def broken(text: str) -> None:
        raise RuntimeError("peer down")

    tts = MockTts(on_spoken=broken)
    assert tts.speak("still spoken", VoiceSession())["last_spoken"] == "still spoken"
    assert tts.spoken == ["still spoken"]
    assert "on_spoken failed" in caplog.text


def test_a_set_stop_event_reports_the_turn_interrupted() -> None:
    tts = MockTts()
    stop = threading.Event()
    stop.set()
    result = tts.speak("cut", VoiceSession(), stop_event=stop)
    assert result == {"last_spoken": "cut", "interrupted": True}


def test_after_the_call_ended_nothing_is_spoken_or_relayed() -> None:
    relayed: list[str] = []
    tts = MockTts(on_spoken=relayed.append)
    session = VoiceSession()
    session.signal_disconnected()
    assert tts.speak("too late", session) == {"last_spoken": "", "call_disconnected": True}
    assert tts.spoken == []
    assert relayed == []
