"""The mixer's old path `fsm_voice.audio.mixer`; the body is `fsm_voice.compat.mixer`.

The module *is* the compat module (`sys.modules` points both names at one object), so
patching a name here patches what the mixer itself uses.
"""

import sys

from fsm_voice.compat import mixer as _body  # noqa: TID251
from fsm_voice.compat.mixer import *  # noqa: TID251, F403

sys.modules[__name__] = _body
