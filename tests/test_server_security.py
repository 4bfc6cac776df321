"""`/voice` security over real sockets: the upgrade signature, the per-call stream token,
refusals counted per minute, and what the event log never holds (credentials,
unmasked phone numbers)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from starlette.applications import Starlette

from fsm_voice.agents.echo import echo_agent
from fsm_voice.call.config import SecuritySettings, derive_stream_key
from fsm_voice.call.socket import MessageSocket
from fsm_voice.clock import Clock, RandomIds, SystemClock, VirtualClock
from fsm_voice.commands.serve import server_settings, startup_warnings
from fsm_voice.errors import ConfigError, SocketClosed
from fsm_voice.eventlog.query import call_events, track_pcm_mulaw
from fsm_voice.eventlog.records import CallRecord, RefusalCount
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.security import Secret, call_token
from fsm_voice.server import RunningServer, create_app, serve_in_background
from fsm_voice.server.endpoint import VoiceEndpoint
from fsm_voice.simulator.client import DialRejected, dial
from fsm_voice.simulator.phone import PhoneSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.real_server]

AUTH_TOKEN = "auth-0123456789abcdef-SECRET"
PUBLIC_URL = "wss://voice.example.com/voice"
CALLER = "+358401234567"
CALLED = "+14155550100"
SAID = bytes(range(160)) * 10


class Server:
    def __init__(self, running: RunningServer, app: Starlette, log: SqliteEventLog) -> None:
        self.running = running
        self.endpoint: VoiceEndpoint = app.state.voice
        self.log = log

    @property
    def url(self) -> str:
        return self.running.url

    def phone(self, socket: MessageSocket, **params: str) -> PhoneSimulator:
        return PhoneSimulator(socket, SystemClock(), RandomIds(), custom_parameters=params)

    def finished_call(self, index: int = 0) -> CallRecord:
        call = self.log.call(self.endpoint.finished[index])
        assert call is not None
        return call

    async def refusals(self) -> list[tuple[str, int, int]]:
        """The refusals counted in the log: (reason, status, count) per minute."""
        await self.log.flush()
        return [(r.reason, r.status, r.count) for r in self.log.refusals()]


@asynccontextmanager
async def serving(
    tmp_path: Path, security: SecuritySettings | None, clock: Clock | None = None
) -> AsyncIterator[Server]:
    log = SqliteEventLog(tmp_path / "calls.db")
    app = create_app(
        log, agent=echo_agent(mark_every=10), machine_name="test", security=security, clock=clock
    )
    try:
        async with serve_in_background(app) as running:
            yield Server(running, app, log)
    finally:
        log.close()


def signed(**overrides: object) -> SecuritySettings:
    options: dict[str, object] = {"auth_token": Secret(AUTH_TOKEN), "public_url": PUBLIC_URL}
    options.update(overrides)
    return SecuritySettings(**options)  # type: ignore[arg-type]


def token_params(
    settings: SecuritySettings,
    call_id: str = "FVcall1",
    *,
    issued_ms: int | None = None,
    call_sid: str | None = None,
) -> dict[str, str]:
    """A `start`'s parameters with a token minted now (or at `issued_ms`)."""
    key = settings.effective_stream_key
    assert key is not None
    issued = SystemClock().wall_ms() if issued_ms is None else issued_ms
    token = call_token(key, call_id, issued_ms=issued, call_sid=call_sid)
    return {"call_id": call_id, "token": token, "machine": "echo"}


async def echo_call(server: Server, socket: MessageSocket, **params: str) -> PhoneSimulator:
    sim = server.phone(socket, **params)
    async with sim:
        await sim.send_audio(SAID)
        await sim.wait_played_bytes(len(SAID))
    return sim


# --- the upgrade signature ---


async def test_a_signed_upgrade_with_its_token_holds_a_call(tmp_path: Path) -> None:
    settings = signed()
    async with serving(tmp_path, settings) as server:
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as socket:
            sim = await echo_call(server, socket, **token_params(settings))
        await server.endpoint.wait_finished(1)
        call = server.finished_call()
        assert bytes(sim.played) == SAID
        assert call.end_reason == "caller_hangup"
        accepted = call_events(server.log, call.call_id, kind="upgrade_accepted")
        assert [e.data for e in accepted] == [{"verified": True}]


@pytest.mark.parametrize(
    ("auth_token", "signed_url", "reason"),
    [
        (None, None, "signature_missing"),
        ("another-accounts-token", PUBLIC_URL, "signature_invalid"),
        (AUTH_TOKEN, "wss://attacker.example.com/voice", "signature_invalid"),
        (AUTH_TOKEN, None, "signature_invalid"),  # signed over the local ws:// address
    ],
)
async def test_an_unsigned_or_missigned_upgrade_is_refused_with_403_before_accept(
    tmp_path: Path, auth_token: str | None, signed_url: str | None, reason: str
) -> None:
    async with serving(tmp_path, signed()) as server:
        with pytest.raises(DialRejected) as refused:
            async with dial(server.url, auth_token=auth_token, signed_url=signed_url):
                pass
        assert refused.value.status == 403
        assert not server.endpoint.finished  # no call ever ran
        assert await server.refusals() == [(reason, 403, 1)]
        assert server.log.calls() == []  # a refusal is counted, never a call of its own


async def test_without_a_public_url_the_host_header_names_the_signed_url(tmp_path: Path) -> None:
    async with serving(tmp_path, signed(public_url=None)) as server:
        host = f"{server.running.host}:{server.running.port}"
        url = f"{server.url}?tenant=a"
        as_twilio_saw_it = f"wss://{host}/voice?tenant=a"
        async with dial(url, auth_token=AUTH_TOKEN, signed_url=as_twilio_saw_it) as socket:
            await echo_call(server, socket, **token_params(signed()))
        # The query string is part of what Twilio signs: a changed one is refused.
        with pytest.raises(DialRejected):
            async with dial(f"{server.url}?tenant=b", auth_token=AUTH_TOKEN, signed_url=url):
                pass
        await server.endpoint.wait_finished(1)
        assert server.finished_call().end_reason == "caller_hangup"


async def test_refused_upgrades_leave_a_live_call_untouched(tmp_path: Path) -> None:
    settings = signed()
    async with serving(tmp_path, settings) as server:
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as socket:
            sim = server.phone(socket, **token_params(settings))
            async with sim:
                await sim.send_audio(SAID[:800])
                for _ in range(5):
                    with pytest.raises(DialRejected):
                        async with dial(server.url):
                            pass
                await sim.send_audio(SAID[800:])
                await sim.wait_played_bytes(len(SAID))
        await server.endpoint.wait_finished(1)
        assert bytes(sim.played) == SAID
        assert server.endpoint.refused == {"signature_missing": 5}
        assert server.finished_call().end_reason == "caller_hangup"


async def test_a_flood_of_refused_upgrades_is_one_row_per_minute_and_reason(
    tmp_path: Path,
) -> None:
    clock = VirtualClock()  # wall time moves only when told to: minutes are exact
    async with serving(tmp_path, signed(), clock) as server:

        async def refuse(times: int, token: str | None) -> None:
            for _ in range(times):
                with pytest.raises(DialRejected):
                    async with dial(server.url, auth_token=token, signed_url=PUBLIC_URL):
                        pass

        await refuse(30, None)
        await refuse(4, "wrong")
        await clock.advance(60_000)
        await refuse(2, None)
        await server.log.flush()
        minute = clock.wall_ms() - 60_000
        assert list(server.log.refusals()) == [
            RefusalCount(minute, "signature_invalid", 403, 4),
            RefusalCount(minute, "signature_missing", 403, 30),
            RefusalCount(minute + 60_000, "signature_missing", 403, 2),
        ]
        assert server.log.calls() == []


@pytest.mark.parametrize("host", ["[", "[::1", "::1", "voice.example.com:http", "h.test:99999"])
async def test_without_a_public_url_a_malformed_host_is_a_counted_403(
    tmp_path: Path, host: str
) -> None:
    async with serving(tmp_path, signed(public_url=None)) as server:
        status = await raw_upgrade(server.running.port, host)
        assert status == b"HTTP/1.1 403 Forbidden"  # not a 500 with a traceback
        assert await server.refusals() == [("host_invalid", 403, 1)]


async def raw_upgrade(port: int, host: str) -> bytes:
    """The status line of a signed-looking upgrade with this Host header (a client
    library would not send a malformed one)."""
    request = (
        f"GET /voice HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nX-Twilio-Signature: c2lnbmVk\r\n\r\n"
    )
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request.encode("latin-1"))
        response = b""
        while b"\r\n" not in response:
            response += await stream.receive()
    return response.split(b"\r\n")[0]


async def test_insecure_dev_accepts_unsigned_upgrades_and_logs_each_one(tmp_path: Path) -> None:
    async with serving(tmp_path, signed(insecure_dev=True)) as server:
        async with dial(server.url) as socket:  # no signature, no token
            await echo_call(server, socket)
        await server.endpoint.wait_finished(1)
        call = server.finished_call()
        assert call.end_reason == "caller_hangup"
        accepted = call_events(server.log, call.call_id, kind="upgrade_accepted")
        assert [e.data for e in accepted] == [{"verified": False, "reason": "insecure_dev"}]


async def test_without_an_auth_token_every_call_is_logged_as_unverified(tmp_path: Path) -> None:
    async with serving(tmp_path, SecuritySettings()) as server:
        async with dial(server.url) as socket:
            await echo_call(server, socket)
        await server.endpoint.wait_finished(1)
        accepted = call_events(server.log, server.finished_call().call_id, kind="upgrade_accepted")
        assert [e.data for e in accepted] == [{"verified": False, "reason": "no_auth_token"}]


# --- the per-call stream token ---


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"call_id": "FVcall1", "token": "x" * 32}, "stream_token_invalid"),
        ({"call_id": "FVcall2", "token": "TOKEN-OF-CALL-1"}, "stream_token_invalid"),
        ({"call_id": "FVcall1"}, "stream_token_missing"),
        ({"token": "TOKEN-OF-CALL-1"}, "stream_call_id_missing"),
        ({"call_id": "FVcall1", "token": "EXPIRED-TOKEN-OF-CALL-1"}, "stream_token_expired"),
        ({"call_id": "FVcall1", "token": "TOKEN-FOR-CAother"}, "stream_call_sid_mismatch"),
    ],
)
async def test_a_start_without_its_calls_token_is_closed_with_1008_and_no_audio_gets_in(
    tmp_path: Path, params: dict[str, str], reason: str
) -> None:
    settings = signed()
    now, ttl = SystemClock().wall_ms(), settings.stream_token_ttl_ms
    tokens = {
        "TOKEN-OF-CALL-1": token_params(settings),
        "EXPIRED-TOKEN-OF-CALL-1": token_params(settings, issued_ms=now - ttl - 10_000),
        "TOKEN-FOR-CAother": token_params(settings, call_sid="CAother"),
    }
    params = {k: tokens[v]["token"] if v in tokens else v for k, v in params.items()}
    agent_started: list[str] = []

    async def agent(call: object) -> None:
        agent_started.append("yes")

    log = SqliteEventLog(tmp_path / "calls.db")
    app = create_app(log, agent=agent, security=settings)
    endpoint: VoiceEndpoint = app.state.voice
    try:
        async with serve_in_background(app) as running:
            async with dial(running.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as socket:
                sim = PhoneSimulator(socket, SystemClock(), RandomIds(), custom_parameters=params)
                async with sim:
                    with contextlib.suppress(SocketClosed):  # injected audio, until closed
                        for start in range(0, len(SAID), 160):
                            await socket.send(sim_media(sim.stream_sid, SAID[start : start + 160]))
                    assert await sim.wait_closed() == 1008
            await endpoint.wait_finished(1)
        call = log.call(endpoint.finished[0])
        assert call is not None
        assert call.end_reason == reason
        assert call.stream_sid is None  # the stream never joined the call
        assert agent_started == []
        assert track_pcm_mulaw(log, call.call_id, "caller") == b""
        kinds = [e.kind for e in call_events(log, call.call_id)]
        assert "stream_started" not in kinds
        [rejected] = call_events(log, call.call_id, kind="stream_rejected")
        assert rejected.data == {
            "reason": reason,
            "stream_sid": sim.stream_sid,
            "call_sid": sim.call_sid,
        }
    finally:
        log.close()


def sim_media(stream_sid: str, frame: bytes) -> str:
    payload = base64.b64encode(frame).decode()
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


async def test_a_stream_opens_once_per_token_and_per_call_unless_the_runtime_redirects(
    tmp_path: Path,
) -> None:
    settings = signed()
    live_sid = "CA" + "1" * 32
    first = token_params(settings, "FVfirst", call_sid=live_sid)
    async with serving(tmp_path, settings) as server:

        async def refused(params: dict[str, str]) -> None:
            async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as ws:
                sim = PhoneSimulator(ws, SystemClock(), RandomIds(), custom_parameters=params)
                sim.call_sid = live_sid
                async with sim:
                    with anyio.fail_after(10):  # a stream let in would never close
                        assert await sim.wait_closed() == 1008

        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as socket:
            sim = server.phone(socket, **first)
            sim.call_sid = live_sid
            async with sim:
                await sim.send_audio(SAID[:320])
                await sim.wait_played_bytes(320)  # live
                await refused(first)  # the same start again: a captured one, replayed
                # A fresh token for the same call (its webhook replayed, say).
                await refused(token_params(settings, "FVagain", call_sid=live_sid))
                [runtime] = [c for c in server.endpoint.calls.values() if c.call_sid]
                redirect = runtime.redirect_parameters()
                assert redirect["call_id"] == "FVfirst" and redirect["token"] != first["token"]
                async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as ws:
                    moved = server.phone(ws, **redirect)
                    moved.call_sid = live_sid
                    async with moved:  # the runtime moved the call: let in
                        await moved.send_audio(SAID[:320])
                        await moved.wait_played_bytes(320)
                await refused(redirect)  # once
        await server.endpoint.wait_finished(5)
        calls = [server.log.call(call_id) for call_id in server.endpoint.finished]
        ends = sorted(str(call.end_reason) for call in calls if call is not None)
        rejected = [
            e.data["reason"]
            for call_id in server.endpoint.finished
            for e in call_events(server.log, call_id, kind="stream_rejected")
        ]
    assert ends == [
        "caller_hangup",
        "caller_hangup",
        "stream_call_duplicate",
        "stream_token_used",
        "stream_token_used",
    ]
    assert sorted(rejected) == ["stream_call_duplicate", "stream_token_used", "stream_token_used"]


# --- what the log never holds ---


async def test_the_log_file_holds_no_credential_and_no_unmasked_number(tmp_path: Path) -> None:
    settings = signed(mask_phone_numbers=True, stream_key=Secret("stream-key-XYZ-987"))
    params = token_params(settings) | {"From": CALLER, "To": CALLED, "api_secret": "s3cr3t-value"}
    async with serving(tmp_path, settings) as server:
        async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as socket:
            await echo_call(server, socket, **params)
        with pytest.raises(DialRejected):  # a refused upgrade is logged too
            async with dial(server.url, auth_token="wrong", signed_url=PUBLIC_URL):
                pass
        await server.endpoint.wait_finished(1)
        call = server.finished_call()
        assert (call.from_number, call.to_number) == ("+********4567", "+*******0100")
        assert call.custom_parameters["token"] == "****"
        assert call.custom_parameters["api_secret"] == "****"
        [started] = call_events(server.log, call.call_id, kind="stream_started")
        assert started.data["custom_parameters"]["From"] == "+********4567"
        await server.log.flush()
    raw = log_file_bytes(tmp_path)
    assert b"signature_invalid" in raw and b"+********4567" in raw  # the scan reads the log
    for secret in (
        AUTH_TOKEN,
        params["token"],
        "stream-key-XYZ-987",
        "s3cr3t-value",
        CALLER,
        CALLED,
        "401234567",
        "4155550100",
    ):
        assert secret.encode() not in raw, secret


def log_file_bytes(folder: Path) -> bytes:
    """The database and its WAL/journal files, as stored on disk."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("calls.db"))


async def test_numbers_stay_readable_unless_masking_is_configured(tmp_path: Path) -> None:
    async with serving(tmp_path, SecuritySettings()) as server:
        async with dial(server.url) as socket:
            await echo_call(server, socket, From=CALLER, token="dev-token")
        await server.endpoint.wait_finished(1)
        call = server.finished_call()
        assert call.from_number == CALLER
        assert call.custom_parameters == {"From": CALLER, "token": "****"}


# --- settings ---


def test_settings_from_env_fail_closed_when_a_token_is_set() -> None:
    env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "VOICE_STREAM_URL": PUBLIC_URL}
    settings = SecuritySettings.from_env(env)
    assert settings.verifies and settings.public_url == PUBLIC_URL
    assert settings.effective_stream_key == derive_stream_key(Secret(AUTH_TOKEN))
    assert AUTH_TOKEN not in repr(settings)
    insecure = SecuritySettings.from_env(env | {"FSM_VOICE_INSECURE": "1"})
    assert not insecure.verifies and insecure.effective_stream_key is None
    assert insecure.unverified_reason == "insecure_dev"
    keyed = SecuritySettings.from_env(env | {"FSM_VOICE_STREAM_KEY": "k"})
    assert keyed.effective_stream_key == Secret("k")
    assert SecuritySettings.from_env({}).unverified_reason == "no_auth_token"


def test_the_derived_stream_key_is_not_the_auth_token() -> None:
    key = derive_stream_key(Secret(AUTH_TOKEN))
    assert key.reveal() != AUTH_TOKEN and len(key.reveal()) == 64
    assert derive_stream_key(Secret("other")) != key


# --- `fsm-voice serve` ---


def test_serve_options_and_their_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsm_voice.cli import _parser

    monkeypatch.setenv("VOICE_STREAM_URL", PUBLIC_URL)
    monkeypatch.setenv("FSM_VOICE_MAX_CALLS", "7")
    args = _parser().parse_args(
        [
            "serve",
            "--mask-phone-numbers",
            "--max-call-seconds",
            "60",
            "--idle-timeout-seconds",
            "2.5",
        ]
    )
    security, limits = server_settings(args, {"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    assert security.verifies and security.public_url == PUBLIC_URL
    assert security.auth_token == Secret(AUTH_TOKEN) and security.mask_phone_numbers
    assert (limits.max_concurrent_calls, limits.max_call_ms, limits.idle_stream_ms) == (
        7,
        60_000,
        2_500,
    )
    assert startup_warnings(security) == []
    insecure, _ = server_settings(_parser().parse_args(["serve", "--insecure-dev"]), {})
    assert not insecure.verifies and "insecure-dev" in startup_warnings(insecure)[0]
    tokenless, _ = server_settings(_parser().parse_args(["serve", "--no-require-signature"]), {})
    assert "NOT verified" in startup_warnings(tokenless)[0]
    with pytest.raises(ConfigError, match="wss://"):
        server_settings(_parser().parse_args(["serve", "--public-url", "http://x/voice"]), {})


@pytest.mark.parametrize(
    ("argv", "env", "fatal"),
    [
        (["--public-url", PUBLIC_URL], {}, True),  # on by default with a public URL
        (["--require-signature"], {}, True),
        (["--public-url", PUBLIC_URL, "--no-require-signature"], {}, False),
        (["--public-url", PUBLIC_URL], {"FSM_VOICE_REQUIRE_SIGNATURE": "0"}, False),
        ([], {"FSM_VOICE_REQUIRE_SIGNATURE": "1"}, True),
        ([], {}, False),  # a local server: warned about, not stopped
        (["--public-url", PUBLIC_URL], {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}, False),
        (["--require-signature"], {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}, False),
    ],
)
def test_serve_requires_the_auth_token_when_signatures_are_required(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], fatal: bool
) -> None:
    from fsm_voice.cli import _parser

    for name in ("VOICE_STREAM_URL", "FSM_VOICE_REQUIRE_SIGNATURE", "FSM_VOICE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = _parser().parse_args(["serve", *argv])
    if not fatal:
        security, _ = server_settings(args, env)
        assert security.verifies == ("TWILIO_AUTH_TOKEN" in env)
        return
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN is not set"):
        server_settings(args, env)


def test_require_signature_and_insecure_dev_contradict(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsm_voice.cli import _parser

    args = _parser().parse_args(["serve", "--require-signature", "--insecure-dev"])
    with pytest.raises(ConfigError, match="contradict"):
        server_settings(args, {"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    insecure = _parser().parse_args(["serve", "--public-url", PUBLIC_URL, "--insecure-dev"])
    assert not server_settings(insecure, {})[0].verifies  # the dev switch: warned, not stopped


def test_fsm_voice_serve_stops_at_startup_without_the_auth_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from fsm_voice.cli import main

    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("FSM_VOICE_REQUIRE_SIGNATURE", raising=False)
    db = tmp_path / "calls.db"
    assert main(["serve", "--public-url", PUBLIC_URL, "--db", str(db), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fsm-voice serve: ") and "TWILIO_AUTH_TOKEN" in err
    assert not db.exists()  # nothing started


@pytest.mark.parametrize("insecure", [False, True], ids=["auth-token", "insecure-dev"])
async def test_fsm_voice_serve_enforces_what_its_environment_configures(
    tmp_path: Path, insecure: bool
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}/voice"
    env = dict(os.environ, TWILIO_AUTH_TOKEN=AUTH_TOKEN, VOICE_STREAM_URL=PUBLIC_URL)
    command = [sys.executable, "-m", "fsm_voice.cli", "serve", "--fd", str(listener.fileno())]
    command += ["--db", str(tmp_path / "calls.db"), *(["--insecure-dev"] if insecure else [])]
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen(  # noqa: ASYNC220 - spawning is instant; no output is read
            command, pass_fds=[listener.fileno()], stdout=subprocess.DEVNULL, stderr=stderr, env=env
        )
    listener.close()  # the server holds its own copy
    try:
        if insecure:
            async with dial(url) as ws:  # unsigned, no token: let in
                sim = PhoneSimulator(ws, SystemClock(), RandomIds())
                async with sim:
                    await sim.send_audio(SAID[:320])
                    await sim.wait_played_bytes(320)
        else:
            with pytest.raises(DialRejected) as refused:
                async with dial(url):
                    pass
            assert refused.value.status == 403
            key = derive_stream_key(Secret(AUTH_TOKEN))
            token = call_token(key, "FV1", issued_ms=SystemClock().wall_ms())
            params = {"call_id": "FV1", "token": token}
            async with dial(url, auth_token=AUTH_TOKEN, signed_url=PUBLIC_URL) as ws:
                sim = PhoneSimulator(ws, SystemClock(), RandomIds(), custom_parameters=params)
                async with sim:
                    await sim.send_audio(SAID[:320])
                    await sim.wait_played_bytes(320)
    finally:
        server.terminate()
        server.wait()
    warned = stderr_path.read_text()
    assert ("WARNING: --insecure-dev" in warned) is insecure
    assert AUTH_TOKEN not in warned
