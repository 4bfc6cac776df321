"""The catalogue's declarations for the speech providers (STT, TTS), with the
secondary recogniser of a tee and the voice_runtime adapters. Field specs as in
`catalogue_kinds`."""

from __future__ import annotations

from fsm_voice.eventlog.catalogue import EventKind, kind

__all__ = ["PROVIDER_KINDS"]

_STT: tuple[EventKind, ...] = (
    kind("speech_started", "stt", "the recogniser heard speech begin", at_ms="int"),
    kind("transcript_partial", "stt", "an interim hypothesis (may change)", text="str"),
    kind(
        "transcript_committed",
        "stt",
        "a final transcript of an utterance",
        text="str",
        confidence="float|None",
        start_ms="int?",
        end_ms="int?",
        alternatives="list?",
    ),
    kind(
        "transcript_discarded",
        "stt",
        "a transcript dropped, never given to the machine (e.g. the agent's own echo)",
        text="str",
        reason="str",
        start_ms="int?",
        end_ms="int?",
    ),
    kind("provider_error", "stt", "the recogniser reported an error", reason="str", fatal="bool"),
    # The recogniser's moves are `state_entered` (machine "stt", catalogue_kinds);
    # v1 recordings' `provider_state_entered` read back as it through `upcast`.
    kind(
        "callback_failed",
        "stt",
        "a voice_runtime consumer's callback raised",
        callback="str",
        error="str",
    ),
    kind("stt_created", "stt", "a voice_runtime STT was created for the call", provider="str"),
    kind("on_stt_ready_failed", "stt", "the session's on_stt_ready callback raised", error="str"),
    kind("on_error_failed", "stt", "the STT's on_error callback raised", error="str"),
    kind("provider_stop_failed", "stt", "a voice_runtime STT's stop() raised", error="str"),
    kind("stt_started", "stt", "the voice_runtime STT started", provider="str"),
    kind("stt_stopped", "stt", "the voice_runtime STT stopped", provider="str"),
    # The secondary recogniser of a tee (compared, never driving the call)
    kind(
        "secondary_speech_started",
        "stt",
        "the secondary heard speech begin",
        provider="str",
        at_ms="int",
    ),
    kind(
        "secondary_transcript_partial",
        "stt",
        "the secondary's interim hypothesis",
        provider="str",
        text="str",
    ),
    kind(
        "secondary_transcript_committed",
        "stt",
        "the secondary's final transcript",
        provider="str",
        text="str",
    ),
    kind(
        "secondary_provider_error",
        "stt",
        "the secondary reported an error",
        provider="str",
        reason="str",
        fatal="bool?",
    ),
    kind(
        "secondary_provider_state_entered",
        "stt",
        "the secondary's connection machine moved to `state`",
        provider="str",
        state="str",
        detail="str",
    ),
    kind(
        "secondary_failed",
        "stt",
        "the secondary raised (`stage`): it is left out from then on",
        provider="str",
        stage="str",
        error="str",
    ),
    kind(
        "secondary_frames_summary",
        "stt",
        "caller frames fed to the secondary, and dropped",
        provider="str",
        fed="int?",
        dropped="int",
    ),
)

_TTS: tuple[EventKind, ...] = (
    kind(
        "sentence_synthesized",
        "tts",
        "a sentence of a prompt was synthesised and queued",
        prompt_id="str",
        index="int",
        bytes="int",
        pieces="list",
    ),
    kind(
        "sentence_cut",
        "tts",
        "a sentence's synthesis stopped part way",
        prompt_id="str",
        index="int",
        bytes="int",
        pieces="list",
        error="str?",
    ),
    kind("first_audio_sent", "tts", "the first audio of a prompt left", prompt_id="str"),
    kind("synthesis_failed", "tts", "synthesis raised", error="str", provider="str"),
    kind(
        "speak_started",
        "tts",
        "a voice_runtime `speak` began",
        chars="int",
    ),
    kind(
        "speak_finished",
        "tts",
        "a voice_runtime `speak` ended",
        last_spoken="str",
        interrupted="bool?",
    ),
    kind(
        "mark_timeout",
        "tts",
        "a voice_runtime `speak` waited for its mark in vain",
        mark="str",
        timeout_s="float",
    ),
)

_PROVIDERS_BOTH: tuple[EventKind, ...] = (
    kind(
        "provider_failed",
        ("stt", "tts"),
        "a provider could not start or run (`stage`)",
        error="str",
        provider="str?",
        stage="str?",
    ),
)

PROVIDER_KINDS: tuple[EventKind, ...] = (*_STT, *_TTS, *_PROVIDERS_BOTH)
