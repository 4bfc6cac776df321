"""The docs a newcomer follows: every shell and Python block runs, every link resolves.

A block that cannot run here (it needs Twilio credentials, or builds the venv) says so
in a `<!-- not-run: reason -->` comment on the line before its fence. The runnable ones
of a page run in order, in one scratch directory that looks like a clone after a demo:
`machines/`, `callers/` and `replays/` from the repository, and a `calls.db` of real
calls (tests/recorded_calls.py), so the shell blocks of a page may use what an earlier
one made (`$CALL`, a fixture directory).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.recorded_calls import record_calls

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}
_FENCE = re.compile(r"^( *)(`{3,})([\w-]*)\s*$")
_NOT_RUN = re.compile(r"^\s*<!-- not-run: (.+?) -->\s*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None  # the reason, when marked


def blocks_of(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, lang = fence.groups()
        end = next(
            j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks
        )  # a fence left open is a broken page: StopIteration fails the test
        body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
        marker = _NOT_RUN.match(lines[i - 1]) if i > 0 else None
        found.append(Block(page, i + 1, lang, body, marker.group(1) if marker else None))
        i = end + 1
    return found


def without_blocks(page: Path) -> str:
    return re.sub(r"^( *)(`{3,}).*?^\1\2\s*$", "", page.read_text(), flags=re.S | re.M)


def prose_of(page: Path) -> str:
    """The page without its code blocks and inline code: where links live."""
    return re.sub(r"`[^`\n]*`", "", without_blocks(page))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in without_blocks(page).splitlines():
        if m := re.match(r"^#{1,6} (.+)$", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks_of(page) if b.lang in SHELL | PYTHON and b.not_run is None]


# --- the blocks ---


def test_the_pages_are_found_and_every_block_is_either_runnable_or_says_why_not() -> None:
    assert {"README.md", "docs/operations.md", "docs/reference/cli.md"} <= {_rel(p) for p in PAGES}
    for page in PAGES:
        for block in blocks_of(page):
            assert block.lang, f"{_rel(page)}:{block.line}: a code block names its language"
            if block.not_run is not None:
                assert block.lang in SHELL | PYTHON, f"{_rel(page)}:{block.line}"
                assert len(block.not_run.split()) >= 3, f"{_rel(page)}:{block.line}: a reason"
    assert sum(len(runnable(p)) for p in PAGES) >= 10


@pytest.fixture(scope="module")
def recorded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("recorded") / "calls.db"
    record_calls(db)
    return db


def _workspace(tmp_path: Path, recorded_db: Path) -> Path:
    for name in ("machines", "callers", "replays"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    shutil.copy(recorded_db, tmp_path / "calls.db")
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FSM_VOICE_", "TWILIO_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize(
    "page", [p for p in PAGES if runnable(p)], ids=lambda p: _rel(p).replace("/", "-")
)
def test_every_runnable_block_of_the_page_runs(
    page: Path, tmp_path: Path, recorded_db: Path
) -> None:
    cwd = _workspace(tmp_path, recorded_db)
    shell: list[str] = ["set -euo pipefail"]
    for n, block in enumerate(runnable(page)):
        where = f"{_rel(page)}:{block.line}"
        if block.lang in SHELL:
            shell += [f"echo '--- {where}' >&2", block.text]
            continue
        script = cwd / f"block_{n}.py"
        script.write_text(block.text)
        # Shell blocks before a Python block have run by then: pages are read in order.
        _run(["bash", "-c", "\n".join(shell)], cwd, where)
        shell = ["set -euo pipefail"]
        _run([sys.executable, str(script)], cwd, where)
    _run(["bash", "-c", "\n".join(shell)], cwd, _rel(page))


def _run(argv: list[str], cwd: Path, where: str) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stderr[-3000:]}"


# --- the links ---


def test_every_relative_link_resolves_inside_the_repository() -> None:
    problems: list[str] = []
    for page in PAGES:
        for target in _LINK.findall(prose_of(page)):
            if re.match(r"(https?|mailto):", target):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.is_relative_to(ROOT):
                problems.append(f"{_rel(page)}: {target} leaves the repository")
            elif not dest.exists():
                problems.append(f"{_rel(page)}: {target} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
                problems.append(f"{_rel(page)}: {target}: no heading #{anchor}")
    assert problems == []


def test_no_page_points_outside_the_repository_in_words_either() -> None:
    for page in PAGES:
        assert "../shared" not in page.read_text(), _rel(page)
        assert "issue 5 brings" not in page.read_text(), _rel(page)


def test_the_link_checker_sees_a_broken_link_and_a_missing_anchor(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Title `x`\n\n```sh\n[in code](nowhere.md)\n```\n[a](p.md#title-x)\n")
    assert anchors_of(page) == {"title-x"} and _LINK.findall(prose_of(page)) == ["p.md#title-x"]
    assert slug("The corpus (`replays/`)") == "the-corpus-replays"


# --- the generated CLI reference ---


def test_the_cli_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
