"""Every fixture in replays/ (recorded by `make corpus`) replays against today's machines.

A change to a machine, the runtime or a provider adapter that would make any
recorded call decide differently fails here, naming the first differing event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])
async def test_fixture_replays_in_recorded_mode(fixture: Path) -> None:
    result = await replay_call(fixture)
    assert result.divergence is None, result.divergence.describe()
    assert result.compared > 20
