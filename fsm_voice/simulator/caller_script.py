"""Caller scripts: what the simulated caller does, as a YAML file (`callers/*.yaml`).

A script is a list of steps run in order by `ScriptedCaller` (fsm_voice.simulator.caller)::

    name: appointment-happy
    machine: appointment             # the conversation machine it is written for
    expect: {end_state: goodbye, outcome: completed}   # checked by whoever runs it
    steps:
      - wait_prompt: {}              # the agent speaks, then goes quiet
      - say: "yes that works"        # synthesised, streamed in 20 ms frames
      - press: "1234#"               # DTMF keys
      - silence: 6000                # stay quiet (drives noinput)
      - say: {text: cancel, barge_in_after_ms: 800}   # talk over the next prompt
      - hangup: {after_ms: 500}      # hang up 500 ms into the next prompt

Every step takes a mapping of options; the common ones also have a short form
(`say: TEXT`, `press: DIGITS`, `silence: MS`, `wait_prompt:` / `hangup:` with nothing).
Defaults are the `DEFAULT_*` constants below. Loading reports every problem at once, each
as `file:line: message`, with a did-you-mean for misspelt keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fsm_voice.errors import ConfigError
from fsm_voice.simulator.phone import DTMF_DIGITS

if TYPE_CHECKING:
    from fsm_voice.conversation.language.spec import MachineSpec

__all__ = [
    "DEFAULT_GAP_MS",
    "DEFAULT_PAUSE_MS",
    "DEFAULT_QUIET_MS",
    "DEFAULT_TIMEOUT_MS",
    "CallerScript",
    "CallerScriptError",
    "Expect",
    "Hangup",
    "Press",
    "Problem",
    "Say",
    "Silence",
    "Source",
    "Step",
    "WaitPrompt",
    "find_caller_script",
    "load_caller_script",
    "parse_caller_script",
]

DEFAULT_QUIET_MS = 600  # a prompt is over once playback has been idle this long
DEFAULT_TIMEOUT_MS = 15_000  # longest wait for a prompt (to start and finish)
DEFAULT_GAP_MS = 300  # between two keys: a finger takes time
# Silence after a spoken line before the next step: people pause, and a key pressed the
# instant speech stops would land inside the recogniser's endpointing window.
DEFAULT_PAUSE_MS = 300


@dataclass(frozen=True, slots=True)
class Source:
    """Where a step was written: file and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class WaitPrompt:
    """Wait for the agent to speak (or go on speaking) and then be quiet for `quiet_ms`."""

    kind: ClassVar[str] = "wait_prompt"
    source: Source
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    quiet_ms: int = DEFAULT_QUIET_MS

    def describe(self) -> str:
        return "wait_prompt"


@dataclass(frozen=True, slots=True)
class Say:
    """Speak `text` (synthesised), then pause `pause_ms`.

    With `barge_in_after_ms`, wait for the agent's prompt (the one playing now, or the
    next one within `timeout_ms`) and start speaking that long after it started.
    """

    kind: ClassVar[str] = "say"
    source: Source
    text: str
    barge_in_after_ms: int | None = None
    pause_ms: int = DEFAULT_PAUSE_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def describe(self) -> str:
        return f"say {self.text!r}"


@dataclass(frozen=True, slots=True)
class Press:
    """Press `digits` one by one, `gap_ms` apart."""

    kind: ClassVar[str] = "press"
    source: Source
    digits: str
    gap_ms: int = DEFAULT_GAP_MS

    def describe(self) -> str:
        return f"press {self.digits!r}"


@dataclass(frozen=True, slots=True)
class Silence:
    """Stay quiet for `ms` (silence frames keep streaming, as on a real line)."""

    kind: ClassVar[str] = "silence"
    source: Source
    ms: int

    def describe(self) -> str:
        return f"silence {self.ms} ms"


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up now, or `after_ms` into the prompt playing now or the next one.

    To hang up after a plain pause instead, put a `silence` step before it.
    """

    kind: ClassVar[str] = "hangup"
    source: Source
    after_ms: int | None = None
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def describe(self) -> str:
        return "hangup" if self.after_ms is None else f"hangup {self.after_ms} ms into a prompt"


Step: TypeAlias = WaitPrompt | Say | Press | Silence | Hangup


@dataclass(frozen=True, slots=True)
class Expect:
    """What the call should end with; checked by the demo, not by the caller."""

    end_state: str | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class CallerScript:
    name: str
    machine: str
    steps: tuple[Step, ...]
    expect: Expect
    source: Source
    description: str = ""

    def lines(self) -> list[str]:
        """Every text the caller will say (to synthesise ahead of the call)."""
        return [step.text for step in self.steps if isinstance(step, Say)]


@dataclass(frozen=True, slots=True)
class Problem:
    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class CallerScriptError(ConfigError):
    """A caller script that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_caller_script(path: Path | str) -> CallerScript:
    """Read and validate a caller script file; raises `CallerScriptError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CallerScriptError([Problem(Source(str(path), 0), f"cannot read: {e}")]) from e
    return parse_caller_script(text, str(path))


def parse_caller_script(text: str, file: str = "<string>") -> CallerScript:
    """Validate caller-script YAML; `file` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise CallerScriptError(
            [Problem(Source(file, line), f"not valid YAML: {e.problem}")]
        ) from e
    reader = _Reader(file)
    script = reader.script(root)
    if reader.problems or script is None:
        raise CallerScriptError(reader.problems)
    return script


# ---------------------------------------------------------------------- the reader

_TOP_KEYS = ("name", "machine", "description", "expect", "steps")
_EXPECT_KEYS = ("end_state", "outcome")
# Each step kind: its options, and the option its short (scalar) form fills in.
_STEP_OPTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "wait_prompt": (("timeout_ms", "quiet_ms"), None),
    "say": (("text", "barge_in_after_ms", "pause_ms", "timeout_ms"), "text"),
    "press": (("digits", "gap_ms"), "digits"),
    "silence": (("ms",), "ms"),
    "hangup": (("after_ms", "timeout_ms"), None),
}
_REQUIRED = {"say": "text", "press": "digits", "silence": "ms"}
_TEXT_OPTIONS = ("text", "digits")  # every other option is a duration in ms
_NULL = "tag:yaml.org,2002:null"


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (expected one of: {', '.join(choices)})"


class _Reader:
    """Walks the composed YAML nodes, collecting problems instead of stopping at one."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        # Turns a scalar node into its value with YAML's safe rules (1_000, 0x10, ...).
        self._constructor = yaml.SafeLoader("")

    def at(self, node: Node) -> Source:
        return Source(self.file, node.start_mark.line + 1)

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self.at(node), message))

    def scalar(self, node: ScalarNode) -> object:
        try:
            value: object = self._constructor.construct_object(node)
        except yaml.constructor.ConstructorError:  # an unknown tag such as !!python/name
            return None
        return value

    def mapping(self, node: Node, what: str, keys: tuple[str, ...]) -> dict[str, Node] | None:
        """The entries of a mapping node whose keys are all known; None if not a mapping."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping")
            return None
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self.problem(key_node, f"{what}: keys must be plain names")
            elif key in entries:
                self.problem(key_node, f"{what}: {key!r} given twice")
            elif key not in keys:
                self.problem(key_node, f"{what}: unknown key {key!r}{_did_you_mean(key, keys)}")
            else:
                entries[key] = value_node
        return entries

    def text(self, node: Node, what: str) -> str | None:
        """A non-empty string, kept as written: `say: yes` means "yes", not True, and
        `press: 0012` the keys 0 0 1 2, not the number 10."""
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.problem(node, f"{what} must be text")
            return None
        value: str = node.value
        if not value.strip():
            self.problem(node, f"{what} must be non-empty text")
            return None
        return value

    def millis(self, node: Node, what: str) -> int | None:
        value = self.scalar(node) if isinstance(node, ScalarNode) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.problem(node, f"{what} must be a whole number of milliseconds ≥ 0")
            return None
        return value

    # --- the document ---

    def script(self, root: Node | None) -> CallerScript | None:
        if root is None:
            self.problems.append(Problem(Source(self.file, 1), "the file is empty"))
            return None
        top = self.mapping(root, "a caller script", _TOP_KEYS)
        if top is None:
            return None
        for key in ("name", "machine", "steps"):
            if key not in top:
                self.problem(root, f"missing required key {key!r}")
        name = self.text(top["name"], "name") if "name" in top else None
        machine = self.text(top["machine"], "machine") if "machine" in top else None
        description = self.text(top["description"], "description") if "description" in top else ""
        expect = self.expect(top["expect"]) if "expect" in top else Expect()
        steps = self.steps(top["steps"]) if "steps" in top else ()
        if name is None or machine is None or description is None or expect is None:
            return None
        return CallerScript(name, machine, steps, expect, self.at(root), description)

    def expect(self, node: Node) -> Expect | None:
        entries = self.mapping(node, "expect", _EXPECT_KEYS)
        if entries is None:
            return None
        values = {key: self.text(value, f"expect.{key}") for key, value in entries.items()}
        return Expect(end_state=values.get("end_state"), outcome=values.get("outcome"))

    def steps(self, node: Node) -> tuple[Step, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(node, "steps must be a non-empty list")
            return ()
        steps = (self.step(item) for item in node.value)
        return tuple(step for step in steps if step is not None)

    def step(self, node: Node) -> Step | None:
        kinds = tuple(_STEP_OPTIONS)
        if not isinstance(node, MappingNode) or len(node.value) != 1:
            self.problem(node, f"a step is a mapping with exactly one of: {', '.join(kinds)}")
            return None
        key_node, body = node.value[0]
        kind = key_node.value if isinstance(key_node, ScalarNode) else None
        if not isinstance(kind, str) or kind not in _STEP_OPTIONS:
            self.problem(key_node, f"unknown step {kind!r}{_did_you_mean(str(kind), kinds)}")
            return None
        options = self.options(kind, body)
        if options is None:
            return None
        required = _REQUIRED.get(kind)
        if required is not None and required not in options:
            hint = ' (quote it if it starts with "#": press: "#")' if kind == "press" else ""
            self.problem(body, f"{kind} needs {required}{hint}")
            return None
        return _BUILD[kind](self.at(key_node), options)

    def options(self, kind: str, body: Node) -> dict[str, str | int] | None:
        """The step's options, short form expanded; None if any of them is bad."""
        names, short = _STEP_OPTIONS[kind]
        before = len(self.problems)
        if isinstance(body, ScalarNode) and body.tag == _NULL:
            entries: dict[str, Node] | None = {}
        elif isinstance(body, ScalarNode) and short is not None:
            entries = {short: body}
        else:
            entries = self.mapping(body, kind, names)
        if entries is None:
            return None
        options: dict[str, str | int] = {}
        for key, value in entries.items():
            parsed: str | int | None
            if key == "digits":
                parsed = self.digits(value)
            elif key in _TEXT_OPTIONS:
                parsed = self.text(value, f"{kind}.{key}")
            else:
                parsed = self.millis(value, f"{kind}.{key}")
            if parsed is not None:
                options[key] = parsed
        return options if len(self.problems) == before else None

    def digits(self, node: Node) -> str | None:
        digits = self.text(node, "press.digits")
        if digits is None:
            return None
        bad = sorted({d for d in digits if d not in DTMF_DIGITS})
        if bad:
            self.problem(node, f"press: {''.join(bad)!r} are not phone keys ({DTMF_DIGITS})")
            return None
        return digits


def _int(options: dict[str, str | int], key: str, default: int) -> int:
    value = options.get(key, default)
    assert isinstance(value, int)
    return value


def _opt_int(options: dict[str, str | int], key: str) -> int | None:
    value = options.get(key)
    assert value is None or isinstance(value, int)
    return value


def _str(options: dict[str, str | int], key: str) -> str:
    value = options[key]
    assert isinstance(value, str)
    return value


_BUILD: dict[str, Callable[[Source, dict[str, str | int]], Step]] = {
    "wait_prompt": lambda at, o: WaitPrompt(
        at, _int(o, "timeout_ms", DEFAULT_TIMEOUT_MS), _int(o, "quiet_ms", DEFAULT_QUIET_MS)
    ),
    "say": lambda at, o: Say(
        at,
        _str(o, "text"),
        _opt_int(o, "barge_in_after_ms"),
        _int(o, "pause_ms", DEFAULT_PAUSE_MS),
        _int(o, "timeout_ms", DEFAULT_TIMEOUT_MS),
    ),
    "press": lambda at, o: Press(at, _str(o, "digits"), _int(o, "gap_ms", DEFAULT_GAP_MS)),
    "silence": lambda at, o: Silence(at, _int(o, "ms", 0)),
    "hangup": lambda at, o: Hangup(
        at, _opt_int(o, "after_ms"), _int(o, "timeout_ms", DEFAULT_TIMEOUT_MS)
    ),
}


def find_caller_script(spec: MachineSpec) -> Path:
    """The caller script written for `spec`: callers/*.yaml beside machines/."""
    folder = Path(spec.path).resolve().parent.parent / "callers"
    candidates = sorted(folder.glob("*.yaml"))
    mine = [p for p in candidates if load_caller_script(p).machine == spec.name]
    if not mine:
        raise ConfigError(f"no caller script for machine {spec.name!r} in {folder} (use --caller)")
    happy = [p for p in mine if "happy" in p.stem]
    return (happy or mine)[0]
