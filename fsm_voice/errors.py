"""The one exception tree of fsm_voice.

    FsmVoiceError
    ├── ConfigError              bad configuration or a missing optional extra
    ├── CallNotAnsweredError     the stream did not connect in time (voice_runtime name)
    ├── CallHangupError          the call ended while the code was waiting on it
    ├── SocketClosed             the peer's socket is gone (carries the close code)
    ├── EventLogError            the event log could not be opened or written
    └── InvalidTransition        an event a machine cannot take in its state

Outside errors are translated where they enter (`raise ... from e`); a failure that
matters to a call becomes an event in its log, not only a log line.
"""

from __future__ import annotations


class FsmVoiceError(Exception):
    """Base of every error fsm_voice raises on purpose."""


class ConfigError(FsmVoiceError):
    """Bad configuration, or an optional extra that is not installed."""


class CallNotAnsweredError(FsmVoiceError):
    """The stream did not connect within the timeout."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"the call's media stream did not connect within {timeout_ms} ms")
        self.timeout_ms = timeout_ms


class CallHangupError(FsmVoiceError):
    """The call ended while the caller of this method was waiting on it."""


class SocketClosed(FsmVoiceError):
    """The WebSocket is closed; `code` is the close code (1000 normal, 1006 dropped)."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"socket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class EventLogError(FsmVoiceError):
    """The event log could not be opened, read or written."""


class InvalidTransition(FsmVoiceError):
    """A machine was given an event it cannot take in its current state."""

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine} machine in state {state!r} cannot take event {event!r}")
        self.machine = machine
        self.state = state
        self.event = event
