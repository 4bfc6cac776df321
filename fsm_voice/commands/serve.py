"""`fsm-voice serve`."""

from __future__ import annotations

from pathlib import Path

from fsm_voice.agents import BUILTIN
from fsm_voice.errors import ConfigError
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.runtime.call import Agent
from fsm_voice.server import create_app, run_server


def resolve_agent(machine: str) -> Agent:
    if machine in BUILTIN:
        return BUILTIN[machine]
    known = ", ".join(sorted(BUILTIN))
    raise ConfigError(f"unknown machine {machine!r} (built in: {known})")


def serve(host: str, port: int, db: Path, machine: str, fd: int | None = None) -> int:
    agent = resolve_agent(machine)
    log = SqliteEventLog(db)
    try:
        where = f"fd {fd}" if fd is not None else f"ws://{host}:{port}/voice"
        print(f"fsm-voice: serving {where} ({machine}), log in {db}", flush=True)
        run_server(create_app(log, agent=agent, machine_name=machine), host, port, fd)
    finally:
        log.close()
    return 0
