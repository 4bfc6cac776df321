"""One line per call: what `fsm-voice calls` shows.

Counted in SQL, one GROUP BY over the few kinds that matter (the `kind` index finds
them), so listing ten thousand calls does not read a million events into Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from fsm_voice.eventlog.multi import LogSet

__all__ = ["CallSummary", "call_summaries"]

_SQL: Final = """
WITH per_call AS (
  SELECT call_id,
    sum(kind = 'transcript_committed') AS turns,
    sum(kind = 'counter_changed' AND json_extract(data, '$.counter') = 'noinput') AS noinput,
    sum(kind = 'counter_changed' AND json_extract(data, '$.counter') = 'nomatch') AS nomatch,
    sum(kind = 'prompt_stopped') AS bargeins,
    max(CASE WHEN kind = 'conversation_ended' THEN json_extract(data, '$.state') END) AS state,
    max(CASE WHEN kind = 'conversation_ended' THEN json_extract(data, '$.reason') END) AS reason
  FROM events
  WHERE kind IN ('transcript_committed', 'counter_changed', 'prompt_stopped',
                 'conversation_ended')
  GROUP BY call_id
)
SELECT c.call_id, c.started_at, c.started_wall_ms, c.duration_ms, c.machine, p.state,
  c.outcome, coalesce(p.reason, c.end_reason), coalesce(p.turns, 0),
  coalesce(p.noinput, 0), coalesce(p.nomatch, 0), coalesce(p.bargeins, 0)
FROM calls AS c LEFT JOIN per_call AS p USING (call_id)
"""


@dataclass(frozen=True, slots=True)
class CallSummary:
    call_id: str
    started_at: str
    duration_ms: int | None
    machine: str | None
    final_state: str | None  # where the conversation ended (conversation_ended.state)
    outcome: str | None  # the calls row: completed | error
    end_reason: str | None  # the conversation's reason, else the call's end_reason
    turns: int  # transcripts committed: caller utterances the recogniser finished
    noinput: int
    nomatch: int
    bargeins: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def call_summaries(logs: LogSet) -> list[CallSummary]:
    """Every call of every file, oldest first."""
    rows = sorted(logs.query(_SQL), key=lambda row: (row[2], row[0]))
    return [CallSummary(row[0], row[1], *row[3:]) for row in rows]
