"""voice_runtime's import path `voice_runtime.mock`: the scripted providers.

`MockStt` (`fsm_voice.mock.stt`, body `fsm_voice.compat.mock_stt`) and `MockTts`
(`fsm_voice.mock.tts`, body `fsm_voice.compat.mock_tts`); `create_stt(provider="mock")`
and `create_tts(provider="mock")` build them too.
"""

from fsm_voice.compat.mock_stt import MockStt  # noqa: TID251
from fsm_voice.compat.mock_tts import MockTts  # noqa: TID251

__all__ = ["MockStt", "MockTts"]
