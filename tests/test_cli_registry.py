"""Each `fsm-voice` command is one module of fsm_voice.commands that declares one
`Command`; the registry, the parser and docs/reference/cli.md agree; building the
parser loads none of the heavy parts (providers, the server, numpy, Twilio)."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fsm_voice.cli import _parser
from fsm_voice.commands import registry, replay, serve
from fsm_voice.commands.registry import COMMAND_MODULES, Command, command_of

COMMANDS_DIR = Path(registry.__file__).parent
ROOT = COMMANDS_DIR.parent.parent


def _declares_command(path: Path) -> list[str]:
    """The names a module assigns `COMMAND` to at top level (read, not imported)."""
    tree = ast.parse(path.read_text())
    return [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id == "COMMAND"
    ]


def test_each_listed_module_declares_exactly_one_command() -> None:
    for module in COMMAND_MODULES:
        assert _declares_command(COMMANDS_DIR / f"{module}.py") == ["COMMAND"], module
        assert isinstance(command_of(module), Command)


def test_every_module_declaring_a_command_is_listed() -> None:
    declaring = {p.stem for p in COMMANDS_DIR.glob("*.py") if _declares_command(p)}
    assert declaring == set(COMMAND_MODULES)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_parser_holds_the_registry_in_its_order() -> None:
    commands = registry.registered_commands()
    assert list(_subcommands(_parser())) == [c.name for c in commands]
    bench = _subcommands(_subcommands(_parser())["bench"])
    assert list(bench) == ["calls", "turns"]


def test_each_command_runs_its_own_function() -> None:
    parser = _parser()
    for command in registry.registered_commands():
        if command.run is None:
            continue
        sub = _subcommands(parser)[command.name]
        assert sub.get_default("run") is command.run, command.name


def test_cli_reference_documents_every_command() -> None:
    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    headings = [line.removeprefix("## ") for line in page.splitlines() if line.startswith("## ")]
    expected = ["fsm-voice"]
    for command in registry.registered_commands():
        expected.append(f"fsm-voice {command.name}")
        expected += [f"fsm-voice {command.name} {s.name}" for s in command.subcommands]
    assert headings == expected


def test_a_command_gives_either_a_run_or_subcommands() -> None:
    with pytest.raises(ValueError, match="either run or subcommands"):
        Command("nothing", help="does nothing")


def test_constants_spelled_for_the_parser_agree_with_their_sources() -> None:
    from fsm_voice.call.config import Limits, env_flag
    from fsm_voice.replay.replayer import MODES

    assert replay.MODES == MODES
    assert Limits().max_message_bytes == serve.MAX_MESSAGE_BYTES
    for value in ("1", "true", "YES", " on ", "0", "", "off", "no", "2"):
        assert serve.env_flag(value) == env_flag(value), value


# Building the parser imports every command module: none may load these.
HEAVY = (
    "fsm_voice.providers",
    "fsm_voice.server",
    "fsm_voice.call",
    "fsm_voice.twilio",
    "fsm_voice.replay",
    "fsm_voice.conversation",
    "fsm_voice.eventlog",
    "fsm_voice.simulator",
    "fsm_voice.compat",
    "numpy",
    "starlette",
    "uvicorn",
    "websockets",
    "anyio",
    "twilio",
)


def test_help_imports_no_provider_server_or_numpy() -> None:
    code = (
        "import sys\n"
        "from fsm_voice.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.splitlines()[-1] == "[]"
    assert "replay recorded calls" in done.stdout  # --help did print the commands
