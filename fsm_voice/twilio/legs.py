"""What Twilio's webhooks tell about a call, in the event log.

Each Twilio call (leg) gets its own row in `calls`, keyed by its CallSid, with the
webhook facts as its events (source `transport`): `twilio_call_answered`,
`twilio_call_created`, `call_status_received`, `answering_machine_detected`. The
media stream's own call row carries the same `call_sid`, so the two join on it.
Requests refused for a bad signature go to one `webhooks` row per server process.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fsm_voice.clock import Clock, IdSource
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.eventlog.records import CallRecord, EventRecord

__all__ = ["FINAL_STATUSES", "CallLegLog"]

# Twilio's final call statuses: after one, no more callbacks come for the call.
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


@dataclass
class _Stream:
    seq: Iterator[int]
    t0_ms: int


class CallLegLog:
    def __init__(self, log: EventLog, clock: Clock, ids: IdSource) -> None:
        self._log = log
        self._clock = clock
        self._ids = ids
        self._streams: dict[str, _Stream] = {}
        self._rejections_id: str | None = None

    def record(
        self,
        call_sid: str,
        kind: KindName,
        data: dict[str, Any],
        *,
        direction: str | None = None,
        parameters: dict[str, str] | None = None,
    ) -> None:
        """Append a fact about the Twilio call `call_sid` (its row is made when new)."""
        stream = self._streams.get(call_sid)
        if stream is None:
            stream = self._open(call_sid, direction, parameters or {})
        self._append(call_sid, stream, kind, data)

    def finish(self, call_sid: str, status: str, duration_s: str | None) -> None:
        """Twilio reported a final status: close the leg's row, forget the leg."""
        stream = self._streams.pop(call_sid, None)
        fields: dict[str, Any] = {"ended_wall_ms": self._clock.wall_ms(), "outcome": status}
        if duration_s and duration_s.isdigit():
            fields["duration_ms"] = int(duration_s) * 1000
        elif stream is not None:
            fields["duration_ms"] = self._clock.now_ms() - stream.t0_ms
        self._log.update_call(call_sid, **fields)

    def rejected(self, path: str, reason: str) -> None:
        """A webhook request refused (bad or missing signature)."""
        if self._rejections_id is None:
            self._rejections_id = self._ids.new_id("WH")
            self._log.open_call(
                CallRecord(self._rejections_id, self._clock.wall_ms(), direction="webhooks")
            )
            self._streams[self._rejections_id] = _Stream(itertools.count(), self._clock.now_ms())
        stream = self._streams[self._rejections_id]
        self._append(
            self._rejections_id, stream, "webhook_rejected", {"path": path, "reason": reason}
        )

    @property
    def rejections_id(self) -> str | None:
        return self._rejections_id

    def _open(self, call_sid: str, direction: str | None, parameters: dict[str, str]) -> _Stream:
        known = self._log.call(call_sid)  # seen before this process started (a restart)
        if known is None:
            self._log.open_call(
                CallRecord(
                    call_sid,
                    self._clock.wall_ms(),
                    call_sid=call_sid,
                    direction=direction,
                    custom_parameters={k: v for k, v in parameters.items() if k != "token"},
                )
            )
            first = 0
        else:
            first = len(self._log.events(call_sid))
        stream = _Stream(itertools.count(first), self._clock.now_ms())
        self._streams[call_sid] = stream
        return stream

    def _append(self, call_id: str, stream: _Stream, kind: str, data: dict[str, Any]) -> None:
        t_ms = self._clock.now_ms() - stream.t0_ms
        self._log.append(
            EventRecord(
                call_id, next(stream.seq), t_ms, self._clock.wall_ms(), "transport", kind, data
            )
        )
