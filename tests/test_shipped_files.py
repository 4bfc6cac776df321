"""The shipped machines and caller scripts: inside the wheel, found by name from any
folder (no clone needed), and never in the way of a user's own file of the same name."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fsm_voice.errors import ConfigError
from fsm_voice.shipped import resolve_caller, resolve_machine, shipped_folder, shipped_names

REPO = Path(__file__).resolve().parent.parent


def _run_cli(
    cwd: Path, *args: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # before the editable install's path entry
    return subprocess.run(
        [sys.executable, "-m", "fsm_voice.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("fsm_voice-*.whl")
    return built


def test_the_wheel_carries_the_shipped_machines_and_callers(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("machines", "callers"):
        for path in sorted((REPO / kind).glob("*.yaml")):
            assert f"fsm_voice/_data/{kind}/{path.name}" in names
    # the ivr machine's hook lives next to it, so it ships too
    assert "fsm_voice/_data/machines/ivr_hooks.py" in names
    assert not any(n.startswith(("machines/", "callers/")) for n in names)


def test_an_installed_wheel_finds_its_machines_from_an_empty_folder(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _run_cli(empty, "check", "appointment", "ivr", pythonpath=target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(target / "fsm_voice" / "_data" / "machines" / "appointment.yaml") in done.stdout


@pytest.mark.parametrize("command", [["check", "appointment"], ["diagram", "appointment"]])
def test_a_shipped_name_works_from_an_empty_folder(command: list[str], tmp_path: Path) -> None:
    done = _run_cli(tmp_path, *command)
    assert done.returncode == 0, done.stdout + done.stderr
    if command[0] == "diagram":
        assert "stateDiagram" in done.stdout


def test_the_docs_path_form_works_outside_a_clone(tmp_path: Path) -> None:
    done = _run_cli(tmp_path, "check", "machines/appointment.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_users_own_file_wins_over_a_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "appointment").write_text("name: mine\n")
    mine = tmp_path / "machines" / "appointment.yaml"
    mine.parent.mkdir()
    mine.write_text("name: mine\n")
    assert resolve_machine("appointment") == Path("appointment")
    assert resolve_machine("machines/appointment.yaml") == Path("machines/appointment.yaml")
    assert resolve_machine(mine) == mine
    # without a file of its own, the shipped one
    shipped = shipped_folder("callers")
    assert shipped is not None
    assert resolve_caller("appointment-happy") == shipped / "appointment-happy.yaml"


def test_a_users_file_is_what_check_reads(tmp_path: Path) -> None:
    (tmp_path / "appointment.yaml").write_text("name: broken\nstates: [\n")
    done = _run_cli(tmp_path, "check", "appointment.yaml")
    assert done.returncode == 1
    assert "appointment.yaml: FAILED" in done.stdout


def test_neither_a_file_nor_a_shipped_name_lists_the_shipped_ones(tmp_path: Path) -> None:
    assert {"appointment", "ivr", "survey"} <= set(shipped_names("machines"))
    with pytest.raises(ConfigError, match=r"appointment, ivr, survey"):
        resolve_machine("appointment-typo")
    with pytest.raises(ConfigError, match="appointment-happy"):
        resolve_caller("nobody")
    # a missing path stays a path: the loader's "cannot read" names it
    assert resolve_caller(tmp_path / "nowhere.yaml") == tmp_path / "nowhere.yaml"
    done = _run_cli(tmp_path, "diagram", "nosuch")
    assert done.returncode == 1
    assert "shipped: appointment, ivr, survey" in done.stderr


def test_serve_takes_a_shipped_machine_by_name() -> None:
    from fsm_voice.commands.serve import resolve_agent

    _, name, version = resolve_agent("appointment", "scripted")
    assert name == "appointment" and version
    with pytest.raises(ConfigError, match="shipped machine: appointment, ivr, survey"):
        resolve_agent("nosuch")


def test_replay_finds_the_recorded_machine_among_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fsm_voice.replay.recording import load_fixture
    from fsm_voice.replay.replayer import resolve_machine as replay_machine

    recording = load_fixture(REPO / "replays" / "appointment-happy")
    monkeypatch.chdir(tmp_path)
    assert replay_machine(recording).name == "appointment"
    # --machine takes a shipped name too
    assert replay_machine(recording, "survey").name == "survey"
