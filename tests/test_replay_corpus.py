"""Every fixture in replays/ (recorded by `make corpus`) replays against today's machines,
in both modes: recorded (transcripts from the log) and offline (pocketsphinx hears
the recorded caller audio again).

A change to a machine, the runtime or a provider adapter that would make any
recorded call decide differently fails here, naming the first differing event.
Offline mode decodes in this process with one decoder shared by every test (the
model loads once, ~1 s); the whole module takes a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fsm_voice.eventlog.records import EventRecord
from fsm_voice.replay import MODES, Mode, load_fixture
from fsm_voice.replay.offline import inline_decoder
from fsm_voice.replay.replayer import replay_call

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted(p for p in (ROOT / "replays").iterdir() if (p / "events.jsonl").exists())
pytestmark = pytest.mark.anyio


def test_the_corpus_has_every_path_we_promise() -> None:
    names = {p.name for p in FIXTURES}
    assert len(names) >= 10
    for expected in (
        "appointment-happy",
        "appointment-bargein",
        "appointment-silent",
        "appointment-hangup",
        "survey-nomatch",
        "ivr-balance",
    ):
        assert expected in names


def _transcripts(events: tuple[EventRecord, ...]) -> list[str]:
    return [str(e.data["text"]) for e in events if e.kind == "transcript_committed"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])
async def test_fixture_replays(fixture: Path, mode: Mode) -> None:
    result = await replay_call(fixture, mode=mode)
    assert result.divergence is None, result.divergence.describe()
    assert result.compared > 20 and result.mode == mode
    # Both modes hear the same words; offline mode made them from the audio.
    assert _transcripts(result.events) == _transcripts(load_fixture(fixture).events)


async def test_offline_mode_decodes_every_utterance_from_the_audio() -> None:
    decoder = inline_decoder()
    recording = load_fixture(ROOT / "replays" / "survey-nomatch")
    before = decoder.decoded
    result = await replay_call(recording, mode="offline")
    heard = _transcripts(result.events)
    assert decoder.decoded - before == len(heard) == 4
    assert heard == ["", "", "yes", "five"]  # two nomatches, then the answers
