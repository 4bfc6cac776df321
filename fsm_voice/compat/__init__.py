"""voice_runtime 0.1.x compatibility: its settings, protocols and WebSocket handler.

Code written for `voice_runtime` runs with its imports changed to `fsm_voice`; the
modules it imports (`fsm_voice.session`, `fsm_voice.stt`, `fsm_voice.tts`,
`fsm_voice.stt_tee`, `fsm_voice.audio`) are backed by the engine, and this package
holds what they share.
"""
