"""Actions on the phone call beyond the media stream: SMS and transfer.

A conversation asks for them through `Telephony`; in production the Twilio REST
adapter does them, offline `SimulatedTelephony` records what would have happened.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["SimulatedTelephony", "Telephony"]


class Telephony(Protocol):
    async def send_sms(self, to: str, body: str) -> dict[str, Any]:
        """Send an SMS; returns at least `sid`, `status` and `to`."""

    async def transfer(self, call_sid: str | None, to: str) -> dict[str, Any]:
        """Connect the live call to `to` (the media stream ends)."""


class SimulatedTelephony:
    """No carrier: every request succeeds with status `simulated` and is kept here."""

    def __init__(self) -> None:
        self.sms: list[tuple[str, str]] = []
        self.transfers: list[str] = []

    async def send_sms(self, to: str, body: str) -> dict[str, Any]:
        self.sms.append((to, body))
        return {"sid": f"SMsimulated{len(self.sms):04d}", "status": "simulated", "to": to}

    async def transfer(self, call_sid: str | None, to: str) -> dict[str, Any]:
        self.transfers.append(to)
        return {"status": "simulated", "to": to, "call_sid": call_sid}
