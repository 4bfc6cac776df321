"""`fsm-voice call MACHINE --to +E164`: an outbound call through Twilio, served here.

The server (`/voice` and Twilio's webhooks) starts first; then the call is created
over REST with TwiML that streams back to `/voice` (call id, per-call token and
machine as `<Parameter>`s), status callbacks to `/status` and, with `--amd`,
asynchronous answering-machine detection posting to `/amd`. The command returns once
Twilio reports the call's final status (or, if that never comes, a bounded time
after the stream ended).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fsm_voice.commands.options import DEFAULT_DB
from fsm_voice.commands.registry import Command
from fsm_voice.errors import ConfigError

# The server, Twilio, the machine and the providers load when a call is made:
# `fsm-voice` imports this module to build its parser.
if TYPE_CHECKING:
    import anyio

    from fsm_voice.call.config import SecuritySettings
    from fsm_voice.clock import Clock, IdSource
    from fsm_voice.conversation.language.spec import MachineSpec
    from fsm_voice.eventlog.base import EventLog
    from fsm_voice.providers.base import SpeechRecognizer, SpeechSynthesizer
    from fsm_voice.twilio.outbound import OutboundCall
    from fsm_voice.twilio.settings import TwilioSettings
    from fsm_voice.twilio.webhooks import TwilioService, TwilioWebhooks

__all__ = [
    "COMMAND",
    "OutboundResult",
    "call",
    "run_call_command",
    "run_outbound_call",
    "twilio_service_from_args",
]

_E164 = re.compile(r"\+[1-9]\d{6,14}\Z")
FINAL_STATUS_WAIT_MS = 10_000  # after the stream ends, how long Twilio may take to say so


@dataclass(frozen=True)
class OutboundResult:
    call_id: str  # ours, passed in the stream's parameters
    call_sid: str  # Twilio's; also the id of the call's webhook events in the log
    stream_call_id: str | None  # the media stream's call in the log (None: never streamed)
    status: str | None  # Twilio's final status (None: it never arrived)
    end_reason: str | None  # how the stream ended


async def run_outbound_call(
    settings: TwilioSettings,
    spec: MachineSpec,
    to: str,
    log: EventLog,
    *,
    recognizer: Callable[[], SpeechRecognizer],
    synthesizer: SpeechSynthesizer,
    amd: bool = False,
    host: str = "127.0.0.1",
    port: int = 8080,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    on_placed: Callable[[OutboundCall], None] | None = None,
    mask_phone_numbers: bool = False,
) -> OutboundResult:
    """Serve `spec`, place the call to `to`, and run until it is over."""
    import anyio
    import anyio.to_thread

    from fsm_voice.call.handle import CallHandle
    from fsm_voice.clock import RandomIds, SystemClock
    from fsm_voice.conversation.runner import conversation_agent
    from fsm_voice.server import create_app, serve_in_background
    from fsm_voice.twilio.outbound import place_call
    from fsm_voice.twilio.webhooks import TwilioService

    clock = clock or SystemClock()
    ids = ids or RandomIds()
    service = TwilioService.from_settings(settings)
    agent = conversation_agent(
        spec, recognizer=recognizer, synthesizer=synthesizer, telephony=service.telephony
    )
    streams: list[CallHandle] = []
    stream_ended = anyio.Event()
    placed: list[OutboundCall] = []

    def on_call(call: CallHandle) -> None:
        def ended(_: str) -> None:
            if placed and call.call_sid == placed[0].call_sid:
                streams.append(call)
                stream_ended.set()

        call.on_end(ended)

    app = create_app(
        log,
        agent=agent,
        machine_name=spec.name,
        machine_version=spec.version,
        clock=clock,
        ids=ids,
        on_call=on_call,
        security=settings.security(mask_phone_numbers=mask_phone_numbers),
        twilio=service,
    )
    hooks: TwilioWebhooks = app.state.twilio
    async with serve_in_background(app, host, port):
        outbound = await anyio.to_thread.run_sync(
            lambda: place_call(
                settings, to, spec.name, ids, amd=amd, rest=service.telephony.rest, clock=clock
            )
        )
        placed.append(outbound)
        if on_placed is not None:
            on_placed(outbound)
        status = await _wait_over(hooks, outbound.call_sid, stream_ended, clock)
        await log.flush()
    stream = streams[0] if streams else None
    return OutboundResult(
        outbound.call_id,
        outbound.call_sid,
        stream.call_id if stream else None,
        status,
        stream.end_reason if stream else None,
    )


async def _wait_over(
    hooks: TwilioWebhooks, call_sid: str, stream_ended: anyio.Event, clock: Clock
) -> str | None:
    """Twilio's final status; after the stream ends, waited for a bounded time only."""
    import anyio

    status: str | None = None
    async with anyio.create_task_group() as tg:

        async def final() -> None:
            nonlocal status
            status = await hooks.wait_final(call_sid)
            tg.cancel_scope.cancel()

        tg.start_soon(final)
        await stream_ended.wait()
        clock.call_later(FINAL_STATUS_WAIT_MS, tg.cancel_scope.cancel)
    return status


def call(
    machine: Path,
    to: str,
    db: Path,
    *,
    public_url: str | None,
    amd: bool,
    host: str,
    port: int,
    providers: str,
    verify_signatures: bool = True,
) -> int:
    """The `fsm-voice call` command."""
    import anyio

    from fsm_voice.agents.machines import require_credentials
    from fsm_voice.conversation.language.loader import load_machine
    from fsm_voice.eventlog.sqlite import SqliteEventLog
    from fsm_voice.providers import create_recognizer, create_synthesizer
    from fsm_voice.security import mask_phone
    from fsm_voice.shipped import resolve_machine
    from fsm_voice.twilio.settings import TwilioSettings

    try:
        require_credentials(providers)
        settings = TwilioSettings.from_env(
            public_url=public_url, verify_signatures=verify_signatures
        )
        spec = load_machine(resolve_machine(machine))
    except ConfigError as error:
        print(f"fsm-voice call: {error}")
        return 1
    log = SqliteEventLog(db)

    def placed(outbound: OutboundCall) -> None:
        print(
            f"fsm-voice call: calling {mask_phone(to)} with {spec.name}: "
            f"call {outbound.call_id}, Twilio {outbound.call_sid}",
            flush=True,
        )

    print(f"fsm-voice call: serving {settings.voice_url} and webhooks on {host}:{port}")
    try:
        result = anyio.run(
            lambda: run_outbound_call(
                settings,
                spec,
                to,
                log,
                recognizer=lambda: create_recognizer(providers),
                synthesizer=create_synthesizer(providers),
                amd=amd,
                host=host,
                port=port,
                on_placed=placed,
            )
        )
    finally:
        log.close()
    _report(result, db)
    return 0 if result.status in (None, "completed") else 1


def _report(result: OutboundResult, db: Path) -> None:
    print(
        f"fsm-voice call: Twilio status {result.status or 'unknown'}, "
        f"stream ended: {result.end_reason or 'never connected'}"
    )
    print("inspect it:")
    commands = [f"fsm-voice events {result.call_sid} --db {db}   # Twilio's webhooks"]
    if result.stream_call_id:
        commands += [
            f"fsm-voice events {result.stream_call_id} --db {db}",
            f"fsm-voice replay --db {db} --call {result.stream_call_id}",
        ]
    for command in commands:
        print(f"  {command}")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("machine", type=Path, metavar="MACHINE", help="a machines/*.yaml file")
    parser.add_argument("--to", required=True, help="the number to call (E.164: +15551234567)")
    add_twilio_options(parser)
    parser.add_argument("--amd", action="store_true", help="answering-machine detection (async)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("VOICE_SERVER_PORT", 8080)))
    parser.add_argument("--db", default=DEFAULT_DB, help="event log (default: %(default)s)")
    parser.add_argument(
        "--providers",
        default="offline",
        choices=("offline", "scripted", "elevenlabs", "azure"),
        help="speech providers (cloud ones read their keys from the env)",
    )


def add_twilio_options(parser: argparse.ArgumentParser) -> None:
    """--public-url and the signature dev switch (shared by `call` and `serve`)."""
    parser.add_argument(
        "--public-url",
        default=os.environ.get("VOICE_PUBLIC_URL"),
        help="the https URL Twilio reaches this server at; webhook signatures are checked "
        "against it (default: $VOICE_PUBLIC_URL, or derived from $VOICE_STREAM_URL)",
    )
    parser.add_argument(
        "--no-verify-signatures",
        action="store_true",
        help="development only: accept webhooks without a valid X-Twilio-Signature",
    )


def run_call_command(args: argparse.Namespace) -> int:
    if not _E164.match(args.to):
        print(f"fsm-voice call: --to must be an E.164 number like +15551234567, not {args.to!r}")
        return 2
    return call(
        args.machine,
        args.to,
        Path(args.db),
        public_url=args.public_url,
        amd=args.amd,
        host=args.host,
        port=args.port,
        providers=args.providers,
        verify_signatures=not args.no_verify_signatures,
    )


def twilio_service_from_args(args: argparse.Namespace, security: SecuritySettings) -> TwilioService:
    """Twilio for `fsm-voice serve --twilio` (inbound calls through `/twiml`): the
    webhooks live at the https twin of `serve`'s wss `--public-url`, and the dev switch
    is `serve`'s `--insecure-dev`."""
    from fsm_voice.twilio.settings import TwilioSettings, http_base
    from fsm_voice.twilio.webhooks import TwilioService

    settings = TwilioSettings.from_env(
        public_url=http_base(security.public_url) if security.public_url else None,
        stream_url=security.public_url,
        stream_key=security.stream_key,
        verify_signatures=not security.insecure_dev,
    )
    return TwilioService.from_settings(settings)


COMMAND = Command(
    "call",
    help="place an outbound call through Twilio and serve its conversation",
    epilog="Example:\n  fsm-voice call machines/appointment.yaml --to +15551234567 "
    "--public-url https://voice.example.com --amd\n"
    "(credentials: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER)",
    arguments=_arguments,
    run=run_call_command,
)
