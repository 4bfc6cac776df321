"""The package's shape, checked: no import cycle between top-level packages, and the
compat wing reached only through voice_runtime's own import paths.

Every import counts — at module level, inside functions and under TYPE_CHECKING — since
a lazy import is still a dependency of the package that writes it. The voice_runtime
paths (`fsm_voice.session`, `fsm_voice.audio.mixer`, …) are the compat wing's front
doors: they *are* compat modules (`sys.modules` aliases), so they count as `compat`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

import fsm_voice

PACKAGE = Path(fsm_voice.__file__).parent

# voice_runtime's import paths whose body is the compat wing; each imports
# fsm_voice.compat, marked for ruff as TID251 allowed. A new one is a decision: add it here.
SEED_FRONT_DOORS = frozenset(
    {
        "fsm_voice.audio",
        "fsm_voice.audio.mixer",
        "fsm_voice.mock",
        "fsm_voice.mock.stt",
        "fsm_voice.mock.tts",
        "fsm_voice.session",
        "fsm_voice.stt",
        "fsm_voice.stt_tee",
        "fsm_voice.transport",
        "fsm_voice.transports.mock_bridge",
        "fsm_voice.transports.twilio_call",
        "fsm_voice.transports.twilio_sms",
        "fsm_voice.transports.twilio_ws",
        "fsm_voice.transports._twilio_client",
        "fsm_voice.tts",
    }
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> Iterator[str]:
    """Every fsm_voice module `path` imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.module


def module_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_data" in path.parts:
            continue
        module = _module_name(path)
        graph[module] = {
            name for name in _imports(path, module) if name.split(".")[0] == "fsm_voice"
        }
    return graph


def top_level(module: str) -> str:
    """The top-level package (or module) of `fsm_voice.<top>.…`; seed paths → compat."""
    if module in SEED_FRONT_DOORS:
        return "compat"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fsm_voice"


def package_graph(modules: Mapping[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """package → imported package → the modules that import it (for the message)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, imported in modules.items():
        source = top_level(module)
        for name in imported:
            target = top_level(name)
            if target not in (source, "fsm_voice"):  # fsm_voice/__init__ is the face
                graph[source][target].add(module)
    return graph


def cycles(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_top_level_packages() -> None:
    graph = package_graph(module_imports())
    problems = []
    for group in cycles(graph):
        edges = [
            f"  {a} -> {b} (in {', '.join(sorted(graph[a][b]))})"
            for a in group
            for b in sorted(graph[a])
            if b in group
        ]
        problems.append(f"cycle between {', '.join(group)}:\n" + "\n".join(edges))
    assert not problems, "\n".join(problems)


def test_the_compat_wing_is_reached_only_through_the_seed_paths() -> None:
    importers = {
        module
        for module, imported in module_imports().items()
        if any(
            name == "fsm_voice.compat" or name.startswith("fsm_voice.compat.") for name in imported
        )
        and not module.startswith("fsm_voice.compat")
    }
    assert importers == SEED_FRONT_DOORS


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above can fail: a made-up graph with a loop through three packages.
    graph = {"call": {"twilio": 1}, "twilio": {"server": 1}, "server": {"call": 1}, "audio": {}}
    assert cycles(graph) == [["call", "server", "twilio"]]
    assert cycles({"call": {"audio": 1}, "audio": {}}) == []


def test_seed_paths_count_as_compat_and_the_rest_by_folder() -> None:
    assert top_level("fsm_voice.session") == "compat"
    assert top_level("fsm_voice.audio.wav") == "audio"
    assert top_level("fsm_voice.call.runtime") == "call"
    assert top_level("fsm_voice.clock") == "clock"
