"""`AudioMixer`: both sides of a call mixed into one track, recorded and/or monitored.

The caller's frames arrive in real time (20 ms each), so they are the mixer's clock:
each caller frame is mixed with the next 20 ms of agent audio waiting (or silence).
Agent audio comes in bursts faster than real time, as the platform buffers it; a
barge-in `clear_agent()` drops what has not "played" yet, as the platform does.

Recording writes an 8 kHz mono WAV as it goes and finishes its header on `stop()`:
16-bit PCM by default (every player and Python's own `wave` read it), or μ-law, the
call's own bytes, as voice_runtime wrote (`record_format="mulaw"`). It needs nothing
outside Python. Live monitoring pipes the mix to `ffplay`
only when it is installed; without it the mixer records and says why it does not play.

voice_runtime's names are here too: `write_caller`/`write_agent`/`shutdown` and the
constants of its `audio` module. Where one side is silent the other side's bytes are
written unchanged (decoding and re-encoding would turn the μ-law code 0x7F into 0xFF).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import struct
import subprocess
import threading
import wave
from collections import deque
from pathlib import Path
from typing import IO, Final, Literal

from fsm_voice.audio.frames import mix, mix_frames, pad_to_frame
from fsm_voice.audio.mulaw import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, SILENCE_BYTE, decode
from fsm_voice.audio.wav import wav_bytes_mulaw

__all__ = [
    "CATCHUP_LIMIT",
    "FFPLAY_ARGS",
    "FRAME_BYTES",
    "FRAME_INTERVAL",
    "MAX_FRAMES",
    "SILENCE_FRAME",
    "AudioMixer",
    "mix_frames",
]

log = logging.getLogger(__name__)

FFPLAY_ARGS: Final = (
    "-nodisp", "-autoexit", "-loglevel", "quiet", "-f", "mulaw", "-ar", str(SAMPLE_RATE), "-i", "-",
)  # fmt: skip
FRAME_INTERVAL: Final = FRAME_MS / 1000  # seconds per frame, voice_runtime's name
SILENCE_FRAME: Final = bytes([SILENCE_BYTE]) * FRAME_BYTES  # one frame of μ-law silence
# Agent frames held ahead of the caller's clock before the oldest go. The transport
# hands a whole prompt over faster than it plays: 60 s, where the seed's 8 s dropped
# the start of a long prompt from the recording.
MAX_FRAMES: Final = 3_000
CATCHUP_LIMIT: Final = 5 * FRAME_INTERVAL  # voice_runtime's mix-thread limit; no thread here
_HEADER: Final = wav_bytes_mulaw(b"")  # RIFF size at 4, fact samples and data size at the end


class AudioMixer:
    """Mixes caller and agent audio; records to `record_path`, monitors via ffplay."""

    def __init__(
        self,
        record_path: Path | str | None = None,
        monitor: bool | None = None,
        *,
        record_format: Literal["pcm16", "mulaw"] = "pcm16",
    ) -> None:
        from fsm_voice.compat.settings import monitor_enabled

        if record_format not in ("pcm16", "mulaw"):
            raise ValueError(f"record_format must be 'pcm16' or 'mulaw', got {record_format!r}")
        self.record_path = Path(record_path) if record_path is not None else None
        self.record_format = record_format
        # voice_runtime monitored by default; VOICE_MONITOR (default off) decides here.
        self.monitor = monitor_enabled() if monitor is None else monitor
        self.monitoring = False  # ffplay is running
        self.monitor_problem: str | None = None  # why monitoring was asked for but is off
        self.frames_mixed = 0
        self._agent: deque[bytes] = deque(maxlen=MAX_FRAMES)
        self._agent_partial = b""
        self._file: IO[bytes] | None = None  # μ-law recording
        self._pcm: wave.Wave_write | None = None  # PCM16 recording
        self._player: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._bytes_written = 0

    def start(self) -> None:
        path = self.record_path
        if path is not None and self._file is None and self._pcm is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.record_format == "mulaw":
                self._file = path.open("wb")
                self._file.write(_HEADER)
            else:
                pcm = wave.open(str(path), "wb")  # noqa: SIM115  (closed by stop())
                pcm.setnchannels(1)
                pcm.setsampwidth(2)
                pcm.setframerate(SAMPLE_RATE)
                self._pcm = pcm
        if self.monitor and self._player is None:
            self._start_player()

    def _start_player(self) -> None:
        ffplay = shutil.which("ffplay")
        if ffplay is None:
            self.monitor_problem = "ffplay is not installed: recording only"
            log.warning("AudioMixer: %s", self.monitor_problem)
            return
        try:
            self._player = subprocess.Popen(
                [ffplay, *FFPLAY_ARGS],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as e:
            self.monitor_problem = f"ffplay did not start: {e}"
            log.warning("AudioMixer: %s", self.monitor_problem)
            return
        self.monitoring = True

    # --- taps ---
    def add_agent(self, audio: bytes) -> None:
        """Agent audio as sent (any length); it plays out against the caller's frames."""
        with self._lock:
            data = self._agent_partial + audio
            whole = len(data) - len(data) % FRAME_BYTES
            for start in range(0, whole, FRAME_BYTES):
                self._agent.append(data[start : start + FRAME_BYTES])
            self._agent_partial = data[whole:]

    def add_caller(self, frame: bytes) -> None:
        """One caller frame: mixed with the agent audio due now and written out."""
        with self._lock:
            caller = pad_to_frame(frame) if len(frame) % FRAME_BYTES else frame
            for start in range(0, len(caller), FRAME_BYTES):
                if self._agent:
                    agent = self._agent.popleft()
                elif self._agent_partial:
                    agent, self._agent_partial = pad_to_frame(self._agent_partial), b""
                else:
                    agent = SILENCE_FRAME
                self._emit(_mix_pair(caller[start : start + FRAME_BYTES], agent))

    write_agent = add_agent  # voice_runtime's names
    write_caller = add_caller

    def clear_agent(self) -> None:
        """Barge-in: the agent audio not yet played is dropped."""
        with self._lock:
            self._agent.clear()
            self._agent_partial = b""

    def _emit(self, mixed: bytes) -> None:
        self.frames_mixed += 1
        if self._file is not None:
            self._file.write(mixed)
            self._bytes_written += len(mixed)
        elif self._pcm is not None:
            self._pcm.writeframes(decode(mixed).astype("<i2").tobytes())
        player = self._player
        if player is not None and player.stdin is not None:
            try:
                player.stdin.write(mixed)
                player.stdin.flush()
            except (BrokenPipeError, OSError):  # the listener closed ffplay: keep recording
                self._player = None
                self.monitoring = False

    def stop(self) -> None:
        """Finish the WAV (sizes patched) and close ffplay; idempotent."""
        with self._lock:
            file, self._file = self._file, None
            if file is not None:
                _patch_sizes(file, self._bytes_written)
                file.close()
            pcm, self._pcm = self._pcm, None
            if pcm is not None:
                pcm.close()  # `wave` patches the header sizes itself
            player, self._player = self._player, None
            self.monitoring = False
        if player is not None:
            with contextlib.suppress(OSError):
                if player.stdin is not None:
                    player.stdin.close()
            try:
                player.wait(timeout=5)
            except subprocess.TimeoutExpired:
                player.kill()
                player.wait()

    shutdown = stop  # voice_runtime's name


def _mix_pair(caller: bytes, agent: bytes) -> bytes:
    """One mixed frame; a silent side leaves the other side's bytes as they were."""
    if agent == SILENCE_FRAME:
        return caller
    if caller == SILENCE_FRAME:
        return agent
    return mix(caller, agent)


def _patch_sizes(file: IO[bytes], data_bytes: int) -> None:
    if data_bytes & 1:
        file.write(b"\x00")  # RIFF chunks are word-aligned
    file.seek(4)
    file.write(struct.pack("<I", len(_HEADER) - 8 + data_bytes + (data_bytes & 1)))
    file.seek(len(_HEADER) - 12)  # fact's sample count, then data's id and size
    file.write(struct.pack("<I", data_bytes))
    file.seek(len(_HEADER) - 4)
    file.write(struct.pack("<I", data_bytes))
