"""The phone simulator ("Twilio in a box"): Twilio's side of a Media Streams call.

`PhoneSimulator` speaks the documented protocol on any `MessageSocket`; `dial()` opens a
real WebSocket to a server; `simulate_call()` runs a whole call (`fsm-voice simulate`);
`twilio_signature()` signs a request the way Twilio does.
"""

from fsm_voice.simulator.client import DialRejected, SimulationResult, dial, simulate_call
from fsm_voice.simulator.phone import PhoneSimulator
from fsm_voice.twilio.signature import SIGNATURE_HEADER, signature_matches, twilio_signature

__all__ = [
    "SIGNATURE_HEADER",
    "DialRejected",
    "PhoneSimulator",
    "SimulationResult",
    "dial",
    "signature_matches",
    "simulate_call",
    "twilio_signature",
]
