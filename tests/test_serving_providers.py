"""`fsm-voice serve --machine FILE --providers NAME`: every registered provider pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsm_voice.cli import _parser
from fsm_voice.commands.machines import SERVING_PROVIDERS, machine_agent
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
