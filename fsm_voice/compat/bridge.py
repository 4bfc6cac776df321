"""The engine's agent for voice_runtime sessions: one live call ↔ one session.

What it adds to the engine's call: caller frames into the session (`put_inbound`,
`tap_caller`), the session's outbound audio and marks into the call, the STT's life
from `stt_factory`, and the session's lifecycle signals. It uses the session's public
members only, so it drives any object that has them:

- a session whose class defines `attach_call` (fsm_voice's `VoiceSession` and its
  subclasses) speaks the full protocol: `next_outbound()` keeps audio and marks in
  order, barge-in clears and hang-ups reach the call, unplayed marks are released;
- any other object (a seed-style session, a `MagicMock(spec=VoiceSession)`) is driven
  the seed's way: `get_outbound()` and `get_pending_mark()` read separately, a mark
  echo is `signal_mark_received(name)`.

Outbound audio is byte-exact: the engine sends whole 20 ms frames, so a piece that is
not a multiple of 160 bytes leaves its tail here until the next audio; only the end of
an utterance (a mark, a hang-up) pads the tail with silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

import anyio

from fsm_voice.audio.frames import pad_to_frame
from fsm_voice.audio.mulaw import FRAME_BYTES
from fsm_voice.call.handle import CallHandle, MarkOutcome
from fsm_voice.compat.stt_tee import SttTee
from fsm_voice.eventlog.kind_names import KindName
from fsm_voice.eventlog.records import Source

__all__ = ["SessionBridge", "is_session_factory"]


def is_session_factory(source: object) -> bool:
    """A class or a plain callable makes sessions; an object with the session's
    `signal_ws_connected` is one (even when callable, as a mock is)."""
    if isinstance(source, type):
        return True
    return callable(source) and not hasattr(source, "signal_ws_connected")


def _speaks_link_protocol(session: object) -> bool:
    # Looked up on the class: a mock answers every attribute on the instance.
    return callable(getattr(type(session), "attach_call", None))


class SessionBridge:
    """`source` is a session (served one call at a time) or a factory of sessions."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._factory = is_session_factory(source)
        self._serving: set[int] = set()  # id() of the sessions with a live call here

    async def __call__(self, call: CallHandle) -> None:
        session = self._source() if self._factory else self._source
        if id(session) in self._serving:
            await _refuse_busy(call, session)
            return
        self._serving.add(id(session))
        try:
            await _LiveCall(session, call).run()
        finally:
            self._serving.discard(id(session))

    def socket_opened(self, call: CallHandle) -> None:
        """The endpoint's `on_call`: a stream that ends before its `start` still tells an
        idle plain session it is disconnected, as the seed's transport did."""
        if not self._factory:
            call.on_end(functools.partial(self._ended, call))

    def _ended(self, call: CallHandle, reason: str) -> None:
        if call.stream_sid is not None or id(self._source) in self._serving:
            return  # it started: its live call signals (or it was another call's)
        _signal_disconnected(self._source, call)


async def _refuse_busy(call: CallHandle, session: Any) -> None:
    call.record("runtime", "session_busy", {"generation": getattr(session, "generation", None)})
    await call.hangup("session_busy")


def _signal_disconnected(session: Any, call: CallHandle) -> None:
    try:
        session.signal_disconnected()
    except Exception as e:  # on_disconnected is consumer code
        call.record("runtime", "on_disconnected_failed", {"error": f"{type(e).__name__}: {e}"})


class _LiveCall:
    """One call on one session; the `CallLink` a full-protocol session is attached to."""

    def __init__(self, session: Any, call: CallHandle) -> None:
        self.session = session
        self.call = call
        self.loop = asyncio.get_running_loop()
        self.linked = _speaks_link_protocol(session)
        self._tail = b""  # agent audio short of a whole frame, waiting for more
        self._stt_task: asyncio.Task[None] | None = None
        self._ended = False
        self._signalled = False
        self._dropping = False  # caller frames are being dropped (queue full)

    async def run(self) -> None:
        session, call = self.session, self.call
        session.set_loop(self.loop)
        if self.linked and not session.attach_call(self):
            await _refuse_busy(call, session)
            return
        if call.call_sid:
            session.call_sid = call.call_sid
        attached: dict[str, Any] = {"session": type(session).__name__}
        if self.linked:
            attached["generation"] = session.generation
        call.record("runtime", "session_attached", attached)
        call.on_caller_audio(self._caller_frame)
        # Signalled the moment the call ends, before any mark wait is released.
        call.on_end(self._call_ended)
        session.signal_ws_connected(call.stream_sid)
        pumps = [asyncio.ensure_future(pump()) for pump in self._pumps()]
        try:
            self._maybe_start_stt()
            await anyio.lowlevel.checkpoint()  # the STT's start runs before a quick end
            await call.wait_ended()
        finally:
            self._ended = True
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            await self._stop_stt()
            if self.linked:
                session.detach_call()
                if session.inbound_dropped:
                    dropped = {"frames": session.inbound_dropped}
                    call.record("runtime", "inbound_frames_dropped_total", dropped)
            self._call_ended(call.end_reason or "ended")

    def _call_ended(self, reason: str) -> None:
        if not self._signalled:
            self._signalled = True
            _signal_disconnected(self.session, self.call)

    def _caller_frame(self, frame: bytes) -> None:
        if not frame:
            return  # an empty media payload is no frame
        session = self.session
        before = session.inbound_dropped if self.linked else 0
        session.put_inbound(frame)
        if self.linked and session.inbound_dropped > before and not self._dropping:
            # Nobody reads the caller's audio (no STT): say so once, count the rest.
            self._dropping = True
            limit = {"limit": session.inbound.maxsize}
            self.call.record("runtime", "inbound_frames_dropped", limit)
        session.tap_caller(frame)

    # --- agent audio and marks into the call ---
    def _pumps(self) -> list[Callable[[], Any]]:
        if self.linked:
            return [self._pump_in_order]
        return [self._pump_audio, self._pump_marks]

    async def _pump_in_order(self) -> None:
        while True:
            item = await self.session.next_outbound()
            if isinstance(item, str):
                self._send_mark(item)
            else:
                self.session.tap_agent(item)
                self._send_audio(item)

    async def _pump_audio(self) -> None:
        while True:
            self._send_audio(await self.session.get_outbound())

    async def _pump_marks(self) -> None:
        while True:
            self._send_mark(await self.session.get_pending_mark())

    def _send_audio(self, audio: bytes) -> None:
        data = self._tail + audio
        whole = len(data) - len(data) % FRAME_BYTES
        self._tail = data[whole:]
        if whole:
            self.call.send_audio_nowait(data[:whole])

    def _flush_tail(self) -> None:
        """The utterance ends here: its last partial frame goes out padded."""
        tail, self._tail = self._tail, b""
        if tail:
            self.call.send_audio_nowait(pad_to_frame(tail))

    def _send_mark(self, name: str) -> None:
        self._flush_tail()
        future = self.call.mark(name)
        future.add_done_callback(functools.partial(self._mark_done, name))

    def _mark_done(self, name: str, future: asyncio.Future[MarkOutcome]) -> None:
        if not future.cancelled() and future.result() is MarkOutcome.PLAYED:
            self.session.signal_mark_received(name)
        elif self.linked:
            self.session.signal_mark_dropped(name)

    # --- the CallLink side (full-protocol sessions call these on the loop) ---
    def clear(self) -> None:
        self._tail = b""
        self.call.clear_nowait()

    def hang_up(self) -> None:
        self._flush_tail()
        _spawn(self.call.hangup("session_disconnect"))

    def record(self, source: Source, kind: KindName, data: dict[str, Any]) -> None:
        self.call.record(source, kind, data)

    def stt_factory_set(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the call is over
            self.loop.call_soon_threadsafe(self._maybe_start_stt)

    # --- the STT's life ---
    def _maybe_start_stt(self) -> None:
        """Make the STT now (factory, tee, `on_stt_ready`) and start it in a task."""
        if self._ended or self._stt_task is not None:
            return
        session = self.session
        stt = session.stt
        if stt is None:
            if session.stt_factory is None:
                return
            stt = self._make_stt()
            if stt is None:
                return
            session.stt = stt
        self._stt_task = asyncio.ensure_future(self._start_stt(stt))

    def _make_stt(self) -> Any:
        session = self.session
        try:
            stt = session.stt_factory()
        except Exception as e:
            self._report("stt", "provider_failed", e, stage="factory")
            return None
        if session.stt_secondary_factory is not None:
            try:
                stt = SttTee(stt, session.stt_secondary_factory())
            except Exception as e:  # the secondary is for comparison only: carry on
                self._report("stt", "secondary_failed", e, stage="factory")
        if getattr(stt, "event_sink", _MISSING) is None:  # ours: log with the call's events
            call = self.call
            stt.event_sink = lambda kind, data: call.record("stt", kind, data)
        return stt

    async def _start_stt(self, stt: Any) -> None:
        session, call = self.session, self.call
        call.record("stt", "stt_created", {"provider": type(stt).__name__})
        if session.on_stt_ready is not None:
            try:
                session.on_stt_ready(stt)
            except Exception as e:
                self._report("stt", "on_stt_ready_failed", e)
        try:
            await stt.start(session.inbound)
        except Exception as e:
            await self._stt_start_failed(stt, e)
            return
        call.record("stt", "stt_started", {"provider": type(stt).__name__})

    async def _stt_start_failed(self, stt: Any, error: Exception) -> None:
        if self.session.stt is stt:
            self.session.stt = None
        with contextlib.suppress(Exception):  # release whatever start acquired
            await stt.stop()
        message = self._report("stt", "provider_failed", error, stage="start")
        on_error = getattr(stt, "on_error", None)
        if on_error is not None:
            try:
                on_error(message)
            except Exception as callback_error:
                self._report("stt", "on_error_failed", callback_error)

    async def _stop_stt(self) -> None:
        task, self._stt_task = self._stt_task, None
        if task is None:
            return  # this call started no STT: one the session holds is not ours
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        stt, self.session.stt = self.session.stt, None
        if stt is None:
            return
        try:
            await stt.stop()
        except Exception as e:
            self._report("stt", "provider_stop_failed", e)
        else:
            self.call.record("stt", "stt_stopped", {"provider": type(stt).__name__})

    def _report(self, source: Source, kind: KindName, error: Exception, **extra: str) -> str:
        message = f"{type(error).__name__}: {error}"
        self.call.record(source, kind, {"error": message, **extra})
        return message


_MISSING = object()
_TASKS: set[asyncio.Task[Any]] = set()  # keeps fire-and-forget tasks alive until done


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
