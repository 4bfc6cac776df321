"""Figures across calls: turn latency, noinput/nomatch and barge-ins by state,
provider reconnects, calls by outcome, and the upgrades refused before any call
(counted per minute and reason). What `fsm-voice stats` prints.

Every figure is one SQL statement per file (json_extract, GROUP BY, a window for
"the next event"), reading only the kinds it needs through the `kind` index: over
10,000 calls that is well under a second where loading every event would take
minutes. Only the per-turn latencies come back row by row, to take percentiles
across files.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from fsm_voice.eventlog.multi import LogSet
from fsm_voice.eventlog.records import RefusalCount

__all__ = ["LatencyFigures", "Stats", "collect_stats", "percentile"]

# A turn: a recognised utterance, then the agent's first audio for the reply. Its
# latency runs from the end of the speech (the recogniser's end_ms, not when the
# transcript arrived) to that audio leaving for the platform. A transcript followed
# by another transcript before any audio did not get a reply of its own.
_TURNS: Final = """
WITH ordered AS (
  SELECT call_id, kind, t_ms, json_extract(data, '$.end_ms') AS end_ms,
    lead(kind) OVER w AS next_kind, lead(t_ms) OVER w AS next_t_ms
  FROM events
  WHERE kind = 'first_audio_sent'
     OR (kind = 'transcript_committed' AND json_extract(data, '$.text') != '')
  WINDOW w AS (PARTITION BY call_id ORDER BY seq)
)
SELECT coalesce(c.machine, ''), o.next_t_ms - o.end_ms
FROM ordered AS o JOIN calls AS c USING (call_id)
WHERE o.kind = 'transcript_committed' AND o.next_kind = 'first_audio_sent'
"""

# The conversation state an event happened in: the last conversation state_entered
# before it. `+s.kind` keeps SQLite on the (call_id, seq) key for this lookup
# instead of scanning every state_entered of every call through the kind index.
_BY_STATE: Final = """
SELECT coalesce(c.machine, ''),
  coalesce((SELECT json_extract(s.data, '$.state') FROM events AS s
            WHERE s.call_id = e.call_id AND s.seq < e.seq
              AND +s.kind = 'state_entered' AND s.source = 'conversation'
            ORDER BY s.seq DESC LIMIT 1), ''),
  CASE e.kind WHEN 'prompt_stopped' THEN 'bargein'
              ELSE json_extract(e.data, '$.counter') END,
  count(*)
FROM events AS e JOIN calls AS c USING (call_id)
WHERE e.kind IN ('counter_changed', 'prompt_stopped')
GROUP BY 1, 2, 3
"""

# A provider's move is `state_entered` (v2) or, in files written before it,
# `provider_state_entered` (v1, STT only): SQL reads the rows as stored, so both.
# The conversation's `state_entered` (_BY_STATE) keeps `state` in both versions.
_RECONNECTS: Final = """
SELECT coalesce(c.machine, ''), e.source, count(*)
FROM events AS e JOIN calls AS c USING (call_id)
WHERE e.kind IN ('state_entered', 'provider_state_entered') AND e.source IN ('stt', 'tts')
  AND json_extract(e.data, '$.state') = 'reconnecting'
GROUP BY 1, 2
"""

# The final state is looked up per call on the (call_id, seq) key, from the end:
# a join on the kind index instead made SQLite rescan every conversation_ended for
# every call (93 s over 10,000 calls).
_OUTCOMES: Final = """
SELECT machine, outcome, state, count(*), coalesce(sum(duration_ms), 0)
FROM (
  SELECT coalesce(c.machine, '') AS machine, coalesce(c.outcome, '') AS outcome,
    c.duration_ms AS duration_ms,
    coalesce((SELECT json_extract(e.data, '$.state') FROM events AS e
              WHERE e.call_id = c.call_id AND +e.kind = 'conversation_ended'
              ORDER BY e.seq DESC LIMIT 1), '') AS state
  FROM calls AS c
)
GROUP BY 1, 2, 3
"""


def percentile(values: list[int], pct: float) -> int | None:
    """Nearest-rank percentile of sorted `values` (None when there are none)."""
    if not values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return values[rank - 1]


@dataclass(frozen=True, slots=True)
class LatencyFigures:
    turns: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None

    @classmethod
    def of(cls, values: list[int]) -> LatencyFigures:
        ordered = sorted(values)
        top = ordered[-1] if ordered else None
        return cls(len(ordered), percentile(ordered, 50), percentile(ordered, 95), top)


@dataclass(slots=True)
class Stats:
    calls: int = 0
    call_ms: int = 0
    latency: LatencyFigures = field(default_factory=lambda: LatencyFigures.of([]))
    latency_by_machine: dict[str, LatencyFigures] = field(default_factory=dict)
    # (machine, state, what) → count; what is noinput, nomatch or bargein
    by_state: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    reconnects: Counter[tuple[str, str]] = field(default_factory=Counter)  # (machine, source)
    # (machine, outcome, final conversation state) → calls
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    refusals: list[RefusalCount] = field(default_factory=list)  # per minute and reason

    def refused_by_reason(self) -> dict[tuple[str, int], tuple[int, int, int]]:
        """(reason, status) → (refused, first minute, last minute), minutes in wall ms."""
        out: dict[tuple[str, int], tuple[int, int, int]] = {}
        for r in self.refusals:
            key = (r.reason, r.status)
            n, first, last = out.get(key, (0, r.minute_wall_ms, r.minute_wall_ms))
            out[key] = (n + r.count, min(first, r.minute_wall_ms), max(last, r.minute_wall_ms))
        return out

    def to_json(self) -> dict[str, Any]:
        def latency(f: LatencyFigures) -> dict[str, Any]:
            return {"turns": f.turns, "p50_ms": f.p50_ms, "p95_ms": f.p95_ms, "max_ms": f.max_ms}

        return {
            "calls": self.calls,
            "call_seconds": self.call_ms // 1000,
            "turn_latency": latency(self.latency),
            "turn_latency_by_machine": {
                m: latency(f) for m, f in sorted(self.latency_by_machine.items())
            },
            "by_state": [
                {"machine": m, "state": s, "what": w, "count": n}
                for (m, s, w), n in sorted(self.by_state.items())
            ],
            "reconnects": [
                {"machine": m, "source": s, "count": n}
                for (m, s), n in sorted(self.reconnects.items())
            ],
            "outcomes": [
                {"machine": m, "outcome": o, "final_state": s, "calls": n}
                for (m, o, s), n in sorted(self.outcomes.items())
            ],
            "refused_upgrades": [
                {
                    "reason": reason,
                    "status": status,
                    "count": n,
                    "first_minute_wall_ms": first,
                    "last_minute_wall_ms": last,
                }
                for (reason, status), (n, first, last) in sorted(self.refused_by_reason().items())
            ],
        }


def collect_stats(logs: LogSet) -> Stats:
    """The figures over every call in `logs`."""
    stats = Stats()
    per_machine: dict[str, list[int]] = {}
    for machine, latency_ms in logs.query(_TURNS):
        per_machine.setdefault(machine, []).append(int(latency_ms))
    stats.latency = LatencyFigures.of([v for values in per_machine.values() for v in values])
    stats.latency_by_machine = {m: LatencyFigures.of(v) for m, v in per_machine.items()}
    for machine, state, what, count in logs.query(_BY_STATE):
        stats.by_state[(machine, state, str(what))] += count
    for machine, source, count in logs.query(_RECONNECTS):
        stats.reconnects[(machine, source)] += count
    for machine, outcome, state, count, call_ms in logs.query(_OUTCOMES):
        stats.outcomes[(machine, outcome, state)] += count
        stats.calls += count
        stats.call_ms += call_ms
    stats.refusals = logs.refusals()
    return stats
