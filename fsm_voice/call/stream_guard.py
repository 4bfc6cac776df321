"""Which `start` may join a call: the stream token's signature, age and single use.

One `StreamGuard` per server process, shared by its calls (`VoiceEndpoint` makes it).
A token (`security.call_token`) says which call it was minted for, when, and, where
the CallSid was known at mint time, which Twilio call. The guard refuses a `start`
whose token is missing, forged, expired (older than `ttl_ms` by this server's Clock),
bound to another CallSid, already used, or whose CallSid already has a stream,
unless the runtime minted a redirect token for that CallSid (`redirect_token`).

Single use needs memory: the tokens used and the CallSids streamed, each kept until
its token could no longer pass anyway (`ttl_ms` after it was issued, or after its
stream ended), and at most `max_entries` of each. Past that bound the oldest is
forgotten and tokens issued before it are refused as expired: memory pressure
shortens the window, it never reopens a used token. The memory is this process's:
a fleet needs it in shared storage (DESIGN.md "Scale past one machine").
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping

from fsm_voice.clock import Clock, IdSource, RandomIds
from fsm_voice.security import Secret, StreamToken, call_token, read_call_token

__all__ = [
    "DEFAULT_STREAM_TOKEN_TTL_MS",
    "MAX_CLOCK_SKEW_MS",
    "STREAM_REFUSALS",
    "StreamGuard",
]

# Twilio opens the stream within a second of an inbound call's TwiML; an outbound
# call's TwiML is minted before it rings (Twilio's default ring timeout: 60 s) and
# may wait in Twilio's queue at the account's calls-per-second rate.
DEFAULT_STREAM_TOKEN_TTL_MS = 5 * 60_000
MAX_CLOCK_SKEW_MS = 30_000  # a token minted by a host whose clock runs ahead
MAX_ENTRIES = 100_000  # used tokens, and CallSids, remembered (each ~200 bytes)

# Every end reason of a `start` refused here (close 1008, a `stream_rejected` event).
STREAM_REFUSALS = frozenset(
    {
        "stream_call_id_missing",
        "stream_token_missing",
        "stream_token_invalid",
        "stream_token_expired",
        "stream_token_used",
        "stream_call_sid_mismatch",
        "stream_call_duplicate",
    }
)


class StreamGuard:
    def __init__(
        self,
        key: Secret,
        clock: Clock,
        *,
        ttl_ms: int = DEFAULT_STREAM_TOKEN_TTL_MS,
        max_entries: int = MAX_ENTRIES,
        ids: IdSource | None = None,
    ) -> None:
        if ttl_ms <= 0 or max_entries <= 0:
            raise ValueError("a stream guard needs ttl_ms > 0 and max_entries > 0")
        self._key = key
        self._clock = clock
        self._ids = ids or RandomIds()  # redirect tokens' nonces
        self.ttl_ms = ttl_ms
        self._max = max_entries
        self._used: OrderedDict[str, int] = OrderedDict()  # use key → issued_ms
        self._live: Counter[str] = Counter()  # CallSid → streams open now
        self._ended: OrderedDict[str, int] = OrderedDict()  # CallSid → forget at (wall ms)
        self._floor_ms = -1  # tokens issued at or before this were forgotten: refused

    def admit(self, params: Mapping[str, str], call_sid: str | None) -> str | None:
        """Why a `start` with these <Parameter>s and CallSid may not join a call, or
        None; an admitted one uses its token up and marks its CallSid streaming."""
        call_id, raw = params.get("call_id"), params.get("token")
        if not call_id:
            return "stream_call_id_missing"
        if not raw:
            return "stream_token_missing"
        token = read_call_token(self._key, call_id, raw)
        if token is None:
            return "stream_token_invalid"
        now = self._clock.wall_ms()
        self._forget_before(now)
        problem = self._problem(token, call_sid or None, now)
        if problem is not None:
            return problem
        self._remember(token)
        if call_sid:
            self._live[call_sid] += 1
            self._ended.pop(call_sid, None)
        return None

    def release(self, call_sid: str | None) -> None:
        """A stream `admit` let in has ended: its CallSid is remembered one more TTL,
        so a token minted again for it (a replayed webhook) opens no second stream."""
        if not call_sid or self._live[call_sid] <= 0:
            return
        self._live[call_sid] -= 1
        if self._live[call_sid] == 0:
            del self._live[call_sid]
            self._ended[call_sid] = self._clock.wall_ms() + self.ttl_ms
            self._ended.move_to_end(call_sid)
            while len(self._ended) > self._max:
                self._ended.popitem(last=False)

    def redirect_token(self, call_id: str, call_sid: str) -> str:
        """A fresh token that moves the live call `call_sid` to a new stream: the new
        `start` is let in although the CallSid has one; the token opens one stream."""
        nonce = self._ids.new_id("")
        issued = self._clock.wall_ms()
        return call_token(
            self._key, call_id, issued_ms=issued, call_sid=call_sid, redirect=True, nonce=nonce
        )

    def _problem(self, token: StreamToken, call_sid: str | None, now: int) -> str | None:
        if token.issued_ms > now + MAX_CLOCK_SKEW_MS:
            return "stream_token_invalid"  # from the future: not one we minted
        if now - token.issued_ms > self.ttl_ms or token.issued_ms <= self._floor_ms:
            return "stream_token_expired"
        if token.call_sid is not None and token.call_sid != call_sid:
            return "stream_call_sid_mismatch"
        if token.use_key in self._used:
            return "stream_token_used"
        if call_sid and not token.redirect and (call_sid in self._live or call_sid in self._ended):
            return "stream_call_duplicate"
        return None

    def _remember(self, token: StreamToken) -> None:
        self._used[token.use_key] = token.issued_ms
        while len(self._used) > self._max:
            _, issued = self._used.popitem(last=False)
            self._floor_ms = max(self._floor_ms, issued)

    def _forget_before(self, now: int) -> None:
        """Drop what can no longer matter: tokens past their TTL, ended CallSids past theirs."""
        used = self._used
        while used and now - next(iter(used.values())) > self.ttl_ms:
            used.popitem(last=False)
        ended = self._ended
        while ended and next(iter(ended.values())) <= now:
            ended.popitem(last=False)
