"""AudioMixer: WAV recording without ffplay, live monitoring through ffplay when present."""

from __future__ import annotations

import os
import stat
import wave
from pathlib import Path

import numpy as np
import pytest
from compat_harness import ThreadedServer, frames, in_thread, phone, tone

from fsm_voice import audio
from fsm_voice.audio.frames import mix, silence
from fsm_voice.audio.mixer import AudioMixer, mix_frames
from fsm_voice.audio.mulaw import decode
from fsm_voice.audio.wav import read_wav
from fsm_voice.session import VoiceSession
from fsm_voice.simulator.client import dial

FRAME = 160


@pytest.fixture
def no_ffplay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_records_a_pcm_wav_that_wave_opens_without_ffplay(tmp_path: Path, no_ffplay: None) -> None:
    path = tmp_path / "rec" / "call.wav"
    mixer = AudioMixer(record_path=path, monitor=True)
    mixer.start()
    assert not mixer.monitoring and mixer.monitor_problem is not None
    caller = tone(200)  # 10 frames
    mixer.add_agent(frames(4, salt=1))
    for start in range(0, len(caller), FRAME):
        mixer.add_caller(caller[start : start + FRAME])
    mixer.stop()
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == 10 * FRAME
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    expected = mix(caller, frames(4, salt=1))
    assert np.array_equal(pcm, decode(expected))


def test_records_mulaw_as_voice_runtime_did(tmp_path: Path, no_ffplay: None) -> None:
    path = tmp_path / "call.wav"
    mixer = AudioMixer(record_path=path, record_format="mulaw")
    mixer.start()
    for _ in range(7):
        mixer.add_caller(silence(20))
    mixer.stop()
    mixer.stop()  # idempotent
    recorded = read_wav(path)
    assert (recorded.encoding, recorded.sample_rate, len(recorded.data)) == ("mulaw", 8000, 1120)


def test_barge_in_drops_agent_audio_not_yet_played(tmp_path: Path, no_ffplay: None) -> None:
    mixer = AudioMixer(record_path=tmp_path / "c.wav", record_format="mulaw")
    mixer.start()
    mixer.add_agent(tone(100))
    mixer.add_caller(silence(20))
    mixer.clear_agent()
    mixer.add_caller(silence(20))
    mixer.stop()
    data = read_wav(tmp_path / "c.wav").data
    assert data[:FRAME] == mix(silence(20), tone(100)[:FRAME])
    assert data[FRAME:] == silence(20)


def test_monitors_through_ffplay_when_it_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outermost seam: an `ffplay` on PATH that keeps what it is piped.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    heard = tmp_path / "heard.ulaw"
    ffplay = bin_dir / "ffplay"
    ffplay.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\ncat > "{heard}"\n')
    ffplay.chmod(ffplay.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VOICE_MONITOR", "1")
    mixer = AudioMixer()
    mixer.start()
    assert mixer.monitoring
    for _ in range(5):
        mixer.add_caller(tone(20))
    mixer.stop()
    assert heard.read_bytes() == tone(20) * 5
    assert "-f mulaw -ar 8000" in (tmp_path / "args").read_text()


def test_monitoring_is_off_unless_voice_monitor_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICE_MONITOR", raising=False)
    mixer = AudioMixer()
    mixer.start()
    assert (mixer.monitor, mixer.monitoring) == (False, False)
    mixer.stop()


def test_mix_frames_is_exported_where_voice_runtime_had_it() -> None:
    assert audio.mix_frames is mix_frames is mix
    assert audio.AudioMixer is AudioMixer
    assert mix_frames(silence(20), silence(20)) == silence(20)


@pytest.mark.anyio
@pytest.mark.real_server
async def test_a_session_mixer_records_the_whole_call(tmp_path: Path, no_ffplay: None) -> None:
    session = VoiceSession()
    mixer = AudioMixer(record_path=tmp_path / "call.wav")
    mixer.start()
    session.set_mixer(mixer)
    with ThreadedServer(session) as server:
        async with dial(server.url) as sock:
            sim = phone(sock)
            async with sim:
                await in_thread(session.wait_for_ws_connect, 10)
                await sim.send_audio(frames(30, salt=2))
        await server.wait_finished(1)
    mixer.stop()
    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert wav.getnframes() == sim.frames_sent * FRAME == 30 * FRAME


def test_voice_runtimes_audio_names_are_there() -> None:
    assert audio.FRAME_INTERVAL == 0.020
    assert audio.SILENCE_FRAME == b"\xff" * FRAME
    assert audio.MAX_FRAMES >= 400  # at least the seed's 8 s of agent audio ahead
    assert audio.mix_frames(audio.SILENCE_FRAME, audio.SILENCE_FRAME) == audio.SILENCE_FRAME


def test_a_silent_side_leaves_the_other_sides_bytes_unchanged(tmp_path: Path) -> None:
    # 0x7F is μ-law's "-0": decoded and re-encoded it would come back as 0xFF.
    talk = bytes([0x7F, 0x10, 0x80, 0xFE]) * (FRAME // 4)
    mixer = AudioMixer(record_path=tmp_path / "c.wav", record_format="mulaw", monitor=False)
    mixer.start()
    mixer.write_caller(talk)  # agent silent
    mixer.write_agent(talk)
    mixer.write_caller(silence(20))  # caller silent
    mixer.shutdown()
    assert read_wav(tmp_path / "c.wav").data == talk + talk


def test_agent_audio_ahead_of_the_caller_is_bounded_oldest_first(tmp_path: Path) -> None:
    mixer = AudioMixer(record_path=tmp_path / "c.wav", record_format="mulaw", monitor=False)
    mixer.start()
    for i in range(audio.MAX_FRAMES + 1):
        mixer.write_agent(bytes([i % 250]) * FRAME)
    mixer.write_caller(silence(20))
    mixer.shutdown()
    assert read_wav(tmp_path / "c.wav").data == bytes([1]) * FRAME  # frame 0 went
