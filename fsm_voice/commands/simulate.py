"""`fsm-voice simulate`."""

from __future__ import annotations

import argparse

import anyio

from fsm_voice.errors import ConfigError
from fsm_voice.simulator.client import simulate_call


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE")
        params[name] = value
    return params


def simulate(args: argparse.Namespace) -> int:
    params = _params(args.param)

    async def call() -> None:
        result = await simulate_call(
            args.url,
            wav=args.wav,
            seconds=args.seconds,
            dtmf=args.dtmf,
            custom_parameters=params,
            auth_token=args.auth_token,
            signed_url=args.signed_url,
            record_path=args.record,
        )
        print(f"call {result.call_sid} stream {result.stream_sid}")
        print(f"  frames sent {result.frames_sent}, agent audio heard {result.bytes_played} bytes")
        print(f"  marks echoed {len(result.marks_echoed)}, closed with {result.close_code}")
        for error in result.protocol_errors:
            print(f"  protocol error from the server: {error}")

    anyio.run(call)
    return 0
