"""The offline pair for real: piper speaks, the telephone path (8 kHz μ-law, 20 ms
frames) carries it, pocketsphinx hears it. One voice and one decoder pool per module."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("pocketsphinx")
pytest.importorskip("piper")

from fsm_voice.audio.frames import silence
from fsm_voice.audio.mulaw import FRAME_BYTES, decode
from fsm_voice.clock import VirtualClock
from fsm_voice.providers import create_recognizer, create_synthesizer
from fsm_voice.providers.base import Grammar, Transcript
from fsm_voice.providers.offline_stt import (
    DecodeRequest,
    DecoderPool,
    PocketsphinxRecognizer,
    build_jsgf,
    normalize_phrase,
    vocabulary,
)
from fsm_voice.providers.offline_tts import PiperSynthesizer, split_clauses

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APPOINTMENT = ("yes", "no", "reschedule", "cancel", "monday", "tuesday", "nine am", "two pm")


class Listener:
    def __init__(self) -> None:
        self.started: list[int] = []
        self.committed: list[Transcript] = []
        self.errors: list[tuple[str, bool]] = []
        self.states: list[str] = []

    def on_speech_started(self, t_ms: int) -> None:
        self.started.append(t_ms)

    def on_recognizing(self, text: str) -> None:
        pass

    def on_committed(self, transcript: Transcript) -> None:
        self.committed.append(transcript)

    def on_error(self, reason: str, fatal: bool) -> None:
        self.errors.append((reason, fatal))

    def on_state(self, state: str, detail: str) -> None:
        self.states.append(state)


@pytest.fixture(scope="module")
def voice() -> PiperSynthesizer:
    synth = PiperSynthesizer(deterministic=True)
    synth.load()
    return synth


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    decoders = DecoderPool(2)
    yield decoders
    decoders.shutdown()


def say(voice: PiperSynthesizer, text: str) -> bytes:
    """What the caller's phone sends: piper → 8 kHz μ-law."""
    return b"".join(voice.synthesize_piece(piece) for piece in voice.pieces(text))


def speak(recognizer: PocketsphinxRecognizer, utterances: list[bytes]) -> None:
    t_ms = 0
    audio = silence(400) + b"".join(u + silence(800) for u in utterances)
    for i in range(0, len(audio), FRAME_BYTES):
        recognizer.feed(audio[i : i + FRAME_BYTES], t_ms)
        t_ms += 20


async def hear(
    recognizer: PocketsphinxRecognizer, listener: Listener, utterances: list[bytes]
) -> list[Transcript]:
    """Feed each utterance in 20 ms frames with silence around it; wait for transcripts."""
    speak(recognizer, utterances)
    for _ in range(600):
        if len(listener.committed) >= len(utterances):
            break
        await asyncio.sleep(0.05)
    return listener.committed


async def test_grammar_phrases_through_the_telephone_path(
    voice: PiperSynthesizer, pool: DecoderPool
) -> None:
    recognizer = PocketsphinxRecognizer(pool=pool)
    listener = Listener()
    await recognizer.start(listener)
    assert listener.states == ["connecting", "streaming"]
    recognizer.set_grammar(Grammar(APPOINTMENT, name="appointment"))
    heard = await hear(recognizer, listener, [say(voice, p) for p in APPOINTMENT])
    await recognizer.stop()
    assert [t.text for t in heard] == list(APPOINTMENT)
    assert all(t.confidence is not None and t.confidence >= 0.8 for t in heard)
    # Times are call times from the frames: ordered, each utterance after its onset.
    assert len(listener.started) == len(APPOINTMENT)
    for onset, transcript in zip(listener.started, heard, strict=True):
        assert onset == transcript.start_ms < transcript.end_ms
    assert listener.started == sorted(listener.started)
    assert listener.states[-1] == "closed" and listener.errors == []


async def test_free_form_fallback_and_strict_nomatch(
    voice: PiperSynthesizer, pool: DecoderPool
) -> None:
    outside = say(voice, "Can I speak to someone about my bill")
    results: list[Transcript] = []
    for free_form in (True, False):
        recognizer = PocketsphinxRecognizer(pool=pool)
        listener = Listener()
        await recognizer.start(listener)
        recognizer.set_grammar(Grammar(APPOINTMENT, free_form=free_form))
        results += await hear(recognizer, listener, [outside])
        await recognizer.stop()
    free, strict = results
    assert "speak to someone" in free.text and "bill" in free.text
    assert strict.text == "" and strict.confidence is None  # a nomatch, not a wrong phrase
    # Without a grammar the stock language model transcribes everything.
    recognizer = PocketsphinxRecognizer(pool=pool)
    listener = Listener()
    await recognizer.start(listener)
    recognizer.set_grammar(None)
    (lm,) = await hear(recognizer, listener, [say(voice, "reschedule")])
    await recognizer.stop()
    assert lm.text == "reschedule"


async def test_same_audio_same_transcript_in_any_order(
    voice: PiperSynthesizer, pool: DecoderPool
) -> None:
    jsgf, _ = build_jsgf(APPOINTMENT, vocabulary())
    a = np.frombuffer(decode(say(voice, "How much does it cost")), np.int16).tobytes()
    b = np.frombuffer(decode(say(voice, "Tuesday")), np.int16).tobytes()
    requests = [DecodeRequest(x, jsgf) for x in (a, b, a, b, a, b)]
    results = [await asyncio.wrap_future(pool.submit(r)) for r in requests]
    texts = {(r.text, r.confidence, r.source, r.alternatives) for r in results[0::2]}
    assert len(texts) == 1
    assert len({(r.text, r.confidence, r.source) for r in results[1::2]}) == 1
    assert results[1].text == "tuesday"


async def test_a_dead_worker_is_an_error_then_the_pool_comes_back(voice: PiperSynthesizer) -> None:
    clock = VirtualClock()
    own_pool = DecoderPool(1)
    recognizer = PocketsphinxRecognizer(pool=own_pool, clock=clock)
    listener = Listener()
    try:
        await recognizer.start(listener)
        executor = own_pool._ensure()
        pid = await asyncio.wrap_future(executor.submit(os.getpid))
        os.kill(pid, signal.SIGKILL)
        recognizer.set_grammar(Grammar(APPOINTMENT))
        speak(recognizer, [say(voice, "yes")])
        for _ in range(200):  # the lost utterance is reported, not committed
            if listener.errors:
                break
            await asyncio.sleep(0.05)
        assert listener.errors and listener.errors[0][1] is False
        assert recognizer.machine.state == "reconnecting"
        await clock.advance(1000)  # the backoff, on the virtual clock
        for _ in range(400):
            if recognizer.machine.is_streaming:
                break
            await asyncio.sleep(0.05)
        listener.committed.clear()
        assert [t.text for t in await hear(recognizer, listener, [say(voice, "no")])] == ["no"]
        assert listener.states == [
            "connecting",
            "streaming",
            "reconnecting",
            "connecting",
            "streaming",
        ]
    finally:
        await recognizer.stop()
        own_pool.shutdown()


async def test_synthesis_is_deterministic_framed_and_streams(voice: PiperSynthesizer) -> None:
    states: list[str] = []
    synth = create_synthesizer(
        "offline", deterministic=True, on_state=lambda s, _: states.append(s)
    )
    assert isinstance(synth, PiperSynthesizer)
    await synth.start()
    text = "Thanks for calling. Your appointment is on Tuesday at nine am."
    first = [f async for f in synth.synthesize(text)]
    second = [f async for f in synth.synthesize(text)]
    await synth.stop()
    assert first == second
    assert all(len(f) == FRAME_BYTES for f in first)
    seconds = len(first) * 0.02
    assert 2.5 < seconds < 6.0  # about how long a person takes to say it
    loud = np.abs(decode(b"".join(first)).astype(np.int32))
    assert loud.max() > 8000
    assert states == ["connecting", "streaming", "closed"]


async def test_closing_the_stream_stops_the_synthesis(voice: PiperSynthesizer) -> None:
    synth = PiperSynthesizer(deterministic=True)
    await synth.start()
    done: list[str] = []
    original = synth.synthesize_piece

    def counting(piece: str) -> bytes:
        done.append(piece)
        return original(piece)

    synth.synthesize_piece = counting  # type: ignore[method-assign]
    text = "One sentence here. Another one there. A third one now. And a fourth one too."
    assert len(synth.pieces(text)) == 4
    stream = synth.synthesize(text)
    async for _ in stream:
        break  # barge-in on the first frame
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    await asyncio.sleep(0.5)
    assert len(done) <= 2  # the first piece, and at most the one prefetched
    await synth.stop()


def test_phrases_normalise_to_dictionary_words() -> None:
    assert normalize_phrase("Nine A.M.!") == ["nine", "am"]
    assert normalize_phrase("9am") == ["nine", "am"]
    assert normalize_phrase("2 p.m.") == ["two", "pm"]
    assert normalize_phrase("I don't know") == ["i", "don't", "know"]
    jsgf, oov = build_jsgf(["Yes", "yes!", "zorblax please", "Two PM"], vocabulary())
    assert oov == ["zorblax"]
    assert jsgf is not None and "( yes ) | ( two pm );" in jsgf
    assert build_jsgf(["zorblax"], vocabulary()) == (None, ["zorblax"])


def test_long_sentences_split_at_clauses() -> None:
    assert split_clauses("Hello, this is Joe from the clinic, calling about your visit.") == [
        "Hello,",
        "this is Joe from the clinic,",
        "calling about your visit.",
    ]
    assert split_clauses("Would you like to confirm, reschedule, or cancel it?") == [
        "Would you like to confirm,",
        "reschedule, or cancel it?",
    ]
    assert split_clauses("Yes, please, thank you.") == ["Yes, please, thank you."]


def test_registry_knows_the_offline_pair() -> None:
    assert isinstance(create_recognizer("offline", workers=2), PocketsphinxRecognizer)
