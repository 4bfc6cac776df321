"""One call's row the log cannot write never fails another call, and strings the log
cannot hold as they are (lone surrogates) are escaped, never dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.memory import MemoryEventLog
from fsm_voice.eventlog.records import CallRecord, EventRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog

pytestmark = pytest.mark.anyio

SURROGATES = "a\ud800b\udfff\udbff"


@pytest.fixture(params=["sqlite", "memory"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    log: EventLog = (
        SqliteEventLog(tmp_path / "calls.db") if request.param == "sqlite" else MemoryEventLog()
    )
    yield log
    log.close()


def event(call_id: str, seq: int, **data: object) -> EventRecord:
    return EventRecord(call_id, seq, seq, 1_700_000_000_000 + seq, "transport", "mark_echoed", data)


async def test_a_bad_row_fails_only_its_own_calls_flush(log: EventLog) -> None:
    for call_id in ("good", "bad"):
        log.open_call(CallRecord(call_id, 1_700_000_000_000))
    log.append(event("bad", 0, name="m"))
    log.append(event("good", 0, name="m"))
    log.append(event("bad", 0, name="again"))  # a duplicate key: the row cannot be written
    log.append(event("bad", 1, when=object()))  # data JSON cannot hold
    log.append(event("good", 1, name="n"))
    await log.flush("good")  # the bad rows are not the good call's
    with pytest.raises(EventLogError, match=r"'bad' seq 0.*\(and 1 more failed writes\)"):
        await log.flush("bad")
    await log.flush("bad")  # told once
    log.flush_sync()  # nothing left for the whole log either
    assert [e.data for e in log.events("good")] == [{"name": "m"}, {"name": "n"}]
    assert [e.data for e in log.events("bad")] == [{"name": "m"}]


async def test_a_flush_of_the_whole_log_still_hears_of_every_bad_row(log: EventLog) -> None:
    log.append(event("one", 0))
    log.append(event("one", 0))
    log.append(event("two", 0, x=float("nan")))
    with pytest.raises(EventLogError, match=r"'one' seq 0.*\(and 1 more failed writes\)"):
        await log.flush()
    await log.flush("two")  # already told


async def test_lone_surrogates_in_event_data_are_stored_and_read_back(log: EventLog) -> None:
    data = {"name": SURROGATES, SURROGATES: ["\ud800", {"k": "é\udc00"}]}
    log.append(event("c1", 0, **data))
    log.append(event("c1", 1, name="after"))
    await log.flush("c1")
    assert [e.data for e in log.events("c1")] == [data, {"name": "after"}]


async def test_lone_surrogates_in_a_call_row_are_escaped_not_lost(log: EventLog) -> None:
    log.open_call(CallRecord("c1", 1_700_000_000_000, machine=SURROGATES))
    params = {SURROGATES: SURROGATES, "From": "+1555\ud800"}
    log.update_call("c1", stream_sid="MZ\ud800", custom_parameters=params, end_reason="x")
    await log.flush("c1")
    call = log.call("c1")
    assert call is not None and call.end_reason == "x"
    assert call.custom_parameters == params  # JSON: its \u escapes read back exactly
    if isinstance(log, SqliteEventLog):  # text columns show the escape
        assert (call.stream_sid, call.machine) == ("MZ\\ud800", "a\\ud800b\\udfff\\udbff")
