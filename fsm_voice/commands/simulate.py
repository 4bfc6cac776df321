"""`fsm-voice simulate`: one call to a `/voice` URL from the phone simulator.

The caller streams a WAV, silence and keys, or follows a caller script (`--caller`).
The agent ending the call is the usual end of a finished conversation: exit 0, as
when the caller hangs up; exit 1 when a caller script could not finish. The server's
id for the call is printed (an fsm_voice server names it in the upgrade's response),
so the call can be looked up in its log.

`--auth-token` signs the call the way Twilio does: the token comes from an environment
variable (TWILIO_AUTH_TOKEN unless another is named), never the command line, which
`ps` and shell history show.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fsm_voice.commands.registry import Command
from fsm_voice.errors import ConfigError

if TYPE_CHECKING:  # the simulator, the providers and the signatures load when a call is made
    from fsm_voice.security import Secret
    from fsm_voice.simulator.caller import StepEvent
    from fsm_voice.simulator.caller_script import CallerScript
    from fsm_voice.simulator.client import SimulationResult

__all__ = ["COMMAND", "auth_token", "simulate"]

TOKEN_VARIABLE: Final = "TWILIO_AUTH_TOKEN"
VOICES: Final = ("offline", "scripted")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _arguments(simulate: argparse.ArgumentParser) -> None:
    simulate.add_argument("--url", required=True, help="the ws:// or wss:// URL to dial")
    simulate.add_argument("--wav", type=Path, help="caller audio (any WAV)")
    simulate.add_argument("--seconds", type=float, help="seconds of caller silence")
    simulate.add_argument("--dtmf", default="", help="keys to press after the audio")
    simulate.add_argument(
        "--caller",
        type=Path,
        metavar="SCRIPT",
        help="follow a caller script (callers/*.yaml) instead of --wav/--seconds/--dtmf",
    )
    simulate.add_argument(
        "--voice",
        choices=VOICES,
        default="offline",
        help="the TTS the --caller script speaks with (default: %(default)s)",
    )
    simulate.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a <Parameter> for the start message (repeatable)",
    )
    simulate.add_argument(
        "--auth-token",
        nargs="?",
        const=TOKEN_VARIABLE,
        metavar="ENV_VAR",
        help="sign the call as Twilio does, with the auth token in this environment variable "
        f"(default {TOKEN_VARIABLE}; never the token itself): X-Twilio-Signature on the "
        "upgrade, and the stream token from the server's /twiml webhook (or minted from the "
        "auth token, or FSM_VOICE_STREAM_KEY, when the server has no webhooks)",
    )
    simulate.add_argument(
        "--signed-url",
        help="the server's public stream URL, which it checks signatures against "
        "(default: the TwiML's stream URL, else the wss:// twin of --url)",
    )
    simulate.add_argument("--record", type=Path, help="write what the caller heard to a WAV")


def auth_token(name: str | None, environ: Mapping[str, str]) -> Secret | None:
    """The token `--auth-token NAME` names, read from the environment."""
    from fsm_voice.security import Secret

    if name is None:
        return None
    token = Secret.from_env(name, environ) if _ENV_NAME.fullmatch(name) else None
    if token is None:
        # Never echo `name`: it may be a token pasted by mistake.
        unset = (
            f"${name} is not set"
            if name == TOKEN_VARIABLE
            else "no environment variable of that name is set"
        )
        raise ConfigError(
            f"--auth-token: {unset} (--auth-token takes the name of the environment "
            f"variable holding the token, default {TOKEN_VARIABLE}, never the token itself)"
        )
    return token


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE")
        params[name] = value
    return params


def simulate(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    import anyio

    from fsm_voice.shipped import resolve_caller
    from fsm_voice.simulator.caller_script import load_caller_script

    env = os.environ if environ is None else environ
    if not args.url.startswith(("ws://", "wss://")):
        raise ConfigError(f"--url must be a ws:// or wss:// URL, not {args.url!r}")
    if args.caller is not None and (args.wav or args.seconds or args.dtmf):
        raise ConfigError("--caller follows its script: leave out --wav, --seconds and --dtmf")
    params = _params(args.param)
    token = auth_token(args.auth_token, env)
    script = load_caller_script(resolve_caller(args.caller)) if args.caller is not None else None
    return anyio.run(_call, args, params, token, script, env)


async def _call(
    args: argparse.Namespace,
    params: dict[str, str],
    token: Secret | None,
    script: CallerScript | None,
    env: Mapping[str, str],
) -> int:
    from fsm_voice.clock import RandomIds, SystemClock
    from fsm_voice.providers import create_synthesizer
    from fsm_voice.security import Secret
    from fsm_voice.simulator.client import simulate_call
    from fsm_voice.twilio.simulated_inbound import stream_setup, wss_url

    clock, ids = SystemClock(), RandomIds()
    call_sid, account_sid = ids.new_id("CA"), ids.new_id("AC")
    signed_url = args.signed_url
    if token is not None:
        setup = await stream_setup(
            args.url,
            token,
            signed_url=signed_url or wss_url(args.url),
            call_sid=call_sid,
            account_sid=account_sid,
            stream_key=Secret.from_env("FSM_VOICE_STREAM_KEY", env),
            clock=clock,
            ids=ids,
        )
        print(f"stream parameters: {setup.origin}")
        params = setup.parameters | params
        signed_url = signed_url or setup.stream_url or wss_url(args.url)
    voice = None
    if script is not None:
        # A script that says nothing needs no speech model.
        kind = args.voice if script.lines() else "scripted"
        voice = create_synthesizer(kind, **({"deterministic": True} if kind == "offline" else {}))
    try:
        result = await simulate_call(
            args.url,
            wav=args.wav,
            seconds=args.seconds,
            dtmf=args.dtmf,
            custom_parameters=params,
            auth_token=token.reveal() if token is not None else None,
            signed_url=signed_url,
            record_path=args.record,
            clock=clock,
            ids=ids,
            call_sid=call_sid,
            account_sid=account_sid,
            script=script,
            voice=voice,
            on_step=_print_step,
        )
    finally:
        if voice is not None:
            await voice.stop()
    return _report(result)


def _print_step(event: StepEvent) -> None:
    if event.phase == "started":
        return
    what = event.step.describe()
    detail = f": {event.detail}" if event.detail and event.detail != what else ""
    print(f"  {event.t_ms / 1000:7.3f}s  {what} {event.phase}{detail}")


def _report(result: SimulationResult) -> int:
    call_id = result.call_id or "unknown (the server did not name it)"
    print(f"call_id {call_id}  CallSid {result.call_sid}  stream {result.stream_sid}")
    print(f"  frames sent {result.frames_sent}, agent audio heard {result.bytes_played} bytes")
    ender = "the caller hung up" if result.hung_up else "the agent ended the call"
    print(f"  marks echoed {len(result.marks_echoed)}, {ender} (close code {result.close_code})")
    for error in result.protocol_errors:
        print(f"  protocol error from the server: {error}")
    caller = result.caller
    if caller is None:
        return 0
    done = f"{caller.steps_done}/{caller.steps_total} steps"
    if caller.failure:
        print(f"caller script {caller.script} FAILED after {done}: {caller.failure}")
        return 1
    print(f"caller script {caller.script}: {done} done")
    return 0


COMMAND = Command(
    "simulate",
    help="dial a /voice URL with the phone simulator",
    epilog="Example:\n  fsm-voice simulate --url ws://127.0.0.1:8080/voice --wav caller.wav "
    "--dtmf 12# --record heard.wav\n"
    "  fsm-voice simulate --url ws://127.0.0.1:8080/voice --caller callers/ivr-balance.yaml\n"
    "  TWILIO_AUTH_TOKEN=… fsm-voice simulate --url ws://127.0.0.1:8080/voice --auth-token",
    arguments=_arguments,
    run=simulate,
)
