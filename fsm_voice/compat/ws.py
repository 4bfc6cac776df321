"""`register_voice_websocket`: voice_runtime's `/voice` handler, run by the engine.

The socket, the Twilio protocol, marks, clears, limits and the event log are the
engine's (`VoiceEndpoint` → one `CallRuntime` per socket). What this module adds is
the bridge between one live call and a `VoiceSession`: caller frames into
`session.inbound` (and the mixer), the session's ordered outbound queue into the call,
the STT's life from `stt_factory`, and the session's lifecycle signals.

A factory gives every call its own session, so calls run side by side. A plain
session serves one call at a time (its `generation` counts them); a second call that
arrives while it is busy is logged (`session_busy`) and hung up, where voice_runtime
would have mixed the two calls' audio.

Security is `serve`'s, read from the environment as voice_runtime reads its settings:
with TWILIO_AUTH_TOKEN set, an upgrade needs a valid X-Twilio-Signature over
VOICE_STREAM_URL (else Host + path) and a `start` needs its stream token (which
`initiate_outbound_call` and `build_stream_twiml` add), or the call never begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from fsm_voice.clock import Clock, IdSource, RandomIds, SystemClock
from fsm_voice.compat.protocols import SttProvider
from fsm_voice.compat.stt_tee import SttTee
from fsm_voice.eventlog.base import EventLog
from fsm_voice.runtime.config import CallConfig, Limits, SecuritySettings
from fsm_voice.runtime.handle import CallHandle, MarkOutcome
from fsm_voice.session import VoiceSession, _drain, _Mark
from fsm_voice.transports.twilio_ws import VoiceEndpoint

__all__ = ["SessionBridge", "register_voice_websocket"]

logger = logging.getLogger("fsm_voice.compat")

SessionSource = VoiceSession | Callable[[], VoiceSession]


def register_voice_websocket(
    app: Starlette,
    session_or_factory: SessionSource,
    *,
    path: str = "/voice",
    log: EventLog | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    config: CallConfig | None = None,
    security: SecuritySettings | None = None,
    limits: Limits | None = None,
) -> VoiceEndpoint:
    """Mount the Media Streams WebSocket at `path` on any Starlette or FastAPI app.

    Every call is logged to `log` (default: SQLite at $FSM_VOICE_DB or ./calls.db, as
    the `fsm-voice` command does). `security` defaults to `SecuritySettings.from_env()`
    (TWILIO_AUTH_TOKEN, VOICE_STREAM_URL, FSM_VOICE_STREAM_KEY, FSM_VOICE_INSECURE…),
    checked exactly as `fsm-voice serve` checks. Returns the endpoint (its `calls` are
    the live ones).
    """
    if log is None:
        from fsm_voice.eventlog.sqlite import SqliteEventLog

        log = SqliteEventLog(os.environ.get("FSM_VOICE_DB", "calls.db"))
    security = security if security is not None else SecuritySettings.from_env()
    if not security.verifies:
        logger.warning(
            "/voice upgrades are NOT verified (%s): set TWILIO_AUTH_TOKEN in production",
            security.unverified_reason,
        )
    call_config = config or CallConfig()
    endpoint = VoiceEndpoint(
        log=log,
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
        config=limits.apply_to(call_config) if limits is not None else call_config,
        agent=SessionBridge(session_or_factory),
        machine_name="voice_runtime",
        security=security,
        limits=limits or Limits(),
    )
    app.router.routes.append(WebSocketRoute(path, endpoint))
    return endpoint


class SessionBridge:
    """The engine's agent for voice_runtime sessions: one `_LiveCall` per call."""

    def __init__(self, source: SessionSource) -> None:
        self._source = source

    async def __call__(self, call: CallHandle) -> None:
        source = self._source
        session = source if isinstance(source, VoiceSession) else source()
        if session._handle is not None:
            call.record("runtime", "session_busy", {"generation": session.generation})
            await call.hangup("session_busy")
            return
        await _LiveCall(session, call).run()


class _LiveCall:
    def __init__(self, session: VoiceSession, call: CallHandle) -> None:
        self.session = session
        self.call = call
        self.loop = asyncio.get_running_loop()
        self._stt_task: asyncio.Task[None] | None = None
        self._ended = False
        self._dropping = False  # caller frames are being dropped (queue full)

    async def run(self) -> None:
        session, call = self.session, self.call
        session.set_loop(self.loop)
        session._handle = call
        session.generation += 1
        if call.call_sid:
            session.call_sid = call.call_sid
        _drain(session.inbound)  # the last call's tail and its end-of-input sentinel
        session.inbound_dropped = 0
        call.record(
            "runtime",
            "session_attached",
            {"generation": session.generation, "session": type(session).__name__},
        )
        call.on_caller_audio(self._caller_frame)
        session._on_factory_set = self._factory_set
        session.signal_ws_connected(call.stream_sid)
        pump = asyncio.ensure_future(self._pump())
        try:
            self._maybe_start_stt()
            await call.wait_ended()
        finally:
            self._ended = True
            session._on_factory_set = None
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            await self._stop_stt()
            for item in _drain(session._outbound) + _drain(session._marks_ready):
                if isinstance(item, _Mark):
                    session._release_mark(item, False)
            session._handle = None
            if session.inbound_dropped:
                call.record(
                    "runtime", "inbound_frames_dropped_total", {"frames": session.inbound_dropped}
                )
            try:
                session.signal_disconnected()
            except Exception as e:  # on_disconnected is consumer code
                self._report("runtime", "on_disconnected_failed", e)

    def _caller_frame(self, frame: bytes) -> None:
        if self.session._put_inbound_now(frame) and not self._dropping:
            # Nobody reads the caller's audio (no STT): say so once, count the rest.
            self._dropping = True
            self.call.record(
                "runtime", "inbound_frames_dropped", {"limit": self.session.inbound.maxsize}
            )
        self.session.tap_caller(frame)

    async def _pump(self) -> None:
        """The session's ordered queue into the call: audio and marks keep their order."""
        session, call = self.session, self.call
        while True:
            item = await session._next_outbound()
            if isinstance(item, bytes):
                session.tap_agent(item)
                call.send_audio_nowait(item)
            else:
                future = call.mark(item.name)
                future.add_done_callback(functools.partial(self._mark_done, item))

    def _mark_done(self, mark: _Mark, future: asyncio.Future[MarkOutcome]) -> None:
        self.session._release_mark(mark, future.result() is MarkOutcome.PLAYED)

    # --- the STT's life ---
    def _factory_set(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the call is over
            self.loop.call_soon_threadsafe(self._maybe_start_stt)

    def _maybe_start_stt(self) -> None:
        if self._ended or self._stt_task is not None or self.session.stt_factory is None:
            return
        self._stt_task = asyncio.ensure_future(self._run_stt())

    async def _run_stt(self) -> None:
        session, call = self.session, self.call
        factory = session.stt_factory
        assert factory is not None
        try:
            stt: SttProvider = factory()
        except Exception as e:
            self._report("stt", "provider_failed", e, stage="factory")
            return
        secondary_factory = session.stt_secondary_factory
        if secondary_factory is not None:
            try:
                stt = SttTee(stt, secondary_factory())
            except Exception as e:  # the secondary is for comparison only: carry on
                self._report("stt", "secondary_failed", e, stage="factory")
        sink = getattr(stt, "event_sink", _MISSING)
        if sink is None:  # ours: log the provider's results with the call's events
            stt.event_sink = lambda kind, data: call.record("stt", kind, data)  # type: ignore[attr-defined]
        session._stt = stt
        call.record("stt", "stt_created", {"provider": type(stt).__name__})
        if session.on_stt_ready is not None:
            try:
                session.on_stt_ready(stt)
            except Exception as e:
                self._report("stt", "on_stt_ready_failed", e)
        try:
            await stt.start(session.inbound)
        except Exception as e:
            if session._stt is stt:
                session._stt = None
            with contextlib.suppress(Exception):  # release whatever start acquired
                await stt.stop()
            message = self._report("stt", "provider_failed", e, stage="start")
            on_error = getattr(stt, "on_error", None)
            if on_error is not None:
                try:
                    on_error(message)
                except Exception as callback_error:
                    self._report("stt", "on_error_failed", callback_error)
            return
        call.record("stt", "stt_started", {"provider": type(stt).__name__})

    async def _stop_stt(self) -> None:
        task, self._stt_task = self._stt_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        stt, self.session._stt = self.session._stt, None
        if stt is None:
            return
        try:
            await stt.stop()
        except Exception as e:
            self._report("stt", "provider_stop_failed", e)
        else:
            self.call.record("stt", "stt_stopped", {"provider": type(stt).__name__})

    def _report(self, source: Any, kind: str, error: Exception, **extra: str) -> str:
        message = f"{type(error).__name__}: {error}"
        self.call.record(source, kind, {"error": message, **extra})
        return message


_MISSING = object()
