"""The offline recogniser's decoder for replay: pocketsphinx in this process, inline.

A process pool answers in real time while the replay's clock is virtual, so a
transcript's virtual time would depend on the machine's load; decoded inline, on the
loop's own thread, it comes out at the virtual millisecond the utterance closed, on
every run (see `replay.offline`).
"""

from __future__ import annotations

import concurrent.futures
import threading

import anyio

from fsm_voice.providers.offline_stt import (
    DecodeRequest,
    DecodeResult,
    DecoderPool,
    decode_utterance,
    init_worker,
    vocabulary,
)
from fsm_voice.replay.recording import ReplayInputError

__all__ = ["InlineDecoder", "inline_decoder", "prepare"]


class InlineDecoder(DecoderPool):
    """A `DecoderPool` that decodes in this process, at once, on the caller's thread.

    pocketsphinx holds the GIL for the 5–30 ms of a decode: fine for replay, which is
    a batch job, and never what a live server should do.
    """

    def __init__(self) -> None:
        super().__init__(workers=1)
        self._loaded = False
        self._loading = threading.Lock()
        self.decoded = 0  # utterances decoded (a test checks the audio was really used)

    def load(self) -> None:
        """Load the model and the dictionary now (seconds, once per process)."""
        with self._loading:  # replays running side by side may ask at once
            if self._loaded:
                return
            try:
                init_worker()
            except ImportError as error:
                raise ReplayInputError(
                    f"offline replay needs pocketsphinx: pip install 'fsm-voice[offline]' ({error})"
                ) from None
            vocabulary()
            self._loaded = True

    async def warm(self) -> None:
        if not self._loaded:  # loaded: no thread hop (the replay's clock stands still)
            await anyio.to_thread.run_sync(self.load)

    def submit(self, request: DecodeRequest) -> concurrent.futures.Future[DecodeResult]:
        self.load()
        future: concurrent.futures.Future[DecodeResult] = concurrent.futures.Future()
        try:
            future.set_result(decode_utterance(request))
        except Exception as error:  # delivered as the pool would: through the future
            future.set_exception(error)
        self.decoded += 1
        return future

    def heal(self) -> None:
        pass  # nothing to break: no worker processes

    def shutdown(self) -> None:
        pass


_shared: InlineDecoder | None = None


def inline_decoder() -> InlineDecoder:
    """The process's one inline decoder (its model is loaded once, shared by replays)."""
    global _shared
    if _shared is None:
        _shared = InlineDecoder()
    return _shared


async def prepare(decoder: DecoderPool) -> None:
    """Load the decoder and the dictionary before the call: starting must take no time."""
    await anyio.to_thread.run_sync(vocabulary)
    await decoder.warm()
