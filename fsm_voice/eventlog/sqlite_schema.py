"""The SQLite event log's file format: schema, column conversions, row encoders.

With `sqlite` and `sqlite_writer`, the only modules that import `sqlite3` and
`sqlite_utils` (STYLE.md).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import sqlite_utils

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.records import AudioChunk, CallRecord, EventRecord, RefusalCount, Source
from fsm_voice.eventlog.upcast import stored_kinds, upcast_filtered

# Stored as PRAGMA user_version. 2 added `refusals`; a version-1 file gets it when a
# writer opens it, and readers (`multi.LogSet`, read-only) read one without it.
SCHEMA_VERSION: Final = 2
WAL_AUTOCHECKPOINT_PAGES: Final = 10_000  # of 4 KiB: SQLite's default is 1,000

# Sorted keys and no spaces: the same data is always the same text.
_JSON: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


# A lone surrogate (JSON's "\ud800", a Python str may hold one) has no UTF-8 form, so
# SQLite cannot take a text holding one. The check is O(1) for ASCII text.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _surrogate_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _storable_json(text: str) -> str:
    """JSON `text` with each lone surrogate as its `\\uXXXX` escape: it reads back
    as the same string. Outside strings JSON has no surrogates to escape."""
    if text.isascii():
        return text
    return _SURROGATE.sub(_surrogate_escape, text)


def _storable_text(text: str) -> str:
    """A text column's value, lone surrogates written as `\\udXXX` (shown, not lost)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _make_encode_data() -> Callable[[Any], str]:
    """`_JSON.encode`, for the writer thread's one call per event row.

    `JSONEncoder.encode` builds a new C encoder on every call, which costs more than
    encoding a small payload. The C encoder is built once here, without the circular
    reference check (payloads are flat records; a cycle fails the row with a
    RecursionError instead of a ValueError). Lone surrogates come out escaped.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator in this Python
        return lambda data: _storable_json(_JSON.encode(data))
    encode = make(
        None, _JSON.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )

    def encode_data(data: Any) -> str:
        if type(data) is not dict:  # only objects are rows' data; anything else as before
            return _storable_json(_JSON.encode(data))
        text = "".join(encode(data, 0))
        return text if text.isascii() else _storable_json(text)

    return encode_data


_encode_data: Final = _make_encode_data()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)

_INSERT_EVENT: Final = (
    "INSERT INTO events (call_id, seq, t_ms, wall_time, source, kind, data, v)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_AUDIO: Final = (
    "INSERT INTO audio (call_id, track, seq, t_ms, first_frame, frame_count, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_CALL_COLUMNS: Final = ", ".join(f.name for f in fields(CallRecord))
_COUNT_REFUSALS: Final = (
    "INSERT INTO refusals (minute_wall_ms, minute, reason, status, count)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (minute_wall_ms, reason)"
    " DO UPDATE SET count = count + excluded.count, status = excluded.status"
)
_SELECT_REFUSALS: Final = (
    "SELECT minute_wall_ms, reason, status, count FROM refusals ORDER BY minute_wall_ms, reason"
)


def _iso_utc(wall_ms: int) -> str:
    """`2026-01-01T00:00:00.000Z` for a time in ms since the Unix epoch."""
    return (_EPOCH + wall_ms * _MS).strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall_ms % 1000:03d}Z"


def _wall_ms_from_iso(text: str) -> int:
    return (datetime.fromisoformat(text) - _EPOCH) // _MS


def select_events(call_id: str, kind: str | None, source: str | None) -> tuple[str, list[str]]:
    """The query (sql, params) for a call's events, optionally of one kind and/or
    source; a renamed kind is selected by its old names too (`stored_kinds`)."""
    where, params = ["call_id = ?"], [call_id]
    if kind is not None:
        names = stored_kinds(kind, source)
        where.append(f"kind IN ({', '.join('?' * len(names))})")
        params.extend(names)
    if source is not None:
        where.append("source = ?")
        params.append(source)
    sql = (
        "SELECT call_id, seq, t_ms, wall_time, source, kind, data, v FROM events"
        f" WHERE {' AND '.join(where)} ORDER BY seq"
    )
    return sql, params


def read_events(
    rows: Iterable[Sequence[Any]], kind: str | None, source: str | None
) -> list[EventRecord]:
    """`select_events`' rows as the catalogue declares them now (`upcast`): a file
    written by an older version keeps its rows and reads back current."""
    stored = (
        EventRecord(
            call_id=row[0],
            seq=row[1],
            t_ms=row[2],
            wall_ms=_wall_ms_from_iso(row[3]),
            source=cast(Source, row[4]),
            kind=row[5],
            data=json.loads(row[6]),
            v=row[7],
        )
        for row in rows
    )
    return upcast_filtered(stored, kind=kind, source=source)


def _audio_row(a: AudioChunk) -> tuple[object, ...]:
    return (a.call_id, a.track, a.seq, a.t_ms, a.first_frame, a.frame_count, bytes(a.payload))


def _refusal_rows(refusals: Iterable[RefusalCount]) -> list[tuple[object, ...]]:
    """One `_COUNT_REFUSALS` row per minute and reason: a batch's refusals summed."""
    counts: dict[tuple[int, str], int] = {}
    statuses: dict[tuple[int, str], int] = {}
    for r in refusals:
        key = (r.minute_wall_ms, r.reason)
        counts[key] = counts.get(key, 0) + r.count
        statuses[key] = r.status
    return [(m, _iso_utc(m), why, statuses[(m, why)], n) for (m, why), n in counts.items()]


def _insert_audio(conn: sqlite3.Connection, chunk: AudioChunk) -> None:
    conn.execute(_INSERT_AUDIO, _audio_row(chunk))


def _call_columns(values: dict[str, Any]) -> dict[str, object]:
    """CallRecord fields → `calls` columns (ISO twins for the two times, JSON params)."""
    row: dict[str, object] = {}
    for name, value in values.items():
        if name == "custom_parameters":
            row[name] = _storable_json(_JSON.encode(value))
            continue
        row[name] = _storable_text(value) if type(value) is str else value
        if name == "started_wall_ms":
            row["started_at"] = _iso_utc(value)
        elif name == "ended_wall_ms":
            row["ended_at"] = None if value is None else _iso_utc(value)
    return row


def _create_schema(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise EventLogError(f"journal_mode is {mode!r}, WAL is needed")
    conn.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint every ~40 MB of WAL rather than 4 MB: with hundreds of calls each
    # commit rewrites an index page per call, and a rarer checkpoint copies each page
    # once for many commits (and syncs 10x less often).
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise EventLogError(
            f"schema version {version} is newer than this fsm_voice's {SCHEMA_VERSION}"
        )
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    # NOT NULL on the keys too: SQLite lets NULL into a non-INTEGER primary key.
    db.table("calls").create(
        {
            "call_id": str,
            "call_sid": str,
            "stream_sid": str,
            "account_sid": str,
            "from_number": str,
            "to_number": str,
            "direction": str,
            "machine": str,
            "machine_version": str,
            "custom_parameters": str,  # JSON object
            "started_at": str,  # ISO-8601 UTC with ms
            "started_wall_ms": int,
            "ended_at": str,
            "ended_wall_ms": int,
            "duration_ms": int,
            "end_reason": str,
            "outcome": str,
            "final_state": str,
        },
        pk="call_id",
        not_null={"call_id", "custom_parameters", "started_at", "started_wall_ms"},
        if_not_exists=True,
    )
    events = db.table("events")
    events.create(
        {
            "call_id": str,
            "seq": int,
            "t_ms": int,  # ms since the call started
            "wall_time": str,  # ISO-8601 UTC with ms
            "source": str,
            "kind": str,
            "data": str,  # JSON, sorted keys, compact
            "v": int,  # payload schema version
        },
        pk=("call_id", "seq"),
        not_null={"call_id", "seq", "t_ms", "wall_time", "source", "kind", "data", "v"},
        if_not_exists=True,
    )
    events.create_index(["kind"], if_not_exists=True)
    db.table("audio").create(
        {
            "call_id": str,
            "track": str,  # caller | agent
            "seq": int,
            "t_ms": int,
            "first_frame": int,  # 20 ms frame number within the track
            "frame_count": int,
            "payload": bytes,  # μ-law, 8 kHz
        },
        pk=("call_id", "track", "seq"),
        not_null={"call_id", "track", "seq", "t_ms", "first_frame", "frame_count", "payload"},
        if_not_exists=True,
    )
    db.table("refusals").create(
        {
            "minute_wall_ms": int,  # the minute's start, ms since the epoch
            "minute": str,  # the same, ISO-8601 UTC, for people reading the file
            "reason": str,
            "status": int,  # the HTTP status they were answered with
            "count": int,
        },
        pk=("minute_wall_ms", "reason"),
        not_null={"minute_wall_ms", "minute", "reason", "status", "count"},
        if_not_exists=True,
    )
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _call_record(row: Iterable[Any]) -> CallRecord:
    values = dict(zip((f.name for f in fields(CallRecord)), row, strict=True))
    values["custom_parameters"] = json.loads(values["custom_parameters"])
    return CallRecord(**values)
