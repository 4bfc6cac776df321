"""`fsm-voice audio CALL_ID`: a call's audio as it was heard on the line, as a WAV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.playback import call_wav


def audio(dbs: Sequence[str], call_id: str, track: str, stereo: bool, out: Path) -> int:
    with LogSet(dbs) as logs:
        call_id = logs.resolve(call_id)
        data = call_wav(logs, call_id, track, stereo)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    layout = "stereo (caller left, agent right)" if stereo and track == "mixed" else track
    print(f"{out}: {call_id} {layout}, {len(data):,} bytes")
    return 0
