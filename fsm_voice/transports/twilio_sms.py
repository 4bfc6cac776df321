"""voice_runtime's import path `voice_runtime.transports.twilio_sms`;
the body is `fsm_voice.compat.twilio_sms`.

The module *is* the compat module (`sys.modules` points both names at one object), so
`patch("fsm_voice.transports.twilio_sms.X")` patches what the code itself uses, as with the seed.
"""

import sys

from fsm_voice.compat import twilio_sms as _body  # noqa: TID251
from fsm_voice.compat.twilio_sms import *  # noqa: TID251, F403

sys.modules[__name__] = _body
