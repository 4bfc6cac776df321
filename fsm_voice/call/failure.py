"""When a call's own code fails: a bug that some input reached, not the caller's doing.

The call that met it ends with an error and the others go on: every task and timer
callback of a call runs under its `FailureGuard`, which logs `runtime_failed` and has
the call machine close the socket (1011) and end the call. The log gets one line of
text and the place it was raised, never a traceback: a hostile caller who finds a bug
must not be able to fill the server's output with one per message.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from fsm_voice.call import events as ev
from fsm_voice.errors import EventLogError
from fsm_voice.eventlog.base import EventLog
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.eventlog.records import Source

if TYPE_CHECKING:
    from fsm_voice.call.runtime import CallRuntime

Record = Callable[[Source, KindName, dict[str, Any]], None]  # CallRuntime.record
MAX_ERROR_CHARS = 200  # the message of an exception may quote a whole hostile input


def describe(error: BaseException) -> str:
    """`Type: message`, cut short; an exception group is told by its first failure."""
    error = _first(error)
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def raised_at(error: BaseException) -> str:
    """`file.py:line in function` where `error` was raised (the innermost frame)."""
    frames = traceback.extract_tb(_first(error).__traceback__)
    if not frames:
        return "unknown"
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


class FailureGuard:
    """Runs one call's tasks and timer callbacks so that a failure ends only that call."""

    def __init__(self, call: CallRuntime) -> None:
        self._call = call
        self.failed_in: str | None = None  # the first task that failed

    async def run(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Await `func(*args)` as a task of the call."""
        try:
            await func(*args)
        except Exception as e:
            self.failed(func.__name__.lstrip("_"), e)

    def wrap(self, task: str, func: Callable[..., None]) -> Callable[..., None]:
        """`func` for a loop callback (a timer): its failure would reach only the loop."""

        def guarded(*args: Any) -> None:
            try:
                func(*args)
            except Exception as e:
                self.failed(task, e)

        return guarded

    def failed(self, task: str, error: BaseException) -> None:
        """Log the failure; the machine closes the socket (1011) and ends the call."""
        call = self._call
        if self.failed_in is None:
            self.failed_in = task
        call.drop_queued_events()  # what waited behind the failing event would meet it again
        data = {"task": task, "error": describe(error), "at": raised_at(error)}
        try:
            call.record("runtime", "runtime_failed", data)
            if call.running:
                call.dispatch(ev.FatalError("runtime_failed", data["error"]))
        except Exception:  # failing again (the log itself?): end without the machine
            pass
        call.end_now("error")


async def flush_call_rows(log: EventLog, call_id: str, record: Record) -> None:
    """Wait for a call's rows to be written. A row the log refused is this call's only
    (never another's): `record` tells it in an event, and the call ends as it was."""
    try:
        await log.flush(call_id)
    except EventLogError as e:
        record("runtime", "log_write_failed", {"error": describe(e)})
        with contextlib.suppress(EventLogError):
            await log.flush(call_id)
