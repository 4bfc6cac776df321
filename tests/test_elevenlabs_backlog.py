"""The caller-audio backlog and the session timeline behind the ElevenLabs recogniser."""

from __future__ import annotations

from fsm_voice.providers.elevenlabs_backlog import CallerBacklog, SessionTimeline


def test_chunks_join_contiguous_frames_up_to_the_size() -> None:
    backlog = CallerBacklog(max_bytes=10_000, max_chunk_bytes=480)
    for i in range(4):
        backlog.add(i * 20, bytes([i]) * 160)
    assert backlog.take() == (0, b"\x00" * 160 + b"\x01" * 160 + b"\x02" * 160)
    assert backlog.take() == (60, b"\x03" * 160)
    assert not backlog and backlog.size == 0


def test_a_gap_in_call_time_starts_a_new_chunk() -> None:
    backlog = CallerBacklog(max_bytes=10_000, max_chunk_bytes=10_000)
    backlog.add(0, b"a" * 160)
    backlog.add(100, b"b" * 160)  # 80 ms of the call never arrived
    assert backlog.take() == (0, b"a" * 160)
    assert backlog.take() == (100, b"b" * 160)


def test_overflow_drops_the_oldest_and_counts_it() -> None:
    backlog = CallerBacklog(max_bytes=320, max_chunk_bytes=10_000)
    assert backlog.add(0, b"a" * 160) == 0
    assert backlog.add(20, b"b" * 160) == 0
    assert backlog.add(40, b"c" * 160) == 160
    assert backlog.take() == (20, b"b" * 160 + b"c" * 160)
    assert backlog.take_dropped() == 160 and backlog.take_dropped() == 0


def test_a_chunk_put_back_goes_first() -> None:
    backlog = CallerBacklog(max_bytes=10_000, max_chunk_bytes=160)
    backlog.add(0, b"a" * 160)
    backlog.add(20, b"b" * 160)
    chunk = backlog.take()
    backlog.put_back(chunk)
    assert backlog.size == 320
    assert backlog.take() == (0, b"a" * 160)


def test_timeline_maps_session_offsets_to_call_time_across_gaps() -> None:
    timeline = SessionTimeline()
    timeline.sent(1000, 800)  # call 1000–1100 ms → session 0–100 ms
    timeline.sent(1100, 800)  # contiguous: 100–200
    timeline.sent(5000, 1600)  # after a gap: session 200–400 is call 5000–5200
    assert timeline.to_call_ms(0) == 1000
    assert timeline.to_call_ms(150) == 1150
    assert timeline.to_call_ms(200) == 5000
    assert timeline.to_call_ms(350.4) == 5150
    assert timeline.sent_ms == 400
    assert SessionTimeline().to_call_ms(42) == 42
