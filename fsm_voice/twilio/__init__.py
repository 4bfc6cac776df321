"""Twilio beyond the media stream: REST (calls, hangup, transfer, SMS), TwiML, webhooks.

`rest.TwilioRest` is the one place the `twilio` SDK's REST client is used; tests point
its HTTP layer at a local fake of the API (`api_base`).
"""

from fsm_voice.twilio.rest import HangupResult, TwilioRest
from fsm_voice.twilio.settings import TwilioSettings
from fsm_voice.twilio.telephony import TwilioTelephony
from fsm_voice.twilio.twiml import dial_twiml, stream_twiml

__all__ = [
    "HangupResult",
    "TwilioRest",
    "TwilioSettings",
    "TwilioTelephony",
    "dial_twiml",
    "stream_twiml",
]
