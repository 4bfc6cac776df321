"""`fsm-voice serve`, with its security and limit options."""
# The server, the log, the call settings and the agents load in `serve()`: every
# `fsm-voice` command builds this parser, and most of them never serve.

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from fsm_voice.commands.options import DEFAULT_DB
from fsm_voice.commands.registry import Command
from fsm_voice.errors import ConfigError

if TYPE_CHECKING:
    from fsm_voice.call.config import Limits, SecuritySettings
    from fsm_voice.call.runtime import Agent
    from fsm_voice.conversation.telephony import Telephony
    from fsm_voice.twilio.webhooks import TwilioService

__all__ = ["COMMAND", "add_security_arguments", "serve", "server_settings", "startup_warnings"]

MAX_CALL_SECONDS = 4 * 3600  # Twilio's own cap on a call's length
IDLE_TIMEOUT_SECONDS = 15.0  # Twilio sends media every 20 ms: this much silence is a dead peer
MAX_CALLS = 1000
# Limits().max_message_bytes, spelled here so that the parser does not load the call
# package (tests/test_cli_registry.py checks the two agree).
MAX_MESSAGE_BYTES: Final = 256 * 1024
PROVIDERS: Final = ("offline", "scripted", "elevenlabs", "azure")


def env_flag(value: str) -> bool:
    """As `fsm_voice.call.config.env_flag` (tests/test_cli_registry.py checks they agree):
    1, true, yes or on (any case) is on."""
    return value.strip().lower() in ("1", "true", "yes", "on")


def add_security_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """`serve`'s security and limit options; each falls back to an environment variable.

    The auth token and the stream key are read from the environment only: a value on
    the command line would show in `ps` and in shell history.
    """
    env = environ.get
    group = parser.add_argument_group(
        "security (TWILIO_AUTH_TOKEN and FSM_VOICE_STREAM_KEY come from the environment)"
    )
    group.add_argument(
        "--public-url",
        default=env("VOICE_STREAM_URL"),
        help="the public wss:// URL Twilio streams to, which it signs "
        "(env VOICE_STREAM_URL; default: wss:// + the Host header + the path)",
    )
    group.add_argument(
        "--require-signature",
        action=argparse.BooleanOptionalAction,
        default=_tri_state(env("FSM_VOICE_REQUIRE_SIGNATURE")),
        help="refuse to start without TWILIO_AUTH_TOKEN, so no upgrade goes unverified "
        "(env FSM_VOICE_REQUIRE_SIGNATURE=1/0; default: on whenever --public-url is given)",
    )
    group.add_argument(
        "--insecure-dev",
        action="store_true",
        default=env_flag(env("FSM_VOICE_INSECURE", "")),
        help="DEVELOPMENT ONLY: accept unsigned upgrades and starts without a stream token "
        "(env FSM_VOICE_INSECURE=1)",
    )
    group.add_argument(
        "--mask-phone-numbers",
        action="store_true",
        default=env_flag(env("FSM_VOICE_MASK_PHONE_NUMBERS", "")),
        help="log phone numbers as +********4567 (env FSM_VOICE_MASK_PHONE_NUMBERS=1)",
    )
    limits = parser.add_argument_group("limits (0: none)")
    limits.add_argument(
        "--max-message-bytes",
        type=int,
        default=int(env("FSM_VOICE_MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES)),
        help="a bigger WebSocket message closes its socket with 1009 (default: %(default)s)",
    )
    limits.add_argument(
        "--max-calls",
        type=int,
        default=int(env("FSM_VOICE_MAX_CALLS", MAX_CALLS)),
        help="concurrent calls; one more upgrade gets HTTP 503 (default: %(default)s)",
    )
    limits.add_argument(
        "--max-call-seconds",
        type=float,
        default=float(env("FSM_VOICE_MAX_CALL_SECONDS", MAX_CALL_SECONDS)),
        help="a call is hung up after this long (default: %(default)s)",
    )
    limits.add_argument(
        "--idle-timeout-seconds",
        type=float,
        default=float(env("FSM_VOICE_IDLE_TIMEOUT_SECONDS", IDLE_TIMEOUT_SECONDS)),
        help="a stream that sends nothing for this long is hung up (default: %(default)s)",
    )


def server_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[SecuritySettings, Limits]:
    """The settings `serve` runs with: parsed options over the environment's secrets."""
    from fsm_voice.call.config import Limits, SecuritySettings

    from_env = SecuritySettings.from_env(os.environ if environ is None else environ)
    security = SecuritySettings(
        auth_token=from_env.auth_token,
        public_url=args.public_url or None,
        stream_key=from_env.stream_key,
        insecure_dev=args.insecure_dev,
        mask_phone_numbers=args.mask_phone_numbers,
        stream_token_ttl_ms=from_env.stream_token_ttl_ms,
    )
    if security.public_url is not None and not security.public_url.startswith("wss://"):
        raise ConfigError(f"--public-url must be a wss:// URL, not {security.public_url!r}")
    _check_required_signature(args, security)
    limits = Limits(
        max_message_bytes=args.max_message_bytes,
        max_concurrent_calls=args.max_calls,
        max_call_ms=round(args.max_call_seconds * 1000),
        idle_stream_ms=round(args.idle_timeout_seconds * 1000),
    )
    return security, limits


def _tri_state(value: str | None) -> bool | None:
    """An on/off variable that may be unset (None: the option's own default)."""
    return None if value is None or not value.strip() else env_flag(value)


def _check_required_signature(args: argparse.Namespace, security: SecuritySettings) -> None:
    """A server that must verify upgrades does not start unable to (fails closed).

    Required by default once a public URL says the server faces Twilio."""
    required = args.require_signature
    if required is None:
        required = security.public_url is not None and not security.insecure_dev
    if not required:
        return
    if security.insecure_dev:
        raise ConfigError("--require-signature and --insecure-dev contradict each other")
    if security.auth_token is None:
        raise ConfigError(
            "signatures are required (--require-signature, on by default with --public-url)"
            " but TWILIO_AUTH_TOKEN is not set: set it in the environment, or pass"
            " --no-require-signature to serve unverified"
        )


def startup_warnings(security: SecuritySettings) -> list[str]:
    """What `serve` must shout before it takes calls unchecked."""
    if security.insecure_dev:
        return [
            "WARNING: --insecure-dev: X-Twilio-Signature and stream tokens are NOT checked; "
            "anyone who reaches /voice can open a call. Never run this in production."
        ]
    if security.auth_token is None:
        return [
            "WARNING: TWILIO_AUTH_TOKEN is not set: /voice upgrades are NOT verified. "
            "Set it in production (and VOICE_STREAM_URL to the public wss:// URL)."
        ]
    return []


def resolve_agent(
    machine: str,
    providers: str = "offline",
    telephony: Telephony | None = None,
    stt_secondary: str | None = None,
) -> tuple[Agent, str, str | None]:
    """The agent for `--machine`: a built-in name or a conversation machine file."""
    from fsm_voice.agents import BUILTIN

    if machine in BUILTIN:
        return BUILTIN[machine], machine, None
    from fsm_voice.shipped import resolve_machine, shipped_names

    if machine.endswith((".yaml", ".yml")) or machine in shipped_names("machines"):
        from fsm_voice.agents.machines import machine_agent

        return machine_agent(resolve_machine(machine), providers, telephony, stt_secondary)
    known = ", ".join(sorted(BUILTIN))
    shipped = ", ".join(shipped_names("machines"))
    raise ConfigError(
        f"unknown machine {machine!r} (a machines/*.yaml file, a shipped machine: {shipped}; "
        f"or built in: {known})"
    )


def serve(
    host: str,
    port: int,
    db: Path,
    machine: str,
    fd: int | None = None,
    providers: str = "offline",
    security: SecuritySettings | None = None,
    limits: Limits | None = None,
    stderr: TextIO | None = None,
    twilio: TwilioService | None = None,
    stt_secondary: str | None = None,
) -> int:
    from fsm_voice.call.config import SecuritySettings

    security = security if security is not None else SecuritySettings.from_env()
    for warning in startup_warnings(security):
        print(f"fsm-voice serve: {warning}", file=stderr or sys.stderr, flush=True)
    from fsm_voice.eventlog.sqlite import SqliteEventLog
    from fsm_voice.server import create_app, run_server

    telephony = twilio.telephony if twilio is not None else None
    agent, name, version = resolve_agent(machine, providers, telephony, stt_secondary)
    log = SqliteEventLog(db)
    try:
        where = f"fd {fd}" if fd is not None else f"ws://{host}:{port}/voice"
        checks = "signatures checked" if security.verifies else "signatures NOT checked"
        print(f"fsm-voice: serving {where} ({name}, {checks}), log in {db}", flush=True)
        if twilio is not None:
            hooks = twilio.settings.webhook_url("/twiml")
            print(f"fsm-voice: Twilio webhooks on, point the number's voice URL at {hooks}")
        app = create_app(
            log,
            agent=agent,
            machine_name=name,
            machine_version=version,
            security=security,
            limits=limits,
            twilio=twilio,
        )
        run_server(app, host, port, fd)
    finally:
        log.close()
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    port = int(os.environ.get("VOICE_SERVER_PORT", 8080))
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--db", default=DEFAULT_DB, help="event log (default: %(default)s)")
    parser.add_argument(
        "--machine", default="echo", help="a machines/*.yaml file, or echo (default: echo)"
    )
    parser.add_argument(
        "--providers",
        default="offline",
        choices=PROVIDERS,
        help="speech providers for a machine file (cloud ones read their keys from the env)",
    )
    parser.add_argument(
        "--stt-secondary",
        choices=PROVIDERS,
        help="a second recogniser on the same audio, logged for comparison (secondary_*"
        " events), never driving the call",
    )
    parser.add_argument("--fd", type=int, help="serve on an inherited listening socket (systemd)")
    add_security_arguments(parser, os.environ)
    parser.add_argument(
        "--twilio",
        action="store_true",
        help="also answer Twilio's webhooks: /twiml (inbound calls), /status, /amd "
        "(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER; webhooks live at "
        "the https twin of --public-url)",
    )


def _run(args: argparse.Namespace) -> int:
    from fsm_voice.commands.call import twilio_service_from_args

    security, limits = server_settings(args)
    twilio = twilio_service_from_args(args, security) if args.twilio else None
    return serve(
        args.host,
        args.port,
        Path(args.db),
        args.machine,
        args.fd,
        args.providers,
        security=security,
        limits=limits,
        twilio=twilio,
        stt_secondary=args.stt_secondary,
    )


COMMAND = Command(
    "serve",
    help="serve the /voice Media Streams WebSocket",
    epilog="Example:\n  fsm-voice serve --port 8080 --db calls.db --machine echo\n"
    "  TWILIO_AUTH_TOKEN=… fsm-voice serve --public-url wss://voice.example.com/voice "
    "--mask-phone-numbers --max-calls 200",
    arguments=_arguments,
    run=_run,
)
