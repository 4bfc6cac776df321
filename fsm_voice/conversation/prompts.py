"""Prompt playback: the conversation's output half, owned by `ConversationRunner`.

A `PromptPlayer` plays the machine's `Speak` and `PlayFile` prompts on the call —
TTS sentence by sentence, a mark queued after each — and stops them on barge-in
(stop synthesis + `clear`). When a prompt ends it dispatches `PromptFinished` with
what the caller actually heard, read from the marks: a sentence counts as heard only
when the platform echoed the mark queued right after its audio.

It lives apart from the runner because it is one concept with its own state (the
prompts playing) and its own log rows (`tts` source); the runner hands it only what
it uses: the call, the synthesiser, the recogniser's speaking switch, a way to start
a task and a way to dispatch an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from fsm_voice.audio.frames import pad_to_frame
from fsm_voice.audio.mulaw import FRAME_BYTES, SAMPLE_RATE
from fsm_voice.audio.wav import read_wav_as_mulaw_8k
from fsm_voice.call.handle import CallHandle, MarkOutcome
from fsm_voice.conversation import events as ev
from fsm_voice.providers.base import SpeechSynthesizer, split_sentences

__all__ = ["MARK_WATCHDOG_MARGIN_MS", "Prompt", "PromptPlayer", "Spawn"]

_BYTES_PER_MS = SAMPLE_RATE // 1000  # μ-law: one byte per sample
# Mark watchdog: a prompt's mark that the platform never echoes (a lost message, a
# platform bug) would hold the prompt, and so the conversation, forever. Each mark
# times out once all the audio queued before it has had time to play (it plays at
# real time, so never later than that) plus this margin for the platform's latency.
MARK_WATCHDOG_MARGIN_MS = 3_000

# Starts a task in the call's task group: (async function, its arguments).
Spawn = Callable[..., None]
# What plays a prompt's content: (the prompt, its text or file path).
_Body = Callable[["Prompt", str], Awaitable[None]]


@dataclass
class Prompt:
    """One prompt playing: its sentences sent so far and the mark after each."""

    prompt_id: str
    sentences: list[str] = field(default_factory=list)
    marks: list[asyncio.Future[MarkOutcome]] = field(default_factory=list)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stopped: bool = False
    queued_bytes: int = 0  # agent audio sent for this prompt so far


class PromptPlayer:
    """Plays and stops one call's prompts; reports each one's end to the machine."""

    def __init__(
        self,
        call: CallHandle,
        synthesizer: SpeechSynthesizer,
        *,
        set_speaking: Callable[[bool], None],
        spawn: Spawn,
        dispatch: Callable[[ev.ConversationEvent], None],
        audio_dir: Path,
        mark_margin_ms: int = MARK_WATCHDOG_MARGIN_MS,
    ) -> None:
        self._call = call
        self._synthesizer = synthesizer
        self._set_speaking = set_speaking  # the recogniser hears the agent speaking
        self._spawn = spawn
        self._dispatch = dispatch
        self._audio_dir = audio_dir  # a PlayFile's path is relative to the machine
        self._mark_margin_ms = mark_margin_ms
        self._playing: dict[str, Prompt] = {}

    def speak(self, prompt_id: str, text: str) -> None:
        self._start(prompt_id, self._speak, text)

    def play_file(self, prompt_id: str, path: str) -> None:
        self._start(prompt_id, self._play_file, path)

    def stop(self, prompt_id: str) -> None:
        prompt = self._playing.get(prompt_id)
        if prompt is None or prompt.stopped:
            return
        prompt.stopped = True
        prompt.scope.cancel()  # stops synthesis, not just the forwarding
        # Clear now, before PromptFinished can queue the next prompt's audio behind it.
        self._call.clear_nowait()

    def _start(self, prompt_id: str, body: _Body, arg: str) -> None:
        prompt = Prompt(prompt_id)
        self._playing[prompt_id] = prompt
        self._spawn(self._run, prompt, body, arg)

    async def _run(self, prompt: Prompt, body: _Body, arg: str) -> None:
        self._set_speaking(True)
        try:
            with prompt.scope:
                await body(prompt, arg)
                # `asyncio.wait`, not `gather`: cancelling a gather cancels the marks
                # too, and a gather cancelled with some marks already released can
                # escape the prompt's scope and end the whole conversation.
                if prompt.marks:
                    await asyncio.wait(prompt.marks)
        except Exception as error:  # a synthesis failure must not hang the state
            name = self._synthesizer.name  # logged: replay's stand-in answers to it
            data = {"error": f"{type(error).__name__}: {error}", "provider": name}
            self._call.record("tts", "synthesis_failed", data)
            self._dispatch(ev.ProviderFailed(name, str(error)))
        finally:
            self._set_speaking(False)
        heard = tuple(
            sentence
            for sentence, mark in zip(prompt.sentences, prompt.marks, strict=False)
            if mark.done() and not mark.cancelled() and mark.result() == MarkOutcome.PLAYED
        )
        self._playing.pop(prompt.prompt_id, None)
        self._dispatch(ev.PromptFinished(prompt.prompt_id, heard, prompt.stopped))

    async def _speak(self, prompt: Prompt, text: str) -> None:
        call = self._call
        first = True
        for sentence in split_sentences(text):
            pending = b""
            sent = 0
            pieces: list[list[int]] = []  # [t_ms, bytes] of each send: replay re-times them
            index = len(prompt.marks)
            chunks = self._synthesizer.synthesize(sentence)
            try:
                async for chunk in chunks:
                    pending += chunk
                    whole = len(pending) - len(pending) % FRAME_BYTES
                    if whole:
                        if first:
                            first = False
                            call.record("tts", "first_audio_sent", {"prompt_id": prompt.prompt_id})
                        call.send_audio_nowait(pending[:whole])
                        pieces.append([call.t_ms(), whole])
                        sent += whole
                        pending = pending[whole:]
            except BaseException as stop:
                # Stopped (barge-in, hang-up) or failed mid-sentence: what already went
                # out is on the line, and replay must send exactly that, then stop too.
                cut: dict[str, Any] = {"prompt_id": prompt.prompt_id, "index": index}
                cut |= {"bytes": sent, "pieces": pieces}
                if isinstance(stop, Exception):
                    cut["error"] = f"{type(stop).__name__}: {stop}"
                call.record("tts", "sentence_cut", cut)
                raise
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            if pending:
                call.send_audio_nowait(pad_to_frame(pending))
                pieces.append([call.t_ms(), FRAME_BYTES])
                sent += FRAME_BYTES
            # Where each sentence ends in the agent track: replay re-creates the audio.
            data = {"prompt_id": prompt.prompt_id, "index": index, "bytes": sent, "pieces": pieces}
            call.record("tts", "sentence_synthesized", data)
            prompt.sentences.append(sentence)
            prompt.queued_bytes += sent
            self._mark(prompt)

    async def _play_file(self, prompt: Prompt, path: str) -> None:
        audio = read_wav_as_mulaw_8k(self._audio_dir / path)
        self._call.record("tts", "first_audio_sent", {"prompt_id": prompt.prompt_id})
        self._call.send_audio_nowait(audio)
        prompt.sentences.append(path)
        prompt.queued_bytes += len(audio)
        self._mark(prompt)

    def _mark(self, prompt: Prompt) -> None:
        """Queue the mark after the sentence just sent, with its watchdog.

        Every byte of the prompt so far is at most that many ms of playing ahead of
        the mark (what already played only makes it sooner), so the timeout is never
        shorter than the playback, whatever the synthesiser's pace.
        """
        timeout_ms = prompt.queued_bytes // _BYTES_PER_MS + self._mark_margin_ms
        name = f"{prompt.prompt_id}.{len(prompt.marks)}"
        prompt.marks.append(self._call.mark(name, timeout_ms))
