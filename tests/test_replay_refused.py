"""`fsm-voice replay --db` over logs holding refused streams: reported `refused`, exit 0.

Two kinds: an upgrade refused before accept, which older logs hold as a `calls` row
(outcome `rejected`) with one `upgrade_rejected` event, and a `start` closed with 1008
(no token, a bad one…), a call whose stream never joined it (`stream_rejected`). The
logs come from the sources that write them: the real server, and a fixture import.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from fsm_voice.agents.echo import echo_agent
from fsm_voice.call.config import SecuritySettings
from fsm_voice.cli import main
from fsm_voice.clock import RandomIds, SystemClock
from fsm_voice.eventlog.sqlite import SqliteEventLog
from fsm_voice.security import Secret
from fsm_voice.server import create_app, serve_in_background
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator
from tests.test_refusals import version_1_log

ROOT = Path(__file__).resolve().parent.parent
AUTH_TOKEN = "replay-refused-token"


async def refused_start_log(path: Path) -> str:
    """A log holding one call whose `start` carried a forged token; its call id."""
    security = SecuritySettings(auth_token=Secret(AUTH_TOKEN))
    with SqliteEventLog(path) as log:
        app = create_app(log, agent=echo_agent(), security=security)
        async with serve_in_background(app) as server:
            as_seen = server.url.replace("ws://", "wss://")  # Host + path, as /voice signs
            async with dial(server.url, auth_token=AUTH_TOKEN, signed_url=as_seen) as socket:
                forged = {"call_id": "FV1", "token": "v2.s.1.CA1..forged"}
                sim = PhoneSimulator(socket, SystemClock(), RandomIds(), custom_parameters=forged)
                async with sim:
                    assert await sim.wait_closed() == 1008
            await app.state.voice.wait_finished(1)
        return str(app.state.voice.finished[0])


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, str]:
    """logs/a.db: an old refused upgrade and a good call; logs/b.db: a refused start."""
    folder = tmp_path / "logs"
    folder.mkdir()
    version_1_log(folder / "a.db")
    fixture = ROOT / "replays" / "appointment-happy"
    assert main(["import", str(fixture), "--db", str(folder / "a.db")]) == 0
    refused_id = anyio.run(refused_start_log, folder / "b.db")
    return folder, refused_id


def test_replay_over_a_glob_reports_refused_streams_and_exits_0(
    logs: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, refused_id = logs
    capsys.readouterr()
    assert main(["replay", "--db", str(folder / "*.db")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["refused", "ok", "refused"]
    assert lines[0] == "refused   call FVold: signature_invalid (never a call: nothing to replay)"
    assert lines[2].startswith(f"refused   call {refused_id}: stream_token_invalid")


def test_replay_json_and_one_named_refused_call(
    logs: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, refused_id = logs
    capsys.readouterr()
    dbs = ["--db", str(folder / "a.db"), "--db", str(folder / "b.db")]
    assert main(["replay", *dbs, "--call", refused_id, "--call", "FVold", "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["call_id"], r["status"], r["reason"], r["ok"]) for r in results] == [
        ("FVold", "refused", "signature_invalid", True),
        (refused_id, "refused", "stream_token_invalid", True),
    ]
    assert main(["replay", *dbs, "--call", "FVnone"]) == 1  # not in any of them
    assert "no call FVnone" in capsys.readouterr().err
