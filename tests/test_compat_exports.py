"""The voice_runtime surface at the top level, and the wall between the core and compat."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fsm_voice

ROOT = Path(__file__).parent.parent
RUFF = Path(sys.executable).parent / "ruff"

# voice_runtime 0.1.15's top-level `__all__`.
SEED_TOP_LEVEL = {
    "VoiceSession",
    "MissingStreamUrlError",
    "CallNotAnsweredError",
    "CallHangupError",
    "create_stt",
    "get_stt_class",
    "create_tts",
    "get_sms_transport",
    "AudioMixer",
    "mix_frames",
    "SttProvider",
    "TtsProvider",
}


def test_the_top_level_exports_exactly_the_seeds_twelve_names() -> None:
    assert set(fsm_voice.__all__) == SEED_TOP_LEVEL
    assert len(fsm_voice.__all__) == 12


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("VoiceSession", "fsm_voice.session"),
        ("CallHangupError", "fsm_voice.session"),
        ("MissingStreamUrlError", "fsm_voice.session"),
        ("create_stt", "fsm_voice.stt"),
        ("get_stt_class", "fsm_voice.stt"),
        ("create_tts", "fsm_voice.tts"),
        ("get_sms_transport", "fsm_voice.transport"),
        ("AudioMixer", "fsm_voice.audio"),
        ("mix_frames", "fsm_voice.audio"),
        ("SttProvider", "fsm_voice.providers"),
        ("TtsProvider", "fsm_voice.providers"),
    ],
)
def test_each_name_is_the_object_at_the_seeds_import_path(name: str, module: str) -> None:
    import importlib

    assert getattr(fsm_voice, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'speak'"):
        _ = fsm_voice.speak  # type: ignore[attr-defined]


def test_importing_the_package_does_not_load_the_compat_wing() -> None:
    code = (
        "import sys, fsm_voice, fsm_voice.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('fsm_voice.compat')))\n"
        "fsm_voice.VoiceSession\n"
        "print('fsm_voice.compat.session' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


def _lint(path: str, source: str) -> str:
    done = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return done.stdout


@pytest.mark.parametrize(
    "line",
    [
        "from fsm_voice.compat.ws import register_voice_websocket",
        "from fsm_voice.compat import session",
        "import fsm_voice.compat.mixer",
    ],
)
def test_the_lint_refuses_a_core_module_that_imports_compat(line: str) -> None:
    assert "TID251 `fsm_voice.compat` is banned" in _lint("fsm_voice/runtime/new.py", line + "\n")


def test_the_compat_wing_may_import_itself_but_keeps_the_clock_bans() -> None:
    source = "import time\n\nfrom fsm_voice.compat import session\n\ntime.sleep(1)\n"
    out = _lint("fsm_voice/compat/new.py", source)
    assert "fsm_voice.compat` is banned" not in out
    assert "`time.sleep` is banned" in out
