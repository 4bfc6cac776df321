"""The catalogue's declarations for the call itself: the runtime, the call machine and
the transport (Twilio Media Streams, Twilio webhooks).

Field specs: `"int"`, `"str|None"` (may be null), `"int?"` (may be absent). A field
named like a Python keyword gets a trailing `_` (`from_`). Kinds are past tense and
never renamed; a changed payload gets a new `v` (and, later, an upcaster).
"""

from __future__ import annotations

from fsm_voice.eventlog.catalogue import EventKind, kind

__all__ = ["KINDS"]

_RUNTIME: tuple[EventKind, ...] = (
    kind("socket_opened", "runtime", "the platform's WebSocket was accepted: the call began"),
    kind(
        "upgrade_accepted",
        "runtime",
        "the WebSocket upgrade passed the checks (signature verified or not, and why)",
        verified="bool",
        reason="str?",
    ),
    kind(
        "upgrade_rejected",
        "runtime",
        "a WebSocket upgrade was refused before accept (older logs: now in `refusals`)",
        path="str",
        reason="str",
        status="int",
        client="str|None",
    ),
    kind("agent_audio_queued", "runtime", "the agent queued audio for the caller"),
    kind(
        "agent_audio_dropped",
        "runtime",
        "agent audio arrived when the call could not play it",
        state="str",
    ),
    kind(
        "mark_requested",
        "runtime",
        "the agent asked to be told when its audio so far has played",
        mark_id="int",
        name="str",
        timeout_ms="int",
    ),
    kind("mark_timed_out", "runtime", "a mark was not echoed in time", mark_id="int"),
    kind("clear_requested", "runtime", "the agent asked to stop the audio being played"),
    kind("hangup_requested", "runtime", "someone asked to end the call", reason="str"),
    kind("connect_timed_out", "runtime", "the stream did not start in time"),
    kind("hangup_timed_out", "runtime", "the platform did not close after a hang-up"),
    kind("fatal_error", "runtime", "the call cannot go on", reason="str", detail="str"),
    kind(
        "violation_limit_reached",
        "runtime",
        "too many protocol violations: the call is ended",
        count="int",
    ),
    kind(
        "outbound_dropped",
        "runtime",
        "queued agent audio and marks thrown away (a clear, or the end of the call)",
        frames="int",
        marks="int",
    ),
    kind(
        "limit_reached",
        "runtime",
        "the call hit a limit (`limit`, and its value under its own name)",
        open_payload=True,
        limit="str",
        limit_ms="int?",
        max_bytes="int?",
    ),
    kind("agent_failed", "runtime", "the agent raised: the call ends", error="str"),
    kind(
        "agent_cancelled",
        "runtime",
        "the agent did not finish within its grace after the call ended",
        grace_ms="int",
    ),
    kind(
        "runtime_failed",
        "runtime",
        "a task of the runtime raised (a bug): the call ends as an error",
        at="str",
        error="str",
        task="str",
    ),
    kind("socket_close_failed", "runtime", "closing the WebSocket raised", error="str"),
    kind(
        "log_write_failed",
        "runtime",
        "rows of this call the log could not store (the call went on)",
        error="str",
    ),
    kind(
        "platform_notice",
        "runtime",
        "a notice about the call from the platform (e.g. `amd`), passed to the agent",
        open_payload=True,
        notice="str",
    ),
    kind(
        "remote_hangup_requested",
        "runtime",
        "the call is hung up through the platform's REST API",
        call_sid="str",
    ),
    kind("remote_hangup_done", "runtime", "the REST hang-up answered", outcome="str"),
    kind("remote_hangup_failed", "runtime", "the REST hang-up failed", error="str"),
    kind(
        "duplicate_stream_refused",
        "runtime",
        "a second stream for a call already live was refused",
        call_sid="str",
        live_call="str",
    ),
    kind(
        "fault_injected",
        "runtime",
        "a replay injected a fault (test runs only)",
        open_payload=True,
        fault="str",
        at_ms="int",
    ),
    # voice_runtime compatibility (fsm_voice.compat): the session's life on the call
    kind(
        "session_attached",
        "runtime",
        "a voice_runtime session was attached to the call",
        session="str",
        generation="int?",
    ),
    kind("session_busy", "runtime", "a call arrived while the session had one", generation="int"),
    kind("disconnect_requested", "runtime", "the session asked to disconnect", generation="int"),
    kind(
        "stale_disconnect_ignored",
        "runtime",
        "a disconnect for an earlier call of the session was ignored",
        generation="int",
    ),
    kind("on_disconnected_failed", "runtime", "the session's on_disconnected raised", error="str"),
    kind(
        "inbound_frames_dropped",
        "runtime",
        "the session's inbound queue was full: caller frames dropped from here",
        limit="int",
    ),
    kind(
        "inbound_frames_dropped_total",
        "runtime",
        "how many caller frames the session's full queue dropped in all",
        frames="int",
    ),
)

_CALL: tuple[EventKind, ...] = (
    # One naming for every machine's move (v2; v1 of call and conversation and the
    # STT's `provider_state_entered` read back through `upcast`).
    kind(
        "state_entered",
        ("call", "conversation", "stt", "tts"),
        "`machine` (call, conversation, stt, tts) moved `from` a state to `state` `on` an"
        " event (None: not recorded, e.g. STT v1); `detail`, `provider`: a provider's",
        v=2,
        machine="str",
        state="str",
        from_="str|None",
        on="str|None",
        detail="str?",
        provider="str?",
    ),
    kind(
        "event_rejected",
        "call",
        "the call machine refused an event in its state",
        state="str",
        event="str",
    ),
    kind("agent_started", "call", "the agent was started"),
    kind(
        "mark_queued", "call", "a mark was queued behind the agent audio", mark_id="int", name="str"
    ),
    kind(
        "mark_released",
        "call",
        "a mark's wait ended (`outcome`: played, cleared, timeout, call_ended, not_connected)",
        mark_id="int",
        name="str",
        outcome="str",
    ),
    kind("playback_cleared", "call", "the audio being played was cleared"),
    kind("timer_started", "call", "a call timer was started", name="str", ms="int"),
    kind("timer_cancelled", "call", "a call timer was cancelled", name="str"),
    kind("dtmf_delivered", "call", "a keypress was passed to the agent", digit="str"),
    kind(
        "protocol_violation",
        ("call", "transport"),
        "a message broke the Media Streams protocol (`reason`)",
        reason="str",
        detail="str",
    ),
    kind(
        "socket_close_requested",
        "call",
        "the call asked to close the WebSocket",
        code="int",
        reason="str",
    ),
    kind("call_ended", "call", "the call ended (`reason`)", reason="str"),
)

_TRANSPORT: tuple[EventKind, ...] = (
    kind("connected", "transport", "the platform said hello", protocol="str", version="str"),
    kind(
        "stream_started",
        "transport",
        "the media stream started: the call's ids, format and custom parameters",
        account_sid="str",
        call_sid="str",
        stream_sid="str",
        tracks="list",
        encoding="str",
        sample_rate="int",
        channels="int",
        custom_parameters="dict",
    ),
    kind(
        "stream_rejected",
        "transport",
        "a stream start was refused (it stands in for the `stream_started`)",
        reason="str",
        stream_sid="str",
        call_sid="str",
    ),
    kind("media_received", "transport", "caller audio arrived", chunk="int", track="str"),
    kind("dtmf_received", "transport", "the caller pressed a key", digit="str"),
    kind("mark_sent", "transport", "a mark was sent to the platform", mark_id="int", name="str"),
    kind("mark_echoed", "transport", "the platform echoed a mark: its audio played", name="str"),
    kind("clear_sent", "transport", "a clear was sent to the platform"),
    kind("stream_stopped", "transport", "the platform stopped the stream"),
    kind("socket_closed", "transport", "the WebSocket closed", code="int"),
    kind(
        "sequence_gap",
        "transport",
        "messages are missing (sequence numbers skipped)",
        expected="int",
        received="int",
        missing="int",
    ),
    kind(
        "sequence_out_of_order",
        "transport",
        "a message came with an older sequence number",
        last="int",
        received="int",
    ),
    kind(
        "chunk_gap",
        "transport",
        "media chunks of a track are missing",
        track="str",
        expected="int",
        received="int",
        missing="int",
    ),
    kind(
        "chunk_out_of_order",
        "transport",
        "a media chunk came with an older number",
        track="str",
        last="int",
        received="int",
    ),
    # Twilio's webhooks, logged in the call leg's row (fsm_voice.twilio)
    kind(
        "twilio_call_answered",
        "transport",
        "Twilio asked for the TwiML of an inbound call",
        call_id="str",
        machine="str|None",
    ),
    kind(
        "call_status_received",
        "transport",
        "Twilio reported the call's status",
        status="str",
        sequence="str?",
        duration_s="str?",
        answered_by="str?",
    ),
    kind(
        "answering_machine_detected",
        "transport",
        "Twilio's answering-machine detection answered",
        answered_by="str",
        detection_ms="str?",
    ),
    kind(
        "webhook_rejected",
        "transport",
        "a webhook request was refused (its signature, say)",
        path="str",
        reason="str",
    ),
)

KINDS: tuple[EventKind, ...] = (*_RUNTIME, *_CALL, *_TRANSPORT)
