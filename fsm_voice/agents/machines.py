"""Shared by `serve`, `demo` and the benches: providers for a conversation, and
finding the caller script written for a machine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fsm_voice.call.runtime import Agent
from fsm_voice.conversation.language.loader import load_machine
from fsm_voice.conversation.runner import conversation_agent
from fsm_voice.conversation.telephony import SimulatedTelephony, Telephony
from fsm_voice.errors import ConfigError
from fsm_voice.providers import create_recognizer, create_synthesizer, missing_credential
from fsm_voice.providers.base import SpeechRecognizer, SpeechSynthesizer
from fsm_voice.providers.tee import TeeRecognizer

__all__ = [
    "PROVIDER_KINDS",
    "SERVING_PROVIDERS",
    "Providers",
    "build_providers",
    "require_credentials",
]

PROVIDER_KINDS = ("offline", "scripted")  # what demo and the benches can run (no account)
# what a server can answer calls with: the registry's names (cloud ones need an account)
SERVING_PROVIDERS = ("offline", "scripted", "elevenlabs", "azure")


@dataclass
class Providers:
    recognizer: Callable[[], SpeechRecognizer]  # one recogniser per call
    synthesizer: SpeechSynthesizer  # shared by the calls of the process
    caller_voice: SpeechSynthesizer  # what the simulated caller speaks with
    telephony: Telephony

    async def stop(self) -> None:
        await self.synthesizer.stop()
        if self.caller_voice is not self.synthesizer:
            await self.caller_voice.stop()


async def build_providers(kind: str, caller_lines: Sequence[str] = ()) -> Providers:
    """Start the providers of `kind` (models loaded, workers warm) before any call.

    `scripted` speaks tones and hears `caller_lines` in order: the whole pipeline
    without models, for a quick look or a machine without speech.
    """
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"unknown providers {kind!r} (choose from {', '.join(PROVIDER_KINDS)})")
    lines = list(caller_lines)

    def recognizer() -> SpeechRecognizer:
        if kind == "scripted":
            return create_recognizer(kind, script=lines)
        return create_recognizer(kind)

    # Deterministic voice: the same script gives the same caller audio on every run,
    # so a demo or test that fails can be run again and fail the same way.
    options = {"deterministic": True} if kind == "offline" else {}
    synthesizer = create_synthesizer(kind, **options)
    await synthesizer.start()
    warm = recognizer()
    await warm.start(_Quiet())  # loads the models into the worker pool once
    await warm.stop()
    return Providers(recognizer, synthesizer, synthesizer, SimulatedTelephony())


def machine_agent(
    path: Path, kind: str, telephony: Telephony | None = None, secondary: str | None = None
) -> tuple[Agent, str, str]:
    """A conversation agent for the machine file at `path` (for `fsm-voice serve`).

    Providers start with the first call (the runner starts them; starting is
    idempotent), so the server is up at once and the first call pays the model load.
    """
    spec = load_machine(path)
    if kind not in SERVING_PROVIDERS:
        known = ", ".join(SERVING_PROVIDERS)
        raise ConfigError(f"unknown providers {kind!r} (choose from {known})")
    if secondary is not None and secondary not in SERVING_PROVIDERS:
        known = ", ".join(SERVING_PROVIDERS)
        raise ConfigError(f"unknown secondary STT {secondary!r} (choose from {known})")
    require_credentials(kind)
    if secondary is not None:
        require_credentials(secondary, "--stt-secondary")

    def recognizer() -> SpeechRecognizer:
        if secondary is None:
            return create_recognizer(kind)
        # the secondary hears the same frames and is only logged (`secondary_*`)
        return TeeRecognizer(create_recognizer(kind), create_recognizer(secondary))

    agent = conversation_agent(
        spec,
        recognizer=recognizer,
        synthesizer=create_synthesizer(kind),
        telephony=telephony or SimulatedTelephony(),
    )
    return agent, spec.name, spec.version


def require_credentials(
    kind: str, option: str = "--providers", environ: Mapping[str, str] | None = None
) -> None:
    """Refuse a cloud provider without its key: started anyway, every prompt of every
    call would fail (and the caller hear nothing) until someone read the log."""
    variable = missing_credential(kind, environ)
    if variable is not None:
        raise ConfigError(f"{option} {kind} needs {variable}, which is not set in the environment")


class _Quiet:
    """A listener for the warm-up recogniser: nothing it says matters."""

    def on_speech_started(self, t_ms: int) -> None:
        pass

    def on_recognizing(self, text: str) -> None:
        pass

    def on_committed(self, transcript: object) -> None:
        pass

    def on_error(self, reason: str, fatal: bool) -> None:
        pass

    def on_state(self, state: str, detail: str) -> None:
        pass
