"""`fsm-voice serve`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fsm_voice.agents import BUILTIN
from fsm_voice.errors import ConfigError
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.runtime.call import Agent
from fsm_voice.server import create_app, run_server

if TYPE_CHECKING:
    from fsm_voice.conversation.telephony import Telephony
    from fsm_voice.twilio.webhooks import TwilioService


def resolve_agent(
    machine: str, providers: str = "offline", telephony: Telephony | None = None
) -> tuple[Agent, str, str | None]:
    """The agent for `--machine`: a built-in name or a conversation machine file."""
    if machine in BUILTIN:
        return BUILTIN[machine], machine, None
    if machine.endswith((".yaml", ".yml")):
        from fsm_voice.commands.machines import machine_agent

        return machine_agent(Path(machine), providers, telephony)
    known = ", ".join(sorted(BUILTIN))
    raise ConfigError(f"unknown machine {machine!r} (a machines/*.yaml file, or built in: {known})")


def serve(
    host: str,
    port: int,
    db: Path,
    machine: str,
    fd: int | None = None,
    providers: str = "offline",
    twilio: TwilioService | None = None,
) -> int:
    telephony = twilio.telephony if twilio is not None else None
    agent, name, version = resolve_agent(machine, providers, telephony)
    log = SqliteEventLog(db)
    try:
        where = f"fd {fd}" if fd is not None else f"ws://{host}:{port}/voice"
        print(f"fsm-voice: serving {where} ({name}), log in {db}", flush=True)
        if twilio is not None:
            hooks = twilio.settings.webhook_url("/twiml")
            print(f"fsm-voice: Twilio webhooks on, point the number's voice URL at {hooks}")
        app = create_app(
            log, agent=agent, machine_name=name, machine_version=version, twilio=twilio
        )
        run_server(app, host, port, fd)
    finally:
        log.close()
    return 0
