"""The scripted provider pair, the registry and split_sentences (all fast, no models)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fsm_voice.audio.frames import silence
from fsm_voice.audio.mulaw import FRAME_BYTES, decode, encode
from fsm_voice.providers import create_recognizer, create_synthesizer, split_sentences
from fsm_voice.providers.base import Grammar, Transcript
from fsm_voice.providers.scripted import ScriptedRecognizer, ScriptedSynthesizer

pytestmark = pytest.mark.anyio


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def on_speech_started(self, t_ms: int) -> None:
        self.events.append(("speech_started", t_ms))

    def on_recognizing(self, text: str) -> None:
        self.events.append(("recognizing", text))

    def on_committed(self, transcript: Transcript) -> None:
        self.events.append(("committed", transcript))

    def on_error(self, reason: str, fatal: bool) -> None:
        self.events.append(("error", reason, fatal))

    def on_state(self, state: str, detail: str) -> None:
        self.events.append(("state", state))


def tone(ms: int, amplitude: int = 6000) -> bytes:
    t = np.arange(ms * 8) / 8000
    return encode(np.rint(amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.int16))


def feed(recognizer: ScriptedRecognizer, audio: bytes, t_ms: int) -> int:
    for i in range(0, len(audio), FRAME_BYTES):
        recognizer.feed(audio[i : i + FRAME_BYTES], t_ms)
        t_ms += 20
    return t_ms


async def test_recognizer_endpoints_on_energy_and_commits_the_script_in_order() -> None:
    recognizer = ScriptedRecognizer(["yes", "tuesday"])
    listener = Listener()
    await recognizer.start(listener)
    t = feed(recognizer, silence(200), 0)
    t = feed(recognizer, tone(400), t)  # speech 200..600
    t = feed(recognizer, silence(280), t)  # not yet 300 ms of silence
    assert listener.events[-1] == ("speech_started", 200)
    t = feed(recognizer, silence(20), t)  # now it is
    t = feed(recognizer, tone(100), t)
    t = feed(recognizer, silence(400), t)
    t = feed(recognizer, tone(100), t)
    feed(recognizer, silence(400), t)
    await recognizer.stop()
    assert listener.events == [
        ("state", "connecting"),
        ("state", "streaming"),
        ("speech_started", 200),
        ("committed", Transcript("yes", 1.0, 200, 600)),
        ("speech_started", 900),
        ("committed", Transcript("tuesday", 1.0, 900, 1000)),
        ("speech_started", 1400),
        ("committed", Transcript("", None, 1400, 1500)),  # the script ran out: noise
        ("state", "closed"),
    ]


@pytest.mark.parametrize(
    "script",
    [
        {1: "second"},
        lambda n: "second" if n == 1 else "",
    ],
)
async def test_script_can_be_a_mapping_or_a_function(script: object) -> None:
    recognizer = ScriptedRecognizer(script)  # type: ignore[arg-type]
    listener = Listener()
    await recognizer.start(listener)
    t = 0
    for _ in range(2):
        t = feed(recognizer, tone(200), t)
        t = feed(recognizer, silence(400), t)
    texts = [e[1].text for e in listener.events if e[0] == "committed"]  # type: ignore[attr-defined]
    assert texts == ["", "second"]


async def test_recognizer_records_grammars_and_drops_speech_on_stop() -> None:
    recognizer = ScriptedRecognizer(["never"])
    listener = Listener()
    await recognizer.start(listener)
    recognizer.set_grammar(Grammar(("yes", "no")))
    recognizer.set_speaking(True)
    feed(recognizer, tone(200), 0)
    await recognizer.stop()
    feed(recognizer, silence(600), 200)  # after stop: ignored
    assert recognizer.grammars == [Grammar(("yes", "no"))]
    assert recognizer.speaking
    assert [e[0] for e in listener.events].count("committed") == 0


async def test_synthesizer_makes_audio_of_a_speech_like_length() -> None:
    states: list[str] = []
    synth = ScriptedSynthesizer(on_state=lambda state, _: states.append(state))
    await synth.start()
    frames = [frame async for frame in synth.synthesize("Your appointment is on Tuesday.")]
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert len(frames) * 20 == synth.duration_ms("Your appointment is on Tuesday.") == 2020
    assert len(b"".join(frames)) == 2020 * 8
    assert np.abs(decode(frames[0]).astype(np.int32)).max() > 4000  # not silence
    short = [f async for f in synth.synthesize("Hi.")]
    assert len(short) == 20  # the 400 ms floor
    await synth.stop()
    assert states == ["connecting", "streaming", "closed"]


async def test_closing_the_synthesis_early_is_observable() -> None:
    synth = ScriptedSynthesizer()
    await synth.start()
    stream = synth.synthesize("A long prompt that the caller interrupts halfway through.")
    received = 0
    async for _ in stream:  # type: ignore[attr-defined]
        received += 1
        if received == 5:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert synth.cancelled == ["A long prompt that the caller interrupts halfway through."]
    assert synth.frames_sent == 5


async def test_registry_creates_scripted_providers_without_importing_offline_ones() -> None:
    recognizer = create_recognizer("scripted", script=["yes"])
    synthesizer = create_synthesizer("scripted", ms_per_char=10)
    assert isinstance(recognizer, ScriptedRecognizer)
    assert isinstance(synthesizer, ScriptedSynthesizer)
    assert "piper" not in sys.modules or "fsm_voice.providers.offline_tts" in sys.modules
    with pytest.raises(ValueError, match="unknown STT provider 'nope'"):
        create_recognizer("nope")
    with pytest.raises(ValueError, match="known: azure, elevenlabs, offline, scripted"):
        create_synthesizer("nope")


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("", []),
        ("Hello.", ["Hello."]),
        ("Hello. How are you? Fine!", ["Hello.", "How are you?", "Fine!"]),
        ("It costs 3.50 dollars. Ok", ["It costs 3.50 dollars.", "Ok"]),
        ("Wait... what?", ["Wait...", "what?"]),
        ("  Leading and trailing.  ", ["Leading and trailing."]),
        ("No punctuation at all", ["No punctuation at all"]),
        ("Really?! Yes.", ["Really?!", "Yes."]),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert list(split_sentences(text)) == sentences
