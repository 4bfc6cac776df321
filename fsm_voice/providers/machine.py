"""The provider machine: the connection life of one STT/TTS provider.

    idle ──start──▶ connecting ──connected──▶ streaming
                      ▲   │                      │
                retry │   │ dropped              │ dropped (attempts left)
                      │   ▼                      ▼
                    reconnecting ◀───────────────┘
                      │ gave_up, or dropped with no attempts left ──▶ error
    any open state ──stop──▶ closed;  ──fatal──▶ error
    streaming ──renew──▶ reconnecting (a planned new session: retry at once, no error)

Pure like the call machine: events in, effects out. The adapter executes the effects
(open the socket / warm the pool, arm the retry timer through the Clock) and reports
every change of state through `SttListener.on_state` (or the TTS `on_state` callback),
so the runtime logs it. Retries back off exponentially (1 s, 2 s, 4 s … capped) with
±25 % jitter; the jitter comes from an injected source (IdSource.jitter), so a replay
with counted ids waits exactly as long as the recording did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from fsm_voice.machine import Edge, PureMachine, Step

__all__ = [
    "CLOSED",
    "CONNECTING",
    "ERROR",
    "IDLE",
    "RECONNECTING",
    "STATES",
    "STREAMING",
    "CancelRetry",
    "Connect",
    "Connected",
    "Disconnect",
    "Dropped",
    "Fatal",
    "GaveUp",
    "ProviderEffect",
    "ProviderEvent",
    "ProviderMachine",
    "Renew",
    "ReportError",
    "Retry",
    "ScheduleRetry",
    "Start",
    "StateCallback",
    "Stop",
    "backoff_ms",
]

IDLE = "idle"
CONNECTING = "connecting"
STREAMING = "streaming"
RECONNECTING = "reconnecting"
CLOSED = "closed"
ERROR = "error"

STATES = (IDLE, CONNECTING, STREAMING, RECONNECTING, CLOSED, ERROR)
OPEN = (IDLE, CONNECTING, STREAMING, RECONNECTING)
FINAL = (CLOSED, ERROR)


# --- events (past-tense facts, each with its trigger) ---


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    trigger: ClassVar[str] = ""

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Start(ProviderEvent):
    trigger: ClassVar[str] = "start"


@dataclass(frozen=True, slots=True)
class Connected(ProviderEvent):
    trigger: ClassVar[str] = "connected"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Dropped(ProviderEvent):
    """The connection failed or went away (a connect attempt that failed counts too)."""

    trigger: ClassVar[str] = "dropped"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Retry(ProviderEvent):
    """The retry timer fired."""

    trigger: ClassVar[str] = "retry"


@dataclass(frozen=True, slots=True)
class GaveUp(ProviderEvent):
    trigger: ClassVar[str] = "gave_up"
    reason: str = "gave up"


@dataclass(frozen=True, slots=True)
class Stop(ProviderEvent):
    trigger: ClassVar[str] = "stop"


@dataclass(frozen=True, slots=True)
class Renew(ProviderEvent):
    """Replace a healthy session on purpose (the provider's session time limit, or a
    fresh session after a long agent turn): reconnect at once, not counted as a retry
    and not reported as an error."""

    trigger: ClassVar[str] = "renew"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Fatal(ProviderEvent):
    """A failure no retry can fix (bad credentials, missing model)."""

    trigger: ClassVar[str] = "fatal"
    reason: str = ""


# --- effects (imperative) ---


@dataclass(frozen=True, slots=True)
class ProviderEffect:
    kind: ClassVar[str] = "provider_effect"

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Connect(ProviderEffect):
    """Open the connection (load models, warm the pool); `attempt` counts from 1."""

    kind: ClassVar[str] = "provider_connect_requested"
    attempt: int


@dataclass(frozen=True, slots=True)
class ScheduleRetry(ProviderEffect):
    """Arm a timer; when it fires, feed `Retry()` back into the machine."""

    kind: ClassVar[str] = "provider_retry_scheduled"
    attempt: int  # the attempt the retry will make
    delay_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class CancelRetry(ProviderEffect):
    kind: ClassVar[str] = "provider_retry_cancelled"


@dataclass(frozen=True, slots=True)
class Disconnect(ProviderEffect):
    """Release the connection / pool."""

    kind: ClassVar[str] = "provider_disconnect_requested"


@dataclass(frozen=True, slots=True)
class ReportError(ProviderEffect):
    """Tell the listener (`on_error`); `fatal` means the provider gave up."""

    kind: ClassVar[str] = "provider_error_reported"
    reason: str
    fatal: bool


def backoff_ms(attempt: int, jitter: float, *, base_ms: int = 1000, cap_ms: int = 16_000) -> int:
    """Delay before retry number `attempt` (1, 2, …): base·2^(attempt-1), capped,
    times 1 ± 25 % (`jitter` in [0, 1) maps linearly onto [-25 %, +25 %))."""
    nominal = min(base_ms << min(max(attempt - 1, 0), 30), cap_ms)
    factor = 1.0 + 0.25 * (2.0 * min(max(jitter, 0.0), 1.0) - 1.0)
    return round(nominal * factor)


class ProviderMachine:
    """Events in, effects out; counts connection attempts and decides when to give up."""

    def __init__(
        self,
        name: str,
        *,
        jitter: Callable[[], float] = lambda: 0.5,
        max_retries: int = 5,
        base_ms: int = 1000,
        cap_ms: int = 16_000,
        immediate_first_retry: bool = False,
    ) -> None:
        self.jitter = jitter
        # A dropped socket is usually gone for good on its own (a server restart, a
        # load balancer), so the first retry may go at once; later ones back off
        # 1 s, 2 s, 4 s … as usual (off by default: the plain schedule).
        self.immediate_first_retry = immediate_first_retry
        self.max_retries = max_retries
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.retries = 0  # retries since the last successful connection
        self.last_reason = ""
        # The retry the latest move into `reconnecting` scheduled (every such move
        # schedules one): a state callback can tell when, as the move is reported
        # before its effects run.
        self.scheduled_retry: ScheduleRetry | None = None
        self.exhausted = False  # in `error` because the retries ran out
        self._m: PureMachine[ProviderEffect] = PureMachine(name, STATES, IDLE, self._edges())

    @property
    def state(self) -> str:
        return self._m.state

    @property
    def is_streaming(self) -> bool:
        return self._m.state == STREAMING

    def fire(self, event: ProviderEvent) -> Step[ProviderEffect]:
        return self._m.fire(event.trigger, event)

    # --- conditions ---

    def _can_retry(self, _: Dropped) -> bool:
        return self.retries < self.max_retries

    # --- effects ---

    def _connect_first(self, _: Start) -> None:
        self.retries = 0
        self.exhausted = False
        self._m.emit(Connect(1))

    def _connected(self, _: Connected) -> None:
        self.retries = 0
        self.last_reason = ""

    def _schedule_retry(self, e: Dropped) -> None:
        self.retries += 1
        self.last_reason = e.reason
        delay = self.retry_delay_ms(self.retries)
        self.scheduled_retry = ScheduleRetry(self.retries + 1, delay, e.reason)
        self._m.emit(self.scheduled_retry)
        self._m.emit(ReportError(e.reason, fatal=False))

    def retry_delay_ms(self, retry: int) -> int:
        """The delay before retry number `retry` (1, 2, …) under this machine's schedule."""
        if self.immediate_first_retry:
            if retry == 1:
                return 0
            retry -= 1
        return backoff_ms(retry, self.jitter(), base_ms=self.base_ms, cap_ms=self.cap_ms)

    def _renew(self, e: Renew) -> None:
        self.scheduled_retry = ScheduleRetry(self.retries + 1, 0, e.reason)
        self._m.emit(self.scheduled_retry)

    def _reconnect(self, _: Retry) -> None:
        self._m.emit(Connect(self.retries + 1))

    def _exhausted(self, e: Dropped) -> None:
        self.exhausted = True
        reason = f"{e.reason} (after {self.retries} retries)"
        self._fail(reason)

    def _gave_up(self, e: GaveUp) -> None:
        self._fail(e.reason)

    def _fatal(self, e: Fatal) -> None:
        self._fail(e.reason)

    def _fail(self, reason: str) -> None:
        self.last_reason = reason
        self._m.emit(CancelRetry())
        self._m.emit(Disconnect())
        self._m.emit(ReportError(reason, fatal=True))

    def _close(self, _: Stop) -> None:
        self._m.emit(CancelRetry())
        self._m.emit(Disconnect())

    def _edges(self) -> list[Edge]:
        live = (CONNECTING, STREAMING)
        return [
            Edge("start", IDLE, CONNECTING, effects=[self._connect_first]),
            Edge("start", (CONNECTING, STREAMING, RECONNECTING), None),  # idempotent
            Edge("connected", CONNECTING, STREAMING, effects=[self._connected]),
            Edge("dropped", live, RECONNECTING, [self._can_retry], [self._schedule_retry]),
            Edge("dropped", live, ERROR, effects=[self._exhausted]),
            Edge("dropped", (IDLE, RECONNECTING, *FINAL), None),  # stale: already handled
            Edge("renew", STREAMING, RECONNECTING, effects=[self._renew]),
            Edge("renew", (IDLE, CONNECTING, RECONNECTING, *FINAL), None),  # nothing to renew
            Edge("retry", RECONNECTING, CONNECTING, effects=[self._reconnect]),
            Edge("retry", FINAL, None),  # a timer that lost the race with stop
            Edge("gave_up", (CONNECTING, RECONNECTING), ERROR, effects=[self._gave_up]),
            Edge("stop", OPEN, CLOSED, effects=[self._close]),
            Edge("stop", FINAL, None),  # idempotent
            Edge("fatal", OPEN, ERROR, effects=[self._fatal]),
        ]


StateCallback = Callable[[str, str], None]
"""`(state, detail)`: how a provider reports its machine's moves (SttListener.on_state)."""
