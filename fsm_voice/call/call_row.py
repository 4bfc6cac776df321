"""The call's row in the log, as the stream fills it in.

The row is opened when the call starts and closed with how it ended (`CallRuntime.run`);
in between, once the stream has started, it gets the stream's identity and what the
platform said about the call: the custom parameters as the log shows them (masked)
and the caller's and callee's numbers among them.
"""

from __future__ import annotations

from typing import Any

# Custom parameters that also fill a column of their own: (column, parameter).
_NUMBER_COLUMNS = (("from_number", "From"), ("to_number", "To"))


def connected_fields(
    stream_sid: str | None, call_sid: str | None, logged_parameters: dict[str, str]
) -> dict[str, Any]:
    """The row's fields once the stream started (for `EventLog.update_call`)."""
    return {
        "stream_sid": stream_sid,
        "call_sid": call_sid,
        "custom_parameters": logged_parameters,
        **{
            column: logged_parameters[name]
            for column, name in _NUMBER_COLUMNS
            if name in logged_parameters
        },
    }
