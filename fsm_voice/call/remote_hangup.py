"""The REST-first remote hangup: how an agent's hangup ends a platform call.

Closing a `<Connect><Stream>` socket only ends the stream: Twilio then runs the TwiML
after `<Connect>`. So when the agent hangs up a call that has a platform call sid and a
way to end it (`CallHandle.use_remote_hangup`), the call is ended over REST first and
Twilio closes the stream; the socket is closed by us only when that cannot happen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fsm_voice.call import effects as fx
from fsm_voice.call.machine import HANGUP_REQUESTED
from fsm_voice.call.socket import CLOSE_NORMAL

if TYPE_CHECKING:
    from fsm_voice.call.runtime import CallRuntime

# Ends the call at the platform (Twilio REST `Status=completed`) given its call sid;
# returns how it went ("completed", "already_ended", ...).
RemoteHangup = Callable[[str], Awaitable[str]]


def hangs_up_remotely(call: CallRuntime, effect: fx.CloseSocket) -> bool:
    """An agent's hangup of a platform call goes through the platform first."""
    return (
        call.remote_hangup is not None
        and call.call_sid is not None
        and effect.code == CLOSE_NORMAL
        and call.machine.state == HANGUP_REQUESTED
    )


async def hang_up_remotely(
    call: CallRuntime,
    close_socket: Callable[[int, str], Awaitable[None]],
    code: int,
    reason: str,
) -> None:
    """REST first; Twilio then closes the stream. If it does not within the hangup
    grace (`hangup_grace_ms`, on the call clock), the call ends and `run` closes the
    socket. A failed request closes the socket at once. When Twilio closes the
    stream before its HTTP answer arrives, the call ends without waiting for it
    (`remote_hangup_done` is then not logged)."""
    assert call.remote_hangup is not None and call.call_sid is not None
    call.record("runtime", "remote_hangup_requested", {"call_sid": call.call_sid})
    try:
        outcome = await call.remote_hangup(call.call_sid)
    except Exception as e:  # the platform is unreachable: end the stream ourselves
        call.record("runtime", "remote_hangup_failed", {"error": f"{type(e).__name__}: {e}"})
        await close_socket(code, reason)
        return
    call.record("runtime", "remote_hangup_done", {"outcome": outcome})
    if outcome != "completed":  # nothing at the platform will close the stream
        await close_socket(code, reason)
