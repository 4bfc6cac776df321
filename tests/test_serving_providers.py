"""`fsm-voice serve --machine FILE --providers NAME`: every registered provider pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsm_voice.agents.machines import SERVING_PROVIDERS, machine_agent
from fsm_voice.cli import _parser, main
from fsm_voice.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
APPOINTMENT = ROOT / "machines" / "appointment.yaml"


@pytest.mark.parametrize("name", ["elevenlabs", "azure"])
def test_a_machine_can_be_served_with_a_cloud_pair(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "el-key")
    monkeypatch.setenv("AZURE_SPEECH_KEY", "az-key")
    agent, machine, version = machine_agent(APPOINTMENT, name)
    assert callable(agent) and machine == "appointment" and len(version) > 8
    args = _parser().parse_args(["serve", "--machine", str(APPOINTMENT), "--providers", name])
    assert args.providers == name


def test_an_unknown_pair_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown providers 'nope'") as caught:
        machine_agent(APPOINTMENT, "nope")
    assert all(name in str(caught.value) for name in SERVING_PROVIDERS)


@pytest.mark.parametrize(
    ("name", "variable"), [("elevenlabs", "ELEVENLABS_API_KEY"), ("azure", "AZURE_SPEECH_KEY")]
)
def test_a_cloud_pair_without_its_key_is_refused_naming_the_variable(
    name: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "el-key")
    monkeypatch.setenv("AZURE_SPEECH_KEY", "az-key")
    monkeypatch.setenv(variable, "")  # set but empty is as good as unset
    with pytest.raises(ConfigError) as caught:
        machine_agent(APPOINTMENT, name)
    assert (
        str(caught.value)
        == f"--providers {name} needs {variable}, which is not set in the environment"
    )
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError, match=f"--stt-secondary {name} needs {variable},"):
        machine_agent(APPOINTMENT, "offline", secondary=name)


def test_serve_and_call_exit_1_with_one_line_before_taking_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_SPEECH_KEY", raising=False)
    monkeypatch.delenv("VOICE_STREAM_URL", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")  # no unrelated startup warning
    db = tmp_path / "calls.db"
    # (an address no server can bind: without the check, serve fails instead of serving)
    serve = ["serve", "--machine", str(APPOINTMENT), "--db", str(db), "--host", "256.0.0.1"]
    assert main([*serve, "--providers", "elevenlabs"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "fsm-voice serve: --providers elevenlabs needs ELEVENLABS_API_KEY, "
        "which is not set in the environment"
    ]
    assert "serving" not in out and not db.exists()
    call = ["call", str(APPOINTMENT), "--to", "+15551234567", "--db", str(db)]
    assert main([*call, "--providers", "azure"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "fsm-voice call: --providers azure needs AZURE_SPEECH_KEY, "
        "which is not set in the environment"
    ]
    assert err == "" and not db.exists()
