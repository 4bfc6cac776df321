"""SIGKILL the server in the middle of several calls: nothing committed is lost, and
each live call loses at most the last 100 ms of each audio track.

What is asserted, per live call at the kill:
- every row read before the kill is still there, the file passes `integrity_check`;
- of each track, the committed frames are 0..k-1 with no hole, and the frames the server
  had but did not commit are at most 100 ms (5 frames): the chunk being filled
  (`runtime.recorder`, 5-frame chunks);
- so the call loses at most the last 100 ms of its timeline (both tracks cover the same
  window), at most 200 ms of audio over its two tracks.

The writer commits what it is handed every tick (20 ms, `SqliteEventLog(batch_ms=)`); a
real crash can also lose the rows of the tick under way. The test waits out that tick
before killing (it waits until each call's last event is committed), so it measures
the recorder's part exactly instead of racing the writer thread.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.errors import SocketClosed
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

CALLS = 5
FRAME_MS = 20
FRAME_BYTES = 160
BOUND_MS = 100  # per track
TRACKS = ("caller", "agent")


def committed(db: Path) -> set[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return set(conn.execute("select call_id, seq from events"))


def markers_committed(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(
            conn.execute(
                "select count(distinct call_id) from events where kind = 'dtmf_received'"
            ).fetchone()[0]
        )


def committed_frames(db: Path) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(call's `n` parameter, track) → its chunks as (first frame, frame count)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "select json_extract(c.custom_parameters, '$.n'), a.track, a.first_frame,"
            " a.frame_count from audio a join calls c using (call_id)"
            " order by a.call_id, a.track, a.seq"
        ).fetchall()
    found: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for n, track, first, count in rows:
        found.setdefault((n, track), []).append((first, count))
    return found


async def test_sigkill_mid_calls_loses_nothing_committed_and_at_most_100_ms_of_a_track(
    tmp_path: Path,
) -> None:
    db = tmp_path / "calls.db"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    server = subprocess.Popen(  # noqa: ASYNC220 - spawning is instant; no output is read
        [
            sys.executable,
            "-m",
            "fsm_voice.cli",
            "serve",
            "--fd",
            str(listener.fileno()),
            "--db",
            str(db),
            "--machine",
            "echo",
        ],
        pass_fds=[listener.fileno()],
        stdout=subprocess.DEVNULL,
    )
    listener.close()  # the server holds its own copy
    url = f"ws://127.0.0.1:{port}/voice"
    ready = [anyio.Event() for _ in range(CALLS)]
    kill = anyio.Event()
    sent = [0] * CALLS

    async def caller(n: int) -> None:
        frames = 40 + n  # the chunk being filled holds n frames: every size from 0 to 4
        with contextlib.suppress(SocketClosed, OSError):
            async with dial(url) as ws:
                params = {"n": str(n)}
                sim = PhoneSimulator(ws, SystemClock(), RandomIds(), custom_parameters=params)
                async with sim:
                    await sim.send_silence(frames * FRAME_MS)
                    # Every frame echoed back: the server has recorded all of both tracks.
                    await sim.wait_played_bytes(frames * FRAME_BYTES)
                    sent[n] = frames
                    await sim.send_dtmf("1")  # logged after every frame of the call
                    ready[n].set()
                    await kill.wait()

    try:
        async with anyio.create_task_group() as tg:
            for n in range(CALLS):
                tg.start_soon(caller, n)
            for event in ready:
                await event.wait()
            # The writer commits in the order it was handed rows: once a call's `dtmf`
            # is committed, so is every chunk handed over before it. Another process
            # writes the file and no event crosses over: poll it. The bound only turns
            # a hang into a failure.
            with anyio.fail_after(60):
                while markers_committed(db) < CALLS:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            before = committed(db)
            server.send_signal(signal.SIGKILL)
            server.wait()
            kill.set()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    assert len({call_id for call_id, _ in before}) == CALLS  # every call had rows in
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        calls = conn.execute("select count(*) from calls").fetchone()[0]
    after = committed(db)
    assert before <= after
    assert calls == CALLS

    chunks = committed_frames(db)
    lost_ms: dict[tuple[int, str], int] = {}
    for n in range(CALLS):
        for track in TRACKS:
            got = chunks.get((str(n), track), [])
            frames = sum(count for _, count in got)
            starts = [first for first, _ in got]
            ends = [first + count for first, count in got]
            assert starts == [0, *ends[:-1]][: len(got)], f"call {n} {track}: a hole in {got}"
            lost_ms[n, track] = (sent[n] - frames) * FRAME_MS
    over = {key: ms for key, ms in lost_ms.items() if not 0 <= ms <= BOUND_MS}
    assert over == {}, f"lost more than {BOUND_MS} ms (or a frame never sent): {over}"
    for n in range(CALLS):
        per_call = [lost_ms[n, track] for track in TRACKS]
        assert max(per_call) <= BOUND_MS and sum(per_call) <= 2 * BOUND_MS, (n, per_call)
