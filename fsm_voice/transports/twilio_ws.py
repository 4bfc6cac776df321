"""voice_runtime's import path `voice_runtime.transports.twilio_ws`; the body is
`fsm_voice.compat.ws`. The `/voice` endpoint itself is `fsm_voice.server.endpoint`.

The module *is* the compat module (`sys.modules` points both names at one object), so
`patch("fsm_voice.transports.twilio_ws.X")` patches what the code itself uses.
"""

import sys

from fsm_voice.compat import ws as _body  # noqa: TID251
from fsm_voice.compat.ws import *  # noqa: TID251, F403

sys.modules[__name__] = _body
