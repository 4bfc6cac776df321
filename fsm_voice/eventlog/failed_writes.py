"""Writes that failed and were not told yet, kept by call: both logs use it.

A row the log cannot store is reported to the flush of the call it belonged to (or,
asked for everyone's, to the whole log's flush or close), never to another call. The
first error of a call is kept; later ones only count. Thread-safe: the SQLite log's
writer thread keeps errors that the event loop takes.
"""

from __future__ import annotations

import threading

from fsm_voice.errors import EventLogError

__all__ = ["FailedWrites"]


class FailedWrites:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # call id (None: no one call's) -> (the first error, how many more)
        self._kept: dict[str | None, tuple[EventLogError, int]] = {}

    def keep(self, call_id: str | None, error: EventLogError) -> None:
        with self._lock:
            kept = self._kept.get(call_id)
            self._kept[call_id] = (error, 0) if kept is None else (kept[0], kept[1] + 1)

    def take(self, call_id: str | None = None) -> EventLogError | None:
        """The failures not told yet as one error: `call_id`'s, or (None) everyone's."""
        with self._lock:
            if call_id is None:
                kept = list(self._kept.values())
                self._kept.clear()
            else:
                one = self._kept.pop(call_id, None)
                kept = [] if one is None else [one]
        if not kept:
            return None
        error = kept[0][0]
        more = sum(count for _, count in kept) + len(kept) - 1
        if not more:
            return error
        summary = EventLogError(f"{error} (and {more} more failed writes)")
        summary.__cause__ = error.__cause__
        return summary
