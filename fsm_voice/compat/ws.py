"""`register_voice_websocket`: voice_runtime's `/voice` handler, run by the engine.

The socket, the Twilio protocol, marks, clears, limits and the event log are the
engine's (`VoiceEndpoint` → one `CallRuntime` per socket). What this module adds is
the bridge (`compat/bridge.py`) between one live call and a session: caller frames
into `session.inbound` (and the mixer), the session's outbound audio and marks into
the call, the STT's life from `stt_factory`, and the session's lifecycle signals. Any
object with the session's members will do, not only fsm_voice's `VoiceSession`.

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

import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from typing import Any, cast

import anyio.to_thread
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from fsm_voice.call.config import CallConfig, Limits, SecuritySettings, env_flag
from fsm_voice.call.handle import CallHandle
from fsm_voice.clock import Clock, IdSource, RandomIds, SystemClock
from fsm_voice.compat import twilio_call
from fsm_voice.compat.bridge import SessionBridge
from fsm_voice.compat.session import VoiceSession
from fsm_voice.compat.twilio_call import TwilioRegion, hangup_call
from fsm_voice.compat.websocket_asgi import WebSocketDecorating, voice_websocket_handler
from fsm_voice.eventlog.base import EventLog
from fsm_voice.server.endpoint import VoiceEndpoint

__all__ = ["REST_CLOSE_WAIT_S", "SessionBridge", "register_voice_websocket"]

logger = logging.getLogger("fsm_voice.compat")

# A session (any object with VoiceSession's members, served one call at a time) or a
# factory that makes one per call (see compat/bridge.py).
SessionSource = VoiceSession | Callable[[], VoiceSession] | Any

# The seed's wait for Twilio to close the stream after a REST hangup, in seconds: the
# compat default of CallConfig.hangup_grace_ms (the native default is shorter).
REST_CLOSE_WAIT_S = 5.0


def register_voice_websocket(
    app: Starlette | WebSocketDecorating,
    session_or_factory: SessionSource,
    *,
    path: str = "/voice",
    log: EventLog | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    config: CallConfig | None = None,
    security: SecuritySettings | None = None,
    limits: Limits | None = None,
    hangup_regions: tuple[TwilioRegion, ...] | None = None,
) -> VoiceEndpoint:
    """Mount the Media Streams WebSocket at `path` on any Starlette or FastAPI app.

    On an app with FastAPI's `websocket(path)` decorator the handler is registered
    through it, as voice_runtime did, and runs this endpoint over the WebSocket object
    it is given (`compat/websocket_asgi.py`); on plain Starlette it is a router route.

    Every call is logged to `log` (default: SQLite at $FSM_VOICE_DB or ./calls.db, as
    the `fsm-voice` command does). `security` defaults to `SecuritySettings.from_env()`
    (TWILIO_AUTH_TOKEN, VOICE_STREAM_URL, FSM_VOICE_STREAM_KEY, FSM_VOICE_INSECURE…),
    checked exactly as `fsm-voice serve` checks; the seed's
    TWILIO_SKIP_SIGNATURE_VALIDATION=1 turns the checks off like FSM_VOICE_INSECURE=1.
    Returns the endpoint (its `calls` are the live ones).

    A session's hangup ends the call over Twilio's REST API first (Twilio then closes
    the stream), with `hangup_regions` tried in order when given (`hangup_call`'s
    sweep; checked here, so a bad tuple fails registration with `ValueError`), else
    with the ambient TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN when set; otherwise, or when
    REST fails, we close the stream ourselves.
    """
    # The one check `hangup_call` uses too, looked up through its module (patchable).
    regions = None if hangup_regions is None else twilio_call._validated_regions(hangup_regions)
    if log is None:
        from fsm_voice.eventlog.sqlite import SqliteEventLog

        log = SqliteEventLog(os.environ.get("FSM_VOICE_DB", "calls.db"))
    if security is None:
        security = SecuritySettings.from_env()
        if env_flag(os.environ.get("TWILIO_SKIP_SIGNATURE_VALIDATION", "")):
            # The seed's switch, read here only (never by `fsm-voice serve`).
            security = dataclasses.replace(security, insecure_dev=True)
    if not security.verifies:
        logger.warning(
            "/voice upgrades are NOT verified (%s): set TWILIO_AUTH_TOKEN in production",
            security.unverified_reason,
        )
    call_config = config or CallConfig(hangup_grace_ms=round(REST_CLOSE_WAIT_S * 1000))
    bridge = SessionBridge(session_or_factory)
    endpoint = VoiceEndpoint(
        log=log,
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
        config=limits.apply_to(call_config) if limits is not None else call_config,
        agent=bridge,
        on_call=functools.partial(_call_opened, bridge, regions),
        machine_name="voice_runtime",
        security=security,
        limits=limits or Limits(),
    )
    _mount(app, path, endpoint)
    return endpoint


def _mount(app: Starlette | WebSocketDecorating, path: str, endpoint: VoiceEndpoint) -> None:
    """Through the app's FastAPI-style `websocket(path)` decorator where it has one
    (voice_runtime registered that way, and some callers capture the handler from
    it), else as a route of the app's router (plain Starlette)."""
    decorator = getattr(app, "websocket", None)
    if callable(decorator):
        decorator(path)(voice_websocket_handler(endpoint, path))
    else:
        # Starlette, or anything with its `router`, as before.
        cast(Starlette, app).router.routes.append(WebSocketRoute(path, endpoint))


def _call_opened(
    bridge: SessionBridge, regions: tuple[TwilioRegion, ...] | None, call: CallHandle
) -> None:
    bridge.socket_opened(call)
    env = os.environ
    if regions is not None or (env.get("TWILIO_ACCOUNT_SID") and env.get("TWILIO_AUTH_TOKEN")):
        call.use_remote_hangup(functools.partial(_rest_hangup, regions))


async def _rest_hangup(regions: tuple[TwilioRegion, ...] | None, call_sid: str) -> str:
    """`hangup_call` (this module's name for it, so patching it here patches this) off
    the event loop; any error it raises makes the runtime close the stream itself."""
    options = {} if regions is None else {"regions": regions}
    await anyio.to_thread.run_sync(functools.partial(hangup_call, call_sid, **options))
    return "completed"
