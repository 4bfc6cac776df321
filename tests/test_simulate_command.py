"""`fsm-voice simulate` against a real `fsm-voice serve` (a subprocess on 127.0.0.1).

The agent hanging up is how a finished conversation ends: simulate exits 0 and names
the call as the server's log knows it. A caller script runs against any URL. With
`--auth-token` a server that checks signatures and stream tokens takes the call in one
command, whether it has Twilio's webhooks (TwiML) or not (token minted from the key).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fsm_voice.cli import main
from fsm_voice.eventlog.records import CallRecord
from fsm_voice.eventlog.sqlite import SqliteEventLog

pytestmark = pytest.mark.real_server

BYE = """
name: bye
initial: bye
states:
  bye:
    actions:
      - say: "Thanks for calling. Goodbye."
      - hangup: done
"""

MENU = """
name: menu
initial: menu
states:
  menu:
    actions:
      - say: "Press one."
      - gather: {num_digits: 1, timeout_ms: 8000}
    on:
      "1": bye
      digits: bye
      noinput: bye
  bye:
    actions:
      - say: "Goodbye."
      - hangup: done
"""

PRESS_ONE = """
name: press-one
machine: menu
steps:
  - wait_prompt: {}
  - press: "1"
  - wait_prompt: {}
"""

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "wss://voice.example.test/voice"
# Nothing of the developer's own environment may reach the server or the simulator.
_ISOLATE = ("TWILIO_", "VOICE_", "FSM_VOICE_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATE)}
    return env | extra


@pytest.fixture(autouse=True)
def _no_credentials_here(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_ISOLATE):
            monkeypatch.delenv(name)


class Served:
    def __init__(self, url: str, db: Path) -> None:
        self.url = url
        self.db = db
        self.calls: list[CallRecord] = []  # read once the server has stopped

    def call(self, call_id: str) -> CallRecord:
        found = [c for c in self.calls if c.call_id == call_id]
        assert found, f"{call_id} is not in the log"
        return found[0]


@contextmanager
def served(tmp_path: Path, machine: str, *args: str, **env: str) -> Iterator[Served]:
    """`fsm-voice serve` of `machine` on a socket bound here; its log is read after it
    stopped (SIGTERM: it closes the log, so every row is in)."""
    (tmp_path / "machine.yaml").write_text(machine)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections wait in the backlog until the server is up
    server = Served(f"ws://127.0.0.1:{listener.getsockname()[1]}/voice", tmp_path / "calls.db")
    command = [sys.executable, "-m", "fsm_voice.cli", "serve", "--fd", str(listener.fileno())]
    command += ["--db", str(server.db), "--machine", str(tmp_path / "machine.yaml")]
    command += ["--providers", "scripted", *args]
    with (tmp_path / "serve.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command,
            pass_fds=[listener.fileno()],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=clean_env(**env),
        )
    listener.close()  # the server holds its own copy
    try:
        assert process.stdout is not None
        assert b"fsm-voice: serving" in process.stdout.readline()  # loaded, about to serve
        yield server
    finally:
        process.terminate()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    with SqliteEventLog(server.db) as log:
        server.calls = list(log.calls())


def printed_call(out: str) -> tuple[str, str]:
    """(call_id, CallSid) from simulate's report."""
    found = re.search(r"^call_id (FV\w+)  CallSid (CA\w+)", out, re.MULTILINE)
    assert found is not None, out
    return found[1], found[2]


def test_the_agent_ending_the_call_exits_0_and_names_the_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with served(tmp_path, BYE) as server:
        assert main(["simulate", "--url", server.url, "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "the agent ended the call (close code 1000)" in out
    call_id, call_sid = printed_call(out)
    call = server.call(call_id)
    assert (call.call_sid, call.end_reason) == (call_sid, "conversation:done")


def test_a_caller_script_runs_against_a_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "press-one.yaml").write_text(PRESS_ONE)
    (tmp_path / "late.yaml").write_text(PRESS_ONE + '  - say: "too late"\n')
    with served(tmp_path, MENU) as server:
        for script in ("press-one.yaml", "late.yaml"):
            args = ["--caller", str(tmp_path / script), "--voice", "scripted"]
            assert main(["simulate", "--url", server.url, *args]) == (script == "late.yaml")
            outs = capsys.readouterr().out
            if script == "press-one.yaml":
                out = outs
            else:
                assert "caller script press-one FAILED after 3/4 steps" in outs
                assert "late.yaml:8: the call ended" in outs
    assert "press '1' done" in out
    assert "caller script press-one: 3/3 steps done" in out
    call_id, _ = printed_call(out)
    assert server.call(call_id).end_reason == "conversation:done"
    with SqliteEventLog(server.db) as log:
        assert [e.data["digit"] for e in log.events(call_id, kind="dtmf_received")] == ["1"]


@pytest.mark.parametrize("webhooks", [False, True], ids=["token-minted", "twiml-webhook"])
def test_a_signed_call_in_one_command(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    webhooks: bool,
) -> None:
    env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    args: list[str] = []
    signed: list[str] = []
    if webhooks:  # Twilio's inbound-call webhook answers with TwiML naming the stream
        env |= {"TWILIO_ACCOUNT_SID": "ACtest", "TWILIO_PHONE_NUMBER": "+15550199"}
        args = ["--twilio", "--public-url", PUBLIC_URL]
        signed = ["--signed-url", PUBLIC_URL]
    with served(tmp_path, BYE, *args, **env) as server:
        simulate = ["simulate", "--url", server.url, "--seconds", "0.2", *signed]
        assert main(simulate) == 1  # unsigned: refused before it is a call
        assert "rejected with HTTP 403" in capsys.readouterr().err

        monkeypatch.setenv("SIM_TOKEN", "not-the-servers-token")
        assert main([*simulate, "--auth-token", "SIM_TOKEN"]) == 1
        assert "HTTP 403" in capsys.readouterr().err

        assert main([*simulate, "--auth-token", AUTH_TOKEN]) == 1  # a token, not a name
        err = capsys.readouterr().err
        assert "no environment variable of that name is set" in err and AUTH_TOKEN not in err

        monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        assert main([*simulate, "--auth-token"]) == 0
    out = capsys.readouterr().out
    origin = "TwiML from POST" if webhooks else "a stream token minted here"
    assert f"stream parameters: {origin}" in out
    call_id, call_sid = printed_call(out)
    call = server.call(call_id)
    assert (call.call_sid, call.end_reason) == (call_sid, "conversation:done")
    with SqliteEventLog(server.db) as log:
        accepted = log.events(call_id, kind="upgrade_accepted")
    assert [e.data for e in accepted] == [{"verified": True}]


def test_bad_arguments_are_named_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "ws://127.0.0.1:9/voice"
    cases = [
        (["--url", "http://127.0.0.1:9/voice"], "--url must be a ws:// or wss:// URL"),
        (["--url", url, "--caller", "x.yaml", "--dtmf", "1"], "leave out --wav"),
        (["--url", url, "--auth-token"], "--auth-token: $TWILIO_AUTH_TOKEN is not set ("),
        (["--url", url, "--caller", str(tmp_path / "none.yaml")], "none.yaml:0: cannot read"),
        (["--url", url, "--param", "novalue"], "--param 'novalue': expected NAME=VALUE"),
    ]
    for args, expected in cases:
        assert main(["simulate", *args]) == 1, args
        assert expected in capsys.readouterr().err, args
