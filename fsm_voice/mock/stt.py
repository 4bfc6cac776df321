"""voice_runtime's import path `voice_runtime.mock.stt`; the body is `fsm_voice.compat.mock_stt`.

The module *is* the compat module (`sys.modules` points both names at one object), so
`patch("fsm_voice.mock.stt.X")` patches what the code itself uses, as with the seed.
"""

import sys

from fsm_voice.compat import mock_stt as _body  # noqa: TID251
from fsm_voice.compat.mock_stt import *  # noqa: TID251, F403

sys.modules[__name__] = _body
