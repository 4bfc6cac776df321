"""Does a hook's `module:function` exist? Found the way the runtime will import it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fsm_voice.conversation.language.problems import Severity

__all__ = ["check_hook"]


@contextmanager
def _search_path(entries: Sequence[str]) -> Iterator[None]:
    # The runtime appends the machine's directory to sys.path; do the same, but only
    # for the duration of the check so checking many files does not pile entries up.
    saved = list(sys.path)
    sys.path.extend(e for e in entries if e not in sys.path)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved


def check_hook(target: str, search_path: Sequence[str]) -> tuple[str, Severity] | None:
    """None if `target` resolves; else a message and its severity."""
    module_name, _, function = target.partition(":")
    with _search_path(search_path):
        try:
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError) as e:  # a parent package that is not there
            found = None
            reason = f": {e}"
        else:
            reason = ""
        if found is None:
            where = ", ".join(search_path) or "sys.path"
            return f"hook module {module_name!r} not found (searched {where}){reason}", "error"
        try:
            # Importing runs the user's module: the same thing the runtime does at load.
            module = importlib.import_module(module_name)
        except Exception as e:  # any failure of user code is a finding, not a crash
            msg = f"hook module {module_name!r} fails to import ({type(e).__name__}: {e})"
            return msg, "warning"
    if not callable(getattr(module, function, None)):
        return f"hook {target!r}: module {module_name!r} has no function {function!r}", "error"
    return None
