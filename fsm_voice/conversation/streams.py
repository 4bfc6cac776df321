"""One conversation per Twilio call: the live call SIDs of an agent's calls."""

from __future__ import annotations

from fsm_voice.call.handle import CallHandle

__all__ = ["LiveStreams"]


class LiveStreams:
    """The call SIDs whose conversation is running, to refuse a duplicate stream.

    Twilio opens one Media Stream per `<Stream>`; a second `start` for the same
    CallSid on another socket (a retried webhook, a misconfigured TwiML) would run a
    second conversation talking over the first. The second one is refused and hung
    up, logged as `duplicate_stream_refused`; the original call goes on.
    """

    def __init__(self, already_live: dict[str, str] | None = None) -> None:
        self._owners: dict[str, str] = dict(already_live or {})  # call_sid -> call_id

    def claim(self, call: CallHandle) -> bool:
        sid = call.call_sid
        if not sid:
            return True  # nothing to tell streams apart by
        owner = self._owners.get(sid)
        if owner is None:
            self._owners[sid] = call.call_id
            return True
        call.record("runtime", "duplicate_stream_refused", {"call_sid": sid, "live_call": owner})
        return False

    def release(self, call: CallHandle) -> None:
        sid = call.call_sid
        if sid and self._owners.get(sid) == call.call_id:
            del self._owners[sid]
