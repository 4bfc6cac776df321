"""voice_runtime's import path `voice_runtime.transports._twilio_client`;
the body is `fsm_voice.compat.twilio_client`.

The module *is* the compat module (`sys.modules` points both names at one object), so
`patch("fsm_voice.transports._twilio_client.X")` patches what the code itself uses, as with
the seed.
"""

import sys

from fsm_voice.compat import twilio_client as _body  # noqa: TID251
from fsm_voice.compat.twilio_client import *  # noqa: TID251, F403

sys.modules[__name__] = _body
