"""SIGKILL the server in the middle of several calls: nothing committed is lost."""

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


def committed(db: Path) -> set[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return set(conn.execute("select call_id, seq from events"))


async def test_sigkill_mid_calls_loses_nothing_committed(tmp_path: Path) -> None:
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

    async def caller(n: int) -> None:
        with contextlib.suppress(SocketClosed, OSError):
            async with dial(url) as ws:
                sim = PhoneSimulator(ws, SystemClock(), RandomIds())
                async with sim, anyio.create_task_group() as tg:
                    tg.start_soon(sim.send_silence, 20_000)
                    await sim.wait_for_mark_echoed("echo-30")  # well into the call
                    ready[n].set()
                    await kill.wait()
                    tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            for n in range(CALLS):
                tg.start_soon(caller, n)
            for event in ready:
                await event.wait()
            before = committed(db)  # read while the writer is writing: all committed rows
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
