"""`fsm-voice call MACHINE --to +E164`: an outbound call through Twilio, served here.

The server (`/voice` and Twilio's webhooks) starts first; then the call is created
over REST with TwiML that streams back to `/voice` (call id, per-call token and
machine as `<Parameter>`s), status callbacks to `/status` and, with `--amd`,
asynchronous answering-machine detection posting to `/amd`. The command returns once
Twilio reports the call's final status (or, if that never comes, a bounded time
after the stream ended).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from fsm_voice.clock import Clock, IdSource, RandomIds, SystemClock
from fsm_voice.conversation.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.conversation.spec import MachineSpec
from fsm_voice.errors import ConfigError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.providers.base import SpeechRecognizer, SpeechSynthesizer
from fsm_voice.runtime.handle import CallHandle
from fsm_voice.security import mask_phone
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.twilio.outbound import OutboundCall, place_call
from fsm_voice.twilio.settings import TwilioSettings
from fsm_voice.twilio.webhooks import TwilioService, TwilioWebhooks

__all__ = ["OutboundResult", "call", "run_outbound_call"]

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
) -> OutboundResult:
    """Serve `spec`, place the call to `to`, and run until it is over."""
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
        twilio=service,
    )
    hooks: TwilioWebhooks = app.state.twilio
    async with serve_in_background(app, host, port):
        outbound = await anyio.to_thread.run_sync(
            lambda: place_call(settings, to, spec.name, ids, amd=amd, rest=service.telephony.rest)
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
    from fsm_voice.providers import create_recognizer, create_synthesizer

    try:
        settings = TwilioSettings.from_env(
            public_url=public_url, verify_signatures=verify_signatures
        )
        spec = load_machine(machine)
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
