"""Replay recorded calls on a virtual clock and compare what the machines decided.

See README "Replay". `assert_replays(path_or_log, call_id=None, machine=None)` is the
pytest one-liner; `replay`/`replay_call` return a `ReplayResult`. `mode="offline"`
re-transcribes the recorded caller audio with pocketsphinx (see `replay.offline`).
"""

from fsm_voice.replay.compare import ReplayDivergence
from fsm_voice.replay.recording import Recording, ReplayInputError, load_fixture, load_from_log
from fsm_voice.replay.replayer import (
    MODES,
    Mode,
    ReplayResult,
    assert_replays,
    replay,
    replay_call,
    resolve_machine,
)

__all__ = [
    "MODES",
    "Mode",
    "Recording",
    "ReplayDivergence",
    "ReplayInputError",
    "ReplayResult",
    "assert_replays",
    "load_fixture",
    "load_from_log",
    "replay",
    "replay_call",
    "resolve_machine",
]
