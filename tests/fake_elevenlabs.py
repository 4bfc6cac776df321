"""A local fake of the ElevenLabs API on 127.0.0.1 that misbehaves on command.

One Starlette app serves both endpoints the adapters use, on one port (the SDK
derives the WebSocket URL from the same base URL):

- `POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000` streams μ-law
  (a 400 Hz tone, `ms_per_char` per character) in `chunk_bytes` pieces. Commands:
  fail the next request with a status, stall it after its first chunk, or pace it
  (one chunk per `release()`), and it records when a client goes away mid-stream.
- `WS /v1/speech-to-text/realtime` speaks Scribe realtime: `session_started`, then for
  caller audio an energy VAD (RMS over `threshold_rms` is speech) sends a
  `partial_transcript` when speech starts and a `committed_transcript` with the next
  scripted line after `endpoint_ms` of silence. Every session records its query, key
  and every audio byte. Commands: drop the socket, send any error message type,
  stall new sessions (no `session_started`), end a session at a time limit (counted
  in audio received, so tests are deterministic).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE, decode, encode
from fsm_voice.server import serve_in_background

API_KEY = "test-key-not-secret"


def tone(ms: int) -> bytes:
    """`ms` of a 400 Hz μ-law tone (whole 20 ms frames)."""
    t = np.arange(FRAME_BYTES) / SAMPLE_RATE
    frame = encode(np.rint(8000 * np.sin(2 * np.pi * 400.0 * t)).astype(np.int16))
    return frame * max(1, ms // 20)


def silence(ms: int) -> bytes:
    return b"\xff" * (SAMPLE_RATE // 1000 * ms)


def rms(mulaw: bytes) -> float:
    samples = decode(mulaw).astype(np.float64)
    return math.sqrt(float(np.mean(samples * samples))) if len(samples) else 0.0


@dataclass
class SttSession:
    """What one Scribe session received, and the switches that act on it."""

    index: int
    query: dict[str, str]
    api_key: str | None
    audio: bytearray = field(default_factory=bytearray)
    messages: int = 0
    closed_by: str = ""  # "client" | "drop" | "error:<type>" | "time_limit"
    socket: WebSocket | None = None
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


@dataclass
class TtsRequest:
    voice_id: str
    text: str
    model_id: str | None
    output_format: str | None
    api_key: str | None
    sent_bytes: int = 0
    finished: bool = False  # the whole body went out
    client_left: bool = False  # the client went away mid-stream


class FakeElevenLabs:
    """The fake; `async with fake.serve() as base_url:` runs it on a free port."""

    def __init__(
        self,
        script: list[str] | None = None,
        *,
        threshold_rms: float = 500.0,
        endpoint_ms: int = 300,
        ms_per_char: int = 40,
        chunk_bytes: int = 800,
    ) -> None:
        self.script = list(script or [])
        self.threshold_rms = threshold_rms
        self.endpoint_ms = endpoint_ms
        self.ms_per_char = ms_per_char
        self.chunk_bytes = chunk_bytes
        self.sessions: list[SttSession] = []
        self.tts_requests: list[TtsRequest] = []
        self.session_limit_ms: int | None = None  # audio per session before the limit
        self._session_plan: deque[str] = deque()  # "stall" | "drop" | an error type
        self._tts_plan: deque[tuple[str, int]] = deque()  # ("fail", status) | ("stall", 0)
        self.tts_paced = False  # one chunk per `release()`
        self.tts_real_time = False  # stream at the audio's own pace, like the service
        self._tts_gate = asyncio.Semaphore(0)
        self._changed = asyncio.Condition()
        self._utterances = 0
        self.app = Starlette(
            routes=[
                Route("/v1/text-to-speech/{voice_id}/stream", self._tts, methods=["POST"]),
                WebSocketRoute("/v1/speech-to-text/realtime", self._stt),
            ]
        )

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        async with serve_in_background(self.app) as server:
            yield f"http://127.0.0.1:{server.port}"
            for session in self.sessions:  # let every handler finish before the server
                session.outbox.put_nowait(None)

    # --- commands ---

    def plan_sessions(self, *actions: str) -> None:
        """How the next new sessions go: "stall", "drop", or an error message type."""
        self._session_plan.extend(actions)

    def plan_tts(self, *actions: tuple[str, int]) -> None:
        """How the next TTS requests go: ("fail", status), ("stall", 0) (silent after
        the first chunk) or ("cut", 0) (the connection breaks after the first chunk)."""
        self._tts_plan.extend(actions)

    def release(self, chunks: int = 1) -> None:
        """Let a paced TTS stream send `chunks` more chunks."""
        for _ in range(chunks):
            self._tts_gate.release()

    def drop(self, index: int = -1) -> None:
        """Close a session's socket from the server side (code 1011), mid-stream."""
        self._send(index, {"_close": "drop"})

    def send_error(self, kind: str, index: int = -1, *, close: bool = True) -> None:
        """Send a Scribe error message of type `kind` (then close, as the service does)."""
        self._send(index, {"message_type": kind, "error": f"fake {kind}"})
        if close:
            self._send(index, {"_close": f"error:{kind}"})

    def send(self, message: dict[str, Any], index: int = -1) -> None:
        self._send(index, message)

    def _send(self, index: int, message: dict[str, Any]) -> None:
        self.sessions[index].outbox.put_nowait(message)

    async def wait_for(self, predicate: Any) -> None:
        """Return once `predicate()` holds (re-checked whenever the fake's state changes)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def received(self) -> bytes:
        """Every audio byte every session received, in order."""
        return b"".join(bytes(s.audio) for s in self.sessions)

    # --- TTS ---

    async def _tts(self, request: Request) -> Response:
        body = json.loads(await request.body())
        record = TtsRequest(
            request.path_params["voice_id"],
            body.get("text", ""),
            body.get("model_id"),
            request.query_params.get("output_format"),
            request.headers.get("xi-api-key"),
        )
        self.tts_requests.append(record)
        await self._notify()
        if record.api_key != API_KEY:
            return JSONResponse({"detail": {"status": "invalid_api_key"}}, status_code=401)
        if record.output_format != "ulaw_8000":
            return JSONResponse({"detail": "this fake speaks ulaw_8000 only"}, status_code=422)
        action, status = self._tts_plan.popleft() if self._tts_plan else ("ok", 0)
        if action == "fail":
            return JSONResponse({"detail": f"fake failure {status}"}, status_code=status)
        audio = tone(self.ms_per_char * max(1, len(record.text)))
        return StreamingResponse(self._tts_body(record, audio, action))

    async def _tts_body(
        self, record: TtsRequest, audio: bytes, action: str
    ) -> AsyncIterator[bytes]:
        try:
            for start in range(0, len(audio), self.chunk_bytes):
                if self.tts_paced:
                    await self._tts_gate.acquire()
                elif start and action == "stall":
                    await asyncio.Event().wait()  # never set: the client must time out
                elif start and action == "cut":
                    raise ConnectionResetError("fake: the connection breaks mid-body")
                elif start and self.tts_real_time:
                    await asyncio.sleep(self.chunk_bytes / SAMPLE_RATE)
                chunk = audio[start : start + self.chunk_bytes]
                record.sent_bytes += len(chunk)
                yield chunk
            record.finished = True
        finally:
            if not record.finished:
                record.client_left = True
            await self._notify()

    # --- STT (Scribe realtime) ---

    async def _stt(self, socket: WebSocket) -> None:
        session = SttSession(
            len(self.sessions), dict(socket.query_params), socket.headers.get("xi-api-key")
        )
        session.socket = socket
        self.sessions.append(session)
        await socket.accept()
        await self._notify()
        plan = self._session_plan.popleft() if self._session_plan else "ok"
        if session.api_key != API_KEY:
            plan = "auth_error"
        if plan == "drop":
            session.closed_by = "drop"
            await socket.close(1011)
            await self._notify()
            return
        if plan not in ("ok", "stall"):
            await socket.send_json({"message_type": plan, "error": f"fake {plan}"})
            session.closed_by = f"error:{plan}"
            await socket.close(1008)
            await self._notify()
            return
        if plan == "ok":
            config = {"sample_rate": 8000, "audio_format": session.query.get("audio_format")}
            await socket.send_json(
                {
                    "message_type": "session_started",
                    "session_id": f"s{session.index}",
                    "config": config,
                }
            )
        tasks = {
            asyncio.ensure_future(self._read(session)),
            asyncio.ensure_future(self._write(session)),
        }
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await socket.close(1011 if session.closed_by == "drop" else 1000)
        await self._notify()

    def _commit(self, session: SttSession, vad: _Vad) -> None:
        """The VAD ended an utterance: commit the next scripted line (with word times
        too when the session asked for `include_timestamps`)."""
        script = self.script
        text = script[self._utterances] if self._utterances < len(script) else ""
        self._utterances += 1
        session.outbox.put_nowait({"message_type": "committed_transcript", "text": text})
        if session.query.get("include_timestamps") == "true":
            session.outbox.put_nowait(_with_timestamps(text, vad))

    async def _write(self, session: SttSession) -> None:
        socket = session.socket
        assert socket is not None
        while (message := await session.outbox.get()) is not None:
            if "_close" in message:
                session.closed_by = str(message["_close"])
                return
            await socket.send_json(message)

    async def _read(self, session: SttSession) -> None:
        socket = session.socket
        assert socket is not None
        vad = _Vad(self.threshold_rms, self.endpoint_ms)
        try:
            while True:
                message = await socket.receive_json()
                if message.get("message_type") != "input_audio_chunk":
                    continue
                audio = base64.b64decode(message.get("audio_base_64", ""))
                session.audio.extend(audio)
                session.messages += 1
                for event in vad.feed(audio):
                    if event == "started":
                        session.outbox.put_nowait(
                            {"message_type": "partial_transcript", "text": "…"}
                        )
                    else:
                        self._commit(session, vad)
                limit = self.session_limit_ms
                if limit is not None and len(session.audio) >= limit * SAMPLE_RATE // 1000:
                    session.outbox.put_nowait(
                        {"message_type": "session_time_limit_exceeded", "error": "fake limit"}
                    )
                    session.outbox.put_nowait({"_close": "time_limit"})
                    await self._notify()
                    return
                await self._notify()
        except WebSocketDisconnect:
            session.closed_by = session.closed_by or "client"


def _with_timestamps(text: str, vad: _Vad) -> dict[str, Any]:
    """The committed transcript again, its words spread over the utterance's audio."""
    words = text.split() or [""]
    step = (vad.end_s - vad.start_s) / len(words)
    items = [
        {
            "text": word,
            "start": round(vad.start_s + i * step, 3),
            "end": round(vad.start_s + (i + 1) * step, 3),
            "type": "word",
            "logprob": -0.05,
        }
        for i, word in enumerate(words)
    ]
    return {"message_type": "committed_transcript_with_timestamps", "text": text, "words": items}


class _Vad:
    """Energy endpointing over 20 ms frames: "started" at the first loud frame,
    "ended" after `endpoint_ms` of quiet frames."""

    def __init__(self, threshold_rms: float, endpoint_ms: int) -> None:
        self.threshold_rms = threshold_rms
        self.endpoint_frames = max(1, endpoint_ms // 20)
        self.in_speech = False
        self.quiet = 0
        self.frames = 0  # frames seen: the session's audio clock, in 20 ms steps
        self.start_s = 0.0  # the utterance's first loud frame, in session seconds
        self.end_s = 0.0  # the end of its last loud frame
        self._carry = b""

    def feed(self, audio: bytes) -> list[str]:
        events: list[str] = []
        data = self._carry + audio
        whole = len(data) - len(data) % FRAME_BYTES
        self._carry = data[whole:]
        for start in range(0, whole, FRAME_BYTES):
            loud = rms(data[start : start + FRAME_BYTES]) > self.threshold_rms
            self.frames += 1
            if loud:
                self.quiet = 0
                self.end_s = self.frames * 0.02
                if not self.in_speech:
                    self.in_speech = True
                    self.start_s = (self.frames - 1) * 0.02
                    events.append("started")
            elif self.in_speech:
                self.quiet += 1
                if self.quiet >= self.endpoint_frames:
                    self.in_speech = False
                    events.append("ended")
        return events
