"""voice_runtime's mock transport: two voice processes talk without Twilio (TRANSPORT=mock).

- `initiate_mock_call(target_url)` stands in for `initiate_outbound_call`: it posts the
  target's `/incoming` webhook as Twilio would, reads the `<Stream>` out of the TwiML it
  answers, and dials that stream with a `FakeWsBridge` (and the caller's own `/voice`
  with another, so marks come back on both sides).
- `FakeWsBridge` plays Twilio's side of one Media Stream, in a thread of its own: it
  sends `connected` and `start` (with the TwiML's `<Parameter>`s, as Twilio does, so a
  stream token gets through), plays the agent's audio out and echoes each mark when
  playback reaches it, and sends `stop` when stopped. It streams no caller audio.
- `create_text_relay(peer_url)` is a `MockTts(on_spoken=...)` callback that posts what
  was said to the peer's `/test/inject`, where the peer's app injects it into its
  `MockStt`. After `initiate_mock_call`, the routed path of that peer's stream
  (`/voice/<route>` → `/test/inject/<route>`) is used.

HTTP goes through `httpx` (a module attribute here, so tests can patch it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from html.parser import HTMLParser
from urllib.parse import urlsplit, urlunsplit

import httpx

from fsm_voice.clock import IdSource, RandomIds, SystemClock
from fsm_voice.simulator.client import dial
from fsm_voice.simulator.phone import PhoneSimulator

__all__ = [
    "FakeWsBridge",
    "TextRelay",
    "cleanup_bridges",
    "create_text_relay",
    "initiate_mock_call",
    "is_mock_transport",
]

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0
STOP_JOIN_TIMEOUT_S = 5.0
MOCK_CALLER_NUMBER = "+358400000000"  # the From the seed's mock calls carry

_active_bridges: list[FakeWsBridge] = []  # every bridge a mock call started, for cleanup
_bridges_lock = threading.Lock()
_relay_url_by_peer: dict[str, str] = {}  # peer base URL → its routed /test/inject URL


def is_mock_transport() -> bool:
    """Whether TRANSPORT=mock (any case): calls are mock calls, not Twilio's."""
    return os.getenv("TRANSPORT", "").strip().lower() == "mock"


class FakeWsBridge:
    """Twilio's side of one Media Stream, run in a daemon thread (see the module doc)."""

    def __init__(
        self,
        call_sid: str | None = None,
        *,
        custom_parameters: dict[str, str] | None = None,
        ids: IdSource | None = None,
    ) -> None:
        self._ids = ids or RandomIds()
        self._call_sid = call_sid or self._ids.new_id("CAMOCK_")
        self._stream_sid = self._ids.new_id("MZ")
        self.custom_parameters = dict(custom_parameters or {})
        self.error: Exception | None = None  # why the stream could not run, if it could not
        self.close_code: int | None = None  # how the stream ended (1000: normally)
        self._lock = threading.Lock()
        self._stop_requested = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sim: PhoneSimulator | None = None
        self._connected = threading.Event()
        self._finished = threading.Event()

    @property
    def call_sid(self) -> str:
        return self._call_sid

    @property
    def stream_sid(self) -> str:
        return self._stream_sid

    @property
    def marks_echoed(self) -> list[str]:
        """The marks echoed back so far, in order."""
        sim = self._sim
        return [] if sim is None else list(sim.marks_echoed)

    def start(self, ws_url: str) -> None:
        """Dial `ws_url` in a background thread and play Twilio's part until stopped."""
        if self._thread is not None:
            raise RuntimeError("a FakeWsBridge carries one stream; make another")
        self._thread = threading.Thread(
            target=self._run, args=(ws_url,), name=f"FakeWsBridge {self._call_sid}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Hang up (`stop`, then close with 1000) and wait up to 5 s for the thread."""
        with self._lock:
            self._stop_requested = True
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # its loop is gone: the stream ended
                loop.call_soon_threadsafe(wake.set)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_JOIN_TIMEOUT_S)

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Whether `start` has been sent (blocks up to `timeout` s for it)."""
        return self._connected.wait(timeout)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Whether the stream has ended, either side hanging up (blocks up to `timeout` s)."""
        return self._finished.wait(timeout)

    def _run(self, ws_url: str) -> None:
        try:
            asyncio.run(self._stream(ws_url))
        except Exception as e:  # a daemon thread has nobody to raise to: keep and log it
            self.error = e
            logger.exception("FakeWsBridge %s: the stream to %s failed", self._call_sid, ws_url)
        finally:
            self._finished.set()

    async def _stream(self, ws_url: str) -> None:
        wake = asyncio.Event()
        with self._lock:
            if self._stop_requested:
                return
            self._loop, self._wake = asyncio.get_running_loop(), wake
        async with dial(ws_url) as sock:
            sim = PhoneSimulator(
                sock,
                SystemClock(),
                self._ids,
                custom_parameters=self.custom_parameters,
                call_sid=self._call_sid,
                stream_sid=self._stream_sid,
            )
            self._sim = sim
            async with sim:  # sends connected + start; leaving it hangs up unless ended
                self._connected.set()
                logger.info("FakeWsBridge %s: streaming to %s", self._call_sid, ws_url)
                ended = asyncio.ensure_future(sim.wait_closed())
                stopped = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (ended, stopped):
                        task.cancel()
                    await asyncio.gather(ended, stopped, return_exceptions=True)
            self.close_code = sim.close_code


def initiate_mock_call(
    target_url: str, caller_url: str | None = None, *, ids: IdSource | None = None
) -> str:
    """Start a mock call to the process at `target_url`; returns its CallSid (CAMOCK_…).

    Posts `/incoming` (CallSid, From) and dials the TwiML's `<Stream>` (the target's
    `/voice` when the answer has none). With `caller_url` (default: VOICE_STREAM_URL)
    a second bridge dials the caller's own `/voice`, so its marks are echoed too.
    Raises `httpx.HTTPStatusError` when the target refuses the webhook.
    """
    call_sid = (ids or RandomIds()).new_id("CAMOCK_")
    resp = httpx.post(
        f"{target_url.rstrip('/')}/incoming",
        data={"CallSid": call_sid, "From": MOCK_CALLER_NUMBER},
        timeout=HTTP_TIMEOUT_S,
    )
    resp.raise_for_status()
    stream = _read_stream(resp.text)
    target_ws_url = _ws_url(stream.url) if stream.url else _voice_ws_url(target_url)
    _relay_url_by_peer[_peer_key(target_url)] = _inject_url(target_ws_url)
    _start_bridge(
        FakeWsBridge(call_sid=call_sid, custom_parameters=stream.parameters, ids=ids), target_ws_url
    )
    logger.info("mock call %s to %s", call_sid, target_ws_url)

    own_url = caller_url or os.getenv("VOICE_STREAM_URL", "")
    if own_url:
        _start_bridge(FakeWsBridge(call_sid=call_sid, ids=ids), _voice_ws_url(own_url))
    else:
        logger.warning(
            "mock call %s: no caller_url or VOICE_STREAM_URL, so the "
            "caller's own marks will not be echoed",
            call_sid,
        )
    return call_sid


def _start_bridge(bridge: FakeWsBridge, ws_url: str) -> None:
    bridge.start(ws_url)
    with _bridges_lock:
        _active_bridges.append(bridge)


def cleanup_bridges() -> None:
    """Stop every bridge the mock calls started (each hangs up its stream)."""
    with _bridges_lock:
        bridges = list(_active_bridges)
        _active_bridges.clear()
    for bridge in bridges:
        bridge.stop()


class TextRelay:
    """Posts each spoken text to a peer's `/test/inject` (`create_text_relay` makes it)."""

    def __init__(self, peer_url: str) -> None:
        self.peer_key = _peer_key(peer_url)
        self._client = httpx.Client(timeout=HTTP_TIMEOUT_S)

    @property
    def url(self) -> str:
        """Where the next text goes: the routed URL once a mock call found one."""
        return _relay_url_by_peer.get(self.peer_key, f"{self.peer_key}/test/inject")

    def __call__(self, text: str) -> None:
        url = self.url
        try:
            self._client.post(url, json={"text": text}).raise_for_status()
        except Exception:  # the peer's trouble must not end this side's turn
            logger.exception("relaying %d chars to %s failed", len(text), url)

    def close(self) -> None:
        self._client.close()


def create_text_relay(peer_url: str) -> TextRelay:
    """A `MockTts(on_spoken=...)` callback posting `{"text": ...}` to the peer at `peer_url`."""
    return TextRelay(peer_url)


# --- URLs and TwiML ---
class _Stream:
    def __init__(self) -> None:
        self.url = ""
        self.parameters: dict[str, str] = {}


class _StreamParser(HTMLParser):
    """The first `<Stream url=…>` and its `<Parameter name=… value=…>`s."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = _Stream()
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name.lower(): (value or "").strip() for name, value in attrs}
        if tag == "stream" and not self.stream.url and found.get("url"):
            self.stream.url = found["url"]
            self._inside = True
        elif tag == "parameter" and self._inside and found.get("name"):
            self.stream.parameters[found["name"]] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "stream":
            self._inside = False


def _read_stream(twiml: object) -> _Stream:
    """The stream the TwiML connects to; an empty one when there is none to read."""
    if not isinstance(twiml, str | bytes):
        return _Stream()
    parser = _StreamParser()
    try:
        parser.feed(twiml.decode() if isinstance(twiml, bytes) else twiml)
        parser.close()
    except (UnicodeDecodeError, ValueError):
        return _Stream()
    return parser.stream


def _peer_key(url: str) -> str:
    return url.rstrip("/")


def _ws_url(url: str) -> str:
    """The same URL with http(s) as ws(s), as Twilio dials a stream."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def _voice_ws_url(base_url: str) -> str:
    """A process's `/voice` WebSocket: its base URL's, unless the URL already names it."""
    url = _ws_url(base_url.rstrip("/"))
    path = urlsplit(url).path
    if path == "/voice" or path.startswith("/voice/"):
        return url
    return f"{url}/voice"


def _inject_url(stream_url: str) -> str:
    """The peer's `/test/inject` for a stream: `/voice/<route>` → `/test/inject/<route>`."""
    parts = urlsplit(stream_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    route = parts.path.removeprefix("/voice/") if parts.path.startswith("/voice/") else ""
    path = f"/test/inject/{route}" if route else "/test/inject"
    return urlunsplit((scheme, parts.netloc, path, "", ""))
