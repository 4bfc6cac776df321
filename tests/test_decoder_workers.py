"""The offline recogniser's decoder processes end with the process that started them."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys

import pytest

pytest.importorskip("pocketsphinx")

# A server in miniature: start the shared pool, warm it, say who the workers are, and
# die the way a stopped server does.
SERVER = """
import asyncio, multiprocessing, os, signal, sys
from fsm_voice.providers.offline_decoder import shared_pool
pool = shared_pool(2)
asyncio.run(pool.warm())
print(" ".join(str(p.pid) for p in multiprocessing.active_children()
               if "resource_tracker" not in p.name), flush=True)
sys.stdin.readline()
os.kill(os.getpid(), getattr(signal, sys.argv[1]))
"""


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_decoder_workers_end_when_their_server_is_killed(how: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        assert server.stdout is not None and server.stdin is not None
        workers = [int(pid) for pid in server.stdout.readline().split()]
        assert len(workers) == 2
        handles = [os.pidfd_open(pid) for pid in workers]  # readable once it ends
        try:
            server.stdin.write("die\n")
            server.stdin.flush()
            assert server.wait(timeout=60) == -getattr(signal, how)
            for handle in handles:  # an event, not a sleep: the kernel says it ended
                ready, _, _ = select.select([handle], [], [], 60)
                assert ready, "a decoder worker outlived its server"
        finally:
            for pid, handle in zip(workers, handles, strict=True):
                os.close(handle)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
