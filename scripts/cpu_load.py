"""Run a command beside a CPU hog (`make test-loaded`); exit with the command's code.

The hog is one busy process per core this process may run on (or `--procs N`), at
normal priority or niced (`--nice`). It lasts as long as the command: the hogs are
killed when the command ends, whatever its result, and when this runner is stopped
(SIGINT, SIGTERM, SIGHUP). A hog whose runner died anyway (SIGKILL) notices that its
parent changed and ends, and every hog ends by itself after `--max-seconds`.

    python scripts/cpu_load.py [--procs N] [--nice K] [--max-seconds S] -- CMD ARG...
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from types import FrameType


def spin(max_seconds: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it without a traceback
    signal.alarm(max_seconds)  # SIGALRM's default action ends the process
    while os.getppid() == parent:
        for _ in range(200_000):  # ~10 ms of work between checks
            pass


class Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def run(command: list[str], procs: int, nice: int, max_seconds: int) -> int:
    hogs: list[subprocess.Popen[bytes]] = []
    child: subprocess.Popen[bytes] | None = None
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        for _ in range(procs):
            spinner = [sys.executable, __file__, "--spin", str(max_seconds), str(os.getpid())]
            hogs.append(
                subprocess.Popen(
                    spinner,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=(lambda: os.nice(nice)) if nice else None,
                )
            )
        print(
            f"cpu_load: {procs} busy process(es) at nice {nice} beside: {' '.join(command)}",
            file=sys.stderr,
            flush=True,
        )
        child = subprocess.Popen(command)
        return child.wait()
    except (Stopped, KeyboardInterrupt) as e:
        if child is not None and child.poll() is None:
            child.send_signal(e.signum if isinstance(e, Stopped) else signal.SIGINT)
            child.wait()
        return 128 + (e.signum if isinstance(e, Stopped) else signal.SIGINT)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
        print(f"cpu_load: {len(hogs)} busy process(es) stopped", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--spin"]:
        spin(int(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--procs", type=int, default=cores, help=f"busy processes ({cores})")
    parser.add_argument("--nice", type=int, default=0, help="their niceness (0)")
    parser.add_argument("--max-seconds", type=int, default=3600, help="each hog's limit")
    parser.add_argument("command", nargs="+", help="the command to run, after --")
    args = parser.parse_args(argv)
    return run(args.command, args.procs, args.nice, args.max_seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
