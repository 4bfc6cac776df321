"""The one exception tree of fsm_voice.

    FsmVoiceError
    ├── ConfigError              bad configuration or a missing optional extra
    │   └── MissingStreamUrlError  no VOICE_STREAM_URL for an outbound call (voice_runtime name)
    ├── CallNotAnsweredError     the stream did not connect in time (voice_runtime name)
    ├── CallHangupError          the call ended while the code was waiting on it
    ├── SocketClosed             the peer's socket is gone (carries the close code)
    ├── EventLogError            the event log could not be opened or written
    │   └── FixtureError           a replay fixture that cannot be imported (every problem)
    ├── TwilioApiError           Twilio's REST API refused a request or could not be reached
    └── InvalidTransition        an event a machine cannot take in its state

Outside errors are translated where they enter (`raise ... from e`); a failure that
matters to a call becomes an event in its log, not only a log line.
"""

from __future__ import annotations


class FsmVoiceError(Exception):
    """Base of every error fsm_voice raises on purpose."""


class ConfigError(FsmVoiceError):
    """Bad configuration, or an optional extra that is not installed."""


class MissingStreamUrlError(ConfigError):
    """An outbound call needs the public `/voice` URL: VOICE_STREAM_URL or an argument."""

    def __init__(self) -> None:
        super().__init__("no stream URL: set VOICE_STREAM_URL or pass stream_url")


class CallNotAnsweredError(FsmVoiceError):
    """The stream did not connect within the timeout."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"the call's media stream did not connect within {timeout_ms} ms")
        self.timeout_ms = timeout_ms


class CallHangupError(FsmVoiceError):
    """The call ended while the caller of this method was waiting on it."""

    def __init__(self, message: str = "the call was hung up while waiting on it") -> None:
        super().__init__(message)  # no argument, as voice_runtime raised it


class SocketClosed(FsmVoiceError):
    """The WebSocket is closed; `code` is the close code (1000 normal, 1006 dropped)."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"socket closed with code {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class EventLogError(FsmVoiceError):
    """The event log could not be opened, read or written."""


class FixtureError(EventLogError):
    """A fixture directory that `import` cannot read. `problems` lists every problem
    found, not only the first, each as `file:line: field: what`."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class TwilioApiError(FsmVoiceError):
    """Twilio's REST API answered with an error, or could not be reached (`status` None).

    `code` is Twilio's error code (20404 not found, 21220 call not in progress, 20003
    authentication failed, ...). Messages never carry credentials.
    """

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        where = f"HTTP {status}" if status is not None else "unreachable"
        super().__init__(
            f"Twilio API {where}" + (f" (code {code})" if code else "") + f": {message}"
        )
        self.status = status
        self.code = code
        self.message = message


class InvalidTransition(FsmVoiceError):
    """A machine was given an event it cannot take in its current state."""

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine} machine in state {state!r} cannot take event {event!r}")
        self.machine = machine
        self.state = state
        self.event = event
