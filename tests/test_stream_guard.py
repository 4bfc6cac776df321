"""`StreamGuard`: a stream token opens one stream, for its call, while it is fresh.

Time is a `VirtualClock`: expiry is checked by moving it, never by waiting.
"""

from __future__ import annotations

import pytest

from fsm_voice.call.stream_guard import MAX_CLOCK_SKEW_MS, STREAM_REFUSALS, StreamGuard
from fsm_voice.clock import CountingIds, VirtualClock
from fsm_voice.security import Secret, call_token

pytestmark = pytest.mark.anyio

KEY = Secret("stream-key")
TTL_MS = 60_000


def guard(clock: VirtualClock, **options: int) -> StreamGuard:
    return StreamGuard(KEY, clock, ttl_ms=TTL_MS, ids=CountingIds(), **options)


def params(
    clock: VirtualClock,
    call_id: str = "FV1",
    *,
    issued_ms: int | None = None,
    call_sid: str | None = None,
) -> dict[str, str]:
    """A `start`'s <Parameter>s with a token minted now (or at `issued_ms`)."""
    issued = clock.wall_ms() if issued_ms is None else issued_ms
    token = call_token(KEY, call_id, issued_ms=issued, call_sid=call_sid)
    return {"call_id": call_id, "token": token}


async def test_a_token_opens_one_stream() -> None:
    clock = VirtualClock()
    streams = guard(clock)
    start = params(clock, call_sid="CA1")
    assert streams.admit(start, "CA1") is None
    assert streams.admit(start, "CA1") == "stream_token_used"
    streams.release("CA1")
    assert streams.admit(start, "CA1") == "stream_token_used"  # ended: still used


async def test_a_token_expires_after_its_ttl_on_the_servers_clock() -> None:
    clock = VirtualClock()
    streams = guard(clock)
    fresh, stale = params(clock, "FV1"), params(clock, "FV2")
    await clock.advance(TTL_MS)
    assert streams.admit(fresh, None) is None  # exactly TTL old: still in time
    await clock.advance(1)
    assert streams.admit(stale, None) == "stream_token_expired"


async def test_a_token_from_the_future_is_not_one_we_minted() -> None:
    clock = VirtualClock()
    streams = guard(clock)
    skewed = params(clock, "FV1", issued_ms=clock.wall_ms() + MAX_CLOCK_SKEW_MS)
    assert streams.admit(skewed, None) is None  # another host's clock a little ahead
    ahead = params(clock, "FV2", issued_ms=clock.wall_ms() + MAX_CLOCK_SKEW_MS + 1)
    assert streams.admit(ahead, None) == "stream_token_invalid"


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        ({}, "stream_call_id_missing"),
        ({"call_id": "FV1"}, "stream_token_missing"),
        ({"call_id": "FV1", "token": "x" * 32}, "stream_token_invalid"),
        ({"call_id": "FV2", "token": "OF-FV1"}, "stream_token_invalid"),
    ],
)
async def test_a_start_without_a_valid_token_is_refused(start: dict[str, str], reason: str) -> None:
    clock = VirtualClock()
    if start.get("token") == "OF-FV1":
        start["token"] = params(clock, "FV1")["token"]
    assert guard(clock).admit(start, "CA1") == reason
    assert reason in STREAM_REFUSALS


async def test_a_token_bound_to_a_call_sid_opens_only_that_calls_stream() -> None:
    clock = VirtualClock()
    streams = guard(clock)
    start = params(clock, call_sid="CA1")
    assert streams.admit(start, "CA2") == "stream_call_sid_mismatch"
    assert streams.admit(start, None) == "stream_call_sid_mismatch"
    assert streams.admit(start, "CA1") is None


async def test_a_second_stream_for_a_call_sid_is_refused_while_live_and_a_ttl_after() -> None:
    clock = VirtualClock()
    streams = guard(clock)
    assert streams.admit(params(clock, "FV1"), "CA1") is None
    # A fresh token minted again for the same call (a replayed webhook, say).
    assert streams.admit(params(clock, "FV2", call_sid="CA1"), "CA1") == "stream_call_duplicate"
    await clock.advance(2 * TTL_MS)  # however long the first stream lives
    assert streams.admit(params(clock, "FV3"), "CA1") == "stream_call_duplicate"
    streams.release("CA1")
    await clock.advance(TTL_MS - 1)
    assert streams.admit(params(clock, "FV4"), "CA1") == "stream_call_duplicate"
    await clock.advance(1)
    assert streams.admit(params(clock, "FV5"), "CA1") is None  # forgotten with its TTL


async def test_a_redirect_token_moves_a_live_call_once() -> None:
    clock = VirtualClock()
    streams = guard(clock)
    assert streams.admit(params(clock, "FV1", call_sid="CA1"), "CA1") is None
    redirect = {"call_id": "FV1", "token": streams.redirect_token("FV1", "CA1")}
    assert streams.admit(redirect, "CA9") == "stream_call_sid_mismatch"
    assert streams.admit(redirect, "CA1") is None  # though CA1 has a live stream
    assert streams.admit(redirect, "CA1") == "stream_token_used"
    again = {"call_id": "FV1", "token": streams.redirect_token("FV1", "CA1")}
    assert again != redirect
    assert streams.admit(again, "CA1") is None  # each redirect mints its own
    await clock.advance(TTL_MS + 1)
    late = {"call_id": "FV1", "token": streams.redirect_token("FV1", "CA1")}
    assert streams.admit(late, "CA1") is None  # minted now: fresh


async def test_memory_is_bounded_and_forgetting_never_reopens_a_token() -> None:
    clock = VirtualClock()
    streams = guard(clock, max_entries=2)
    first = params(clock, "FV1")
    await clock.advance(10)
    second, third, unused = params(clock, "FV2"), params(clock, "FV3"), params(clock, "FV4")
    for start in (first, second, third):
        assert streams.admit(start, None) is None
    # FV1 was forgotten: it, and any token as old, is refused rather than let in again.
    assert streams.admit(first, None) == "stream_token_expired"
    assert streams.admit(second, None) == "stream_token_used"
    assert streams.admit(unused, None) is None  # newer than anything forgotten
    assert streams.admit(second, None) == "stream_token_expired"  # forgotten for FV4
