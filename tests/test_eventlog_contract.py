"""What every `EventLog` must do, run against each implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fsm_voice.audio.wav import read_wav
from fsm_voice.errors import EventLogError
from fsm_voice.eventlog import (
    AudioChunk,
    CallRecord,
    EventLog,
    EventRecord,
    MemoryEventLog,
    Source,
    SqliteEventLog,
    call_events,
    list_calls,
    track_pcm_mulaw,
    track_wav,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


IMPLEMENTATIONS: dict[str, Callable[[Path], EventLog]] = {
    # Storage only: the rows' kinds are made up, so the catalogue check is off.
    "memory": lambda _: MemoryEventLog(kinds="off"),
    "sqlite": lambda tmp_path: SqliteEventLog(tmp_path / "calls.db", kinds="off"),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    made = IMPLEMENTATIONS[request.param](tmp_path)
    yield made
    made.close()  # also fails the test if a write error was never reported


def event(
    seq: int,
    call_id: str = "c1",
    *,
    kind: str = "thing_happened",
    source: Source = "runtime",
    data: dict[str, Any] | None = None,
) -> EventRecord:
    return EventRecord(
        call_id=call_id,
        seq=seq,
        t_ms=seq * 20,
        wall_ms=T0 + seq * 20 + 7,
        source=source,
        kind=kind,
        data={"n": seq} if data is None else data,
    )


def test_open_update_and_read_calls(log: EventLog) -> None:
    call = CallRecord(
        "c1",
        started_wall_ms=T0 + 123,
        call_sid="CA" + "0" * 32,
        stream_sid="MZ" + "1" * 32,
        account_sid="AC" + "2" * 32,
        from_number="+15550001111",
        to_number="+15550002222",
        direction="inbound",
        machine="booking",
        machine_version="3",
        custom_parameters={"lang": "fr", "vip": "yes"},
    )
    log.open_call(call)
    log.update_call(
        "c1",
        ended_wall_ms=T0 + 61_000,
        duration_ms=60_877,
        end_reason="caller_hangup",
        outcome="completed",
        final_state="done",
    )
    log.update_call("c1", custom_parameters={"lang": "de"})
    log.flush_sync()

    expected = CallRecord(
        **{
            **{name: getattr(call, name) for name in call.__slots__},
            "ended_wall_ms": T0 + 61_000,
            "duration_ms": 60_877,
            "end_reason": "caller_hangup",
            "outcome": "completed",
            "final_state": "done",
            "custom_parameters": {"lang": "de"},
        }
    )
    assert log.call("c1") == expected
    assert list(log.calls()) == [expected]
    assert list_calls(log) == [expected]
    assert log.call("nope") is None


def test_a_call_is_a_snapshot_when_opened(log: EventLog) -> None:
    call = CallRecord("c1", started_wall_ms=T0, custom_parameters={"a": "1"})
    log.open_call(call)
    call.outcome = "changed later"
    call.custom_parameters["a"] = "2"
    log.flush_sync()
    assert log.call("c1") == CallRecord("c1", started_wall_ms=T0, custom_parameters={"a": "1"})


def test_calls_oldest_first(log: EventLog) -> None:
    log.open_call(CallRecord("late", started_wall_ms=T0 + 5000))
    log.open_call(CallRecord("early", started_wall_ms=T0))
    log.open_call(CallRecord("middle", started_wall_ms=T0 + 10))
    log.flush_sync()
    assert [c.call_id for c in log.calls()] == ["early", "middle", "late"]


def test_events_round_trip_exactly(log: EventLog) -> None:
    data = {
        "text": 'Bonjour — 日本語 🎉 "quoted" \\ \n newline',
        "nested": {"list": [1, 2.5, None, True, False, {"deep": ["x", []]}], "empty": {}},
        "big": 2**62,
        "negative": -7,
        "zero_width": "\u200b",
    }
    sent = [
        event(0, data=data),
        event(1, data={}),
        EventRecord("c1", 2, 0, 0, "stt", "transcript_committed", {"k": "v"}, v=3),
        EventRecord("c1", 3, 999_999, T0 + 999, "tts", "speech_started", {"x": 1}),
    ]
    for e in sent:
        log.append(e)
    log.flush_sync()
    assert list(log.events("c1")) == sent


def test_events_come_back_in_seq_order(log: EventLog) -> None:
    for seq in [5, 0, 3, 9, 1, 2, 8, 4, 7, 6]:
        log.append(event(seq))
    log.flush_sync()
    assert [e.seq for e in log.events("c1")] == list(range(10))


def test_kind_and_source_filters(log: EventLog) -> None:
    log.append(event(0, kind="stream_started", source="transport"))
    log.append(event(1, kind="transcript_committed", source="stt"))
    log.append(event(2, kind="state_entered", source="conversation"))
    log.append(event(3, kind="transcript_committed", source="stt"))
    log.append(event(4, kind="mark_echoed", source="transport"))
    log.append(event(5, kind="transcript_committed", source="runtime"))
    log.flush_sync()

    def seqs(kind: str | None = None, source: str | None = None) -> list[int]:
        return [e.seq for e in log.events("c1", kind=kind, source=source)]

    assert seqs(kind="transcript_committed") == [1, 3, 5]
    assert seqs(source="transport") == [0, 4]
    assert seqs(kind="transcript_committed", source="stt") == [1, 3]
    assert seqs(kind="never_happened") == []
    assert seqs() == [0, 1, 2, 3, 4, 5]
    assert [e.seq for e in call_events(log, "c1", kind="transcript_committed", source="stt")] == [
        1,
        3,
    ]
    assert [e.seq for e in call_events(log, "c1", source="transport")] == [0, 4]


def test_audio_round_trip(log: EventLog) -> None:
    caller = [
        AudioChunk("c1", "caller", 0, 0, 0, bytes(range(256)) * 31 + b"\x00" * 64),
        AudioChunk("c1", "caller", 1, 1000, 50, b"\x7f" * 8000),
    ]
    agent = [AudioChunk("c1", "agent", 0, 250, 12, b"\x01\x02\x03")]
    log.append_audio(caller[1])
    log.append_audio(agent[0])
    log.append_audio(caller[0])
    log.flush_sync()
    assert list(log.audio("c1", "caller")) == caller
    assert list(log.audio("c1", "agent")) == agent
    assert [c.frame_count for c in log.audio("c1", "caller")] == [50, 50]
    assert list(log.audio("c2", "caller")) == []


def test_flush_sync_makes_everything_visible(log: EventLog) -> None:
    log.open_call(CallRecord("c1", started_wall_ms=T0))
    for seq in range(300):
        log.append(event(seq))
    log.append_audio(AudioChunk("c1", "agent", 0, 0, 0, b"\xff" * 160))
    log.flush_sync()
    assert len(log.events("c1")) == 300
    assert len(log.audio("c1", "agent")) == 1
    assert log.call("c1") is not None


def test_async_flush_makes_everything_visible(log: EventLog) -> None:
    async def main() -> int:
        log.open_call(CallRecord("c1", started_wall_ms=T0))
        for seq in range(300):
            log.append(event(seq))
        await log.flush()
        return len(log.events("c1"))

    assert asyncio.run(main()) == 300


def test_writes_after_close_raise(log: EventLog) -> None:
    log.append(event(0))
    log.close()
    with pytest.raises(EventLogError, match="closed"):
        log.open_call(CallRecord("c2", started_wall_ms=T0))
    with pytest.raises(EventLogError, match="closed"):
        log.update_call("c1", outcome="x")
    with pytest.raises(EventLogError, match="closed"):
        log.append(event(1))
    with pytest.raises(EventLogError, match="closed"):
        log.append_audio(AudioChunk("c1", "caller", 0, 0, 0, b"\xff"))
    with pytest.raises(EventLogError, match="closed"):
        log.events("c1")
    log.close()  # a second close is harmless


def test_interleaved_calls_stay_separate(log: EventLog) -> None:
    for call_id in ("a", "b", "c"):
        log.open_call(CallRecord(call_id, started_wall_ms=T0))
    for seq in range(20):
        for call_id in ("a", "b", "c"):
            log.append(event(seq, call_id, data={"call": call_id, "seq": seq}))
            log.append_audio(AudioChunk(call_id, "caller", seq, seq, seq, call_id.encode() * 160))
    log.update_call("b", outcome="completed")
    log.flush_sync()
    for call_id in ("a", "b", "c"):
        events = log.events(call_id)
        assert [e.seq for e in events] == list(range(20))
        assert all(e.call_id == call_id and e.data["call"] == call_id for e in events)
        chunks = log.audio(call_id, "caller")
        assert [c.payload for c in chunks] == [call_id.encode() * 160] * 20
    assert [c.outcome for c in log.calls()] == [None, "completed", None]


def test_track_pcm_fills_gaps_with_silence(log: EventLog) -> None:
    # Frames 0-1, then nothing for frames 2-4, then frames 5-6 and a short frame 7.
    log.append_audio(AudioChunk("c1", "caller", 1, 100, 5, b"\x11" * 320 + b"\x22" * 100))
    log.append_audio(AudioChunk("c1", "caller", 0, 0, 0, b"\x01" * 320))
    log.append_audio(AudioChunk("c1", "agent", 0, 60, 3, b"\x33" * 160))
    log.flush_sync()

    caller = track_pcm_mulaw(log, "c1", "caller")
    assert caller == b"\x01" * 320 + b"\xff" * 480 + b"\x11" * 320 + b"\x22" * 100
    agent = track_pcm_mulaw(log, "c1", "agent")
    assert agent == b"\xff" * 480 + b"\x33" * 160
    assert track_pcm_mulaw(log, "c1", "caller") == caller  # reading does not consume
    assert track_pcm_mulaw(log, "nobody", "caller") == b""

    wav = read_wav(track_wav(log, "c1", "caller"))
    assert (wav.encoding, wav.sample_rate, wav.channels, wav.data) == ("mulaw", 8000, 1, caller)


def test_a_duplicate_seq_is_reported_by_flush_and_later_writes_go_on(log: EventLog) -> None:
    log.append(event(0))
    log.append(event(1, data={"first": True}))
    log.append(event(1, data={"second": True}))
    log.append(event(2))
    with pytest.raises(EventLogError, match=r"seq 1"):
        log.flush_sync()
    log.append(event(3))
    log.flush_sync()  # the error was reported once
    events = log.events("c1")
    assert [e.seq for e in events] == [0, 1, 2, 3]
    assert events[1].data == {"first": True}


def test_data_json_cannot_hold_is_reported_by_flush(log: EventLog) -> None:
    log.append(event(0, data={"when": object()}))
    log.append(event(1, data={"x": float("nan")}))
    log.append(event(2))
    with pytest.raises(EventLogError, match=r"seq 0.*\(and 1 more failed writes\)"):
        log.flush_sync()
    assert [e.seq for e in log.events("c1")] == [2]


def test_updating_a_call_never_opened_is_reported(log: EventLog) -> None:
    log.update_call("ghost", outcome="completed")
    with pytest.raises(EventLogError, match="ghost"):
        log.flush_sync()
    with pytest.raises(TypeError, match="colour"):
        log.update_call("ghost", colour="blue")


def test_close_reports_a_write_error_nobody_flushed(log: EventLog) -> None:
    log.append(event(0))
    log.append(event(0))
    with pytest.raises(EventLogError, match="seq 0"):
        log.close()


def test_async_flush_reports_a_write_error(log: EventLog) -> None:
    async def main() -> None:
        log.append(event(0))
        log.append(event(0))
        await log.flush()

    with pytest.raises(EventLogError, match="seq 0"):
        asyncio.run(main())
