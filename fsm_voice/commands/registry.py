"""The `fsm-voice` commands: each is one module of this package that declares a `Command`.

A command module holds everything about its command: its name, help, example, its
arguments and the function that runs it. It declares that in one module-level
`COMMAND`; this registry lists the command modules, in the order `fsm-voice --help`
shows them, and reads their `COMMAND`s.

Why an explicit list and not discovery: the order of `--help` is the list's order,
a helper module (`output`, `machines`, …) cannot become a command by accident, and
registering is reading an attribute — no decorator whose import-time side effect
depends on which module happened to be imported first. Adding a command is writing
its module and adding its name here; tests/test_cli_registry.py checks the two agree.

Every command module is imported to build the parser (even for `--help`), so a
command module imports only what its arguments need; the work (providers, the
server, numpy, replay) loads inside its `run`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

# fsm_voice.commands.<name>, in the order of `fsm-voice --help`.
COMMAND_MODULES: Final = (
    "serve",
    "simulate",
    "demo",
    "check",
    "diagram",
    "bench",
    "call",
    "calls",
    "events",
    "audio",
    "stats",
    "export",
    "import_fixture",
    "replay",
)

Arguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class Command:
    """One `fsm-voice` command, or a group of subcommands (`bench calls`, `bench turns`).

    A group has `subcommands` and no `run`: the chosen subcommand runs.
    """

    name: str
    help: str
    epilog: str | None = None
    arguments: Arguments = _no_arguments
    run: Run | None = None
    subcommands: tuple[Command, ...] = field(default=())
    metavar: str = "COMMAND"  # a group's name for its subcommand in usage lines

    def __post_init__(self) -> None:
        if (self.run is None) == (not self.subcommands):
            raise ValueError(f"command {self.name}: give either run or subcommands")

    def add_to(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add this command's parser (and its subcommands') under `sub`."""
        parser = sub.add_parser(
            self.name,
            help=self.help,
            epilog=self.epilog,
            # The epilog's examples keep their lines (the formatter changes nothing else).
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.arguments(parser)
        if self.run is not None:
            parser.set_defaults(run=self.run)
            return
        nested = parser.add_subparsers(dest=self.name, required=True, metavar=self.metavar)
        for command in self.subcommands:
            command.add_to(nested)


def command_of(module: str) -> Command:
    """The command `fsm_voice.commands.<module>` declares."""
    found = importlib.import_module(f"fsm_voice.commands.{module}").COMMAND
    if not isinstance(found, Command):
        raise TypeError(f"fsm_voice.commands.{module}.COMMAND is not a Command")
    return found


def registered_commands(modules: Sequence[str] = COMMAND_MODULES) -> list[Command]:
    return [command_of(module) for module in modules]


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Every registered command as a subcommand of `parser` (the chosen one's `run`
    ends up in the parsed arguments as `run`)."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in registered_commands():
        command.add_to(sub)
