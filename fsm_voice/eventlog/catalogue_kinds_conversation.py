"""The catalogue's declarations for the conversation machine: what it was told, what
it did and what it decided. Field specs as in `catalogue_kinds`."""

from __future__ import annotations

from fsm_voice.eventlog.catalogue import EventKind, kind

__all__ = ["CONVERSATION_KINDS"]

# What the conversation machine was told (its events, logged as they arrive)
_CONVERSATION_IN: tuple[EventKind, ...] = (
    kind(
        "conversation_started",
        "conversation",
        "the stream started: the machine runs, with its first variables",
        variables="dict",
    ),
    kind(
        "prompt_finished",
        "conversation",
        "a prompt ended: what the caller heard of it, and whether it was cut",
        prompt_id="str",
        heard="list",
        interrupted="bool",
    ),
    kind(
        "conversation_timer_fired",
        "conversation",
        "a machine timer fired",
        name="str",
        token="int",
    ),
    kind(
        "hook_returned",
        "conversation",
        "a hook returned its event and variables",
        call_id="int",
        event="str",
        variables="dict",
    ),
    kind("hook_failed", "conversation", "a hook raised or timed out", call_id="int", reason="str"),
    kind(
        "action_completed",
        "conversation",
        "a telephony action (SMS, transfer) finished",
        action_id="int",
        ok="bool",
        result="dict",
    ),
    kind("caller_hung_up", "conversation", "the call ended under the machine", reason="str"),
    kind(
        "answering_machine_detected",
        "conversation",
        "the answering-machine verdict reached the machine",
        answered_by="str",
    ),
    kind(
        "provider_failed",
        "conversation",
        "a speech provider failed: the machine gets an `error`",
        provider="str",
        reason="str",
    ),
)

# What the conversation machine did (its effects, logged before they run)
_CONVERSATION_OUT: tuple[EventKind, ...] = (
    kind(
        "say_started",
        "conversation",
        "the agent began to say a prompt",
        prompt_id="str",
        text="str",
        bargein="bool",
    ),
    kind(
        "play_started",
        "conversation",
        "the agent began to play a WAV file",
        prompt_id="str",
        path="str",
        bargein="bool",
    ),
    kind(
        "prompt_stopped",
        "conversation",
        "a prompt was cut (`reason`)",
        prompt_id="str",
        reason="str",
    ),
    kind(
        "listening_started",
        "conversation",
        "the recogniser listens with a grammar",
        grammar="str",
        phrases="list",
        free_form="bool",
    ),
    kind("listening_stopped", "conversation", "the recogniser stopped listening"),
    kind(
        "conversation_timer_started",
        "conversation",
        "a machine timer was started",
        name="str",
        after_ms="int",
        token="int",
    ),
    kind(
        "conversation_timer_cancelled",
        "conversation",
        "a machine timer was cancelled",
        name="str",
        token="int",
    ),
    kind(
        "hook_called",
        "conversation",
        "a hook (your Python) was called",
        call_id="int",
        target="str",
        context="dict",
        timeout_ms="int",
    ),
    kind(
        "sms_requested",
        "conversation",
        "a text message is sent",
        action_id="int",
        to="str",
        body="str",
    ),
    kind(
        "transfer_requested",
        "conversation",
        "the call is handed to a number",
        action_id="int",
        to="str",
    ),
    kind("hangup_decided", "conversation", "the machine ends the call", reason="str"),
)

# What the conversation machine decided and why (its notes)
_CONVERSATION_NOTES: tuple[EventKind, ...] = (
    # `state_entered` (v2, every machine) is declared in catalogue_kinds.
    kind(
        "state_idle",
        "conversation",
        "a state ran its actions and waits with nothing to wait for",
        state="str",
    ),
    kind(
        "transition_rejected",
        "conversation",
        "the machine's table refused a move",
        state="str",
        trigger="str",
    ),
    kind(
        "handler_selected",
        "conversation",
        "the handler chosen for an event (VoiceXML counters)",
        event="str",
        line="int",
        count="int",
        when="str|None",
        goto="str|None",
        reprompt="bool",
    ),
    kind(
        "fallback_taken",
        "conversation",
        "a state's fallback after `after` tries",
        after="int",
        goto="str",
    ),
    kind(
        "event_ignored",
        "conversation",
        "an event the machine does not act on (`reason`)",
        event="str",
        reason="str",
    ),
    kind(
        "event_unhandled",
        "conversation",
        "no handler for an event in the state",
        event="str",
        state="str",
    ),
    kind(
        "condition_failed",
        "conversation",
        "a `when:` condition raised: taken as false",
        when="str|None",
        error="str",
    ),
    kind("counter_changed", "conversation", "a counter moved", counter="str", value="int"),
    kind(
        "loop_detected",
        "conversation",
        "the machine would go round without end: the call is ended (`rule`)",
        rule="str",
        state="str",
        event="str",
        line="int",
        count="int",
    ),
    kind("variables_set", "conversation", "variables were set", values="dict"),
    kind(
        "set_failed",
        "conversation",
        "a `set:` expression failed",
        variable="str",
        error="str",
    ),
    kind(
        "template_failed",
        "conversation",
        "a text template failed: said as written",
        text="str",
        error="str",
    ),
    kind(
        "intent_matched",
        "conversation",
        "what the caller said matched an intent",
        intent="str",
        how="str",
        matched="str",
        slots="dict",
        text="str",
    ),
    kind(
        "intent_not_matched",
        "conversation",
        "what the caller said matched no intent (a nomatch)",
        text="str",
        reason="str?",
    ),
    kind(
        "intent_unhandled",
        "conversation",
        "an intent matched that the state has no handler for",
        intent="str",
    ),
    kind(
        "utterance_ignored",
        "conversation",
        "speech not acted on (`reason`: empty, not_listening, prompt_without_bargein)",
        text="str",
        reason="str",
    ),
    kind("digit_ignored", "conversation", "a key not acted on", digit="str"),
    kind(
        "digits_collected",
        "conversation",
        "a `gather` finished with its digits",
        digits="str",
        variable="str",
    ),
    kind(
        "timer_ignored", "conversation", "a timer fired too late to count", name="str", reason="str"
    ),
    kind(
        "hook_result_ignored",
        "conversation",
        "a hook returned after the machine moved on",
        call_id="int",
    ),
    kind(
        "conversation_ended",
        "conversation",
        "the machine ended (`reason`) in `state`",
        state="str",
        reason="str",
    ),
)

CONVERSATION_KINDS: tuple[EventKind, ...] = (
    *_CONVERSATION_IN,
    *_CONVERSATION_OUT,
    *_CONVERSATION_NOTES,
)
