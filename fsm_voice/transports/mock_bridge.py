"""voice_runtime's import path `voice_runtime.transports.mock_bridge`; the body is
`fsm_voice.compat.mock_bridge`.

The module *is* the compat module (`sys.modules` points both names at one object), so
`patch("fsm_voice.transports.mock_bridge.httpx.post")` patches what the code itself
uses, as with the seed.
"""

import sys

from fsm_voice.compat import mock_bridge as _body  # noqa: TID251
from fsm_voice.compat.mock_bridge import *  # noqa: TID251, F403

sys.modules[__name__] = _body
