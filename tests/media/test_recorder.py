"""Recorder: mono sink, stereo and mixed taps, time alignment by timestamps and the clock."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from voxline.audio import PCM16_24K, PCMU_8K, Frame
from voxline.audio.tone import silence, tone
from voxline.audio.wav import read_wav
from voxline.eventtarget import Event
from voxline.media import MediaUnit
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.player import Player
from voxline.media.recorder import Recorder, RecorderEvents

from .helpers import ModelSource

AMPLITUDE = 0.3


def onset(samples: np.ndarray, start: int = 0) -> int:
    """Index of the first sample from ``start`` on above a tenth of the tones' amplitude."""
    above = np.nonzero(np.abs(samples[start:].astype(np.int32)) > 0.1 * AMPLITUDE * 32767)[0]
    assert above.size, "no tone found"
    return start + int(above[0])


def channels(path: Path) -> np.ndarray:
    audio = read_wav(path)
    return np.frombuffer(audio.pcm, dtype="<i2").reshape(-1, audio.channels).T


@pytest.mark.parametrize("batch_ms", [20, 100])
def test_stereo_puts_caller_and_agent_on_time_aligned_channels(tmp_path: Path, batch_ms: int) -> None:
    """With 100 ms batches (what a Twilio call takes) the agent's audio arrives up to 80 ms before
    it plays; it is placed by its timestamps all the same."""
    clock = VirtualMediaClock()
    voice = silence(300, PCMU_8K.__class__("pcm16", 8000)) + tone(440, 200, 8000, AMPLITUDE)
    call = LoopbackCall(clock, voice=voice)  # PCMU_8K
    agent = ModelSource(clock, PCM16_24K)
    agent.playout.batch_ms = batch_ms
    send = call.send_media_to, agent.send_media_to
    send[0](agent)
    send[1](call)
    path = tmp_path / "stereo.wav"
    recorder = Recorder.stereo(clock, path, left=call, right=agent)
    events: list[Event] = []
    recorder.add_event_listener(RecorderEvents.Started, events.append)
    recorder.add_event_listener(RecorderEvents.Stopped, events.append)
    call.answer()
    clock.advance(600)
    agent.push(tone(1000, 200, 24000, AMPLITUDE), "a")  # first frame at once, at 600 ms
    clock.advance(900)
    agent.push(tone(1000, 100, 24000, AMPLITUDE), "b")  # after an idle gap: at once, at 1500 ms
    clock.advance(700)
    recorder.stop()

    left, right = channels(path)
    assert len(left) == len(right) == 2200 * 8
    # The caller's first frame left on the tick at 20 ms; its tone starts 300 ms into the voice.
    assert abs(onset(left) - (20 + 300) * 8) <= 2
    assert abs(onset(right) - 600 * 8) <= 2
    assert abs(onset(right, 1000 * 8) - 1500 * 8) <= 2
    # Nothing of one side leaks into the other.
    assert np.abs(left[600 * 8 :]).max() < 200
    assert np.abs(right[: 595 * 8]).max() < 200
    assert [e.name for e in events] == [RecorderEvents.Started, RecorderEvents.Stopped]
    assert events[1].duration_ms == 2200 and events[1].path == str(path)
    # The routing is untouched: each unit still receives its one stream from the other.
    assert agent.media_source is call and call.media_source is agent


def test_mixed_recording_has_both_sides_in_one_channel(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    a = Player.from_tone(clock, 440, 100, amplitude=AMPLITUDE, media_format=PCMU_8K)
    clock.advance(200)
    path = tmp_path / "mixed.wav"
    recorder = Recorder.mixed(clock, path, sources=[a, ModelSource(clock, PCMU_8K)], rate=16000)
    b = Player.from_tone(clock, 440, 100, amplitude=AMPLITUDE, media_format=PCMU_8K)
    recorder2 = Recorder.mixed(clock, tmp_path / "other.wav", sources=[b])
    clock.advance(300)
    recorder.stop()
    recorder2.stop()
    (mono,) = channels(path)
    assert len(mono) == 300 * 16
    assert np.abs(mono).max() < 200  # a had finished before the recorder started
    (other,) = channels(tmp_path / "other.wav")
    assert abs(onset(other) - 20 * 8) <= 2


def test_mono_recorder_is_a_sink_and_follows_source_replacement(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    path = tmp_path / "mono.wav"
    recorder = Recorder(clock, path)
    first = Player.from_tone(clock, 440, 1000, amplitude=AMPLITUDE, media_format=PCMU_8K)
    first.send_media_to(recorder)
    clock.advance(200)
    second = Player.from_silence(clock, 1000, media_format=PCMU_8K)
    second.send_media_to(recorder)  # replaces the tone: the recording goes quiet from here
    clock.advance(200)
    recorder.stop()
    (mono,) = channels(path)
    assert np.abs(mono[20 * 8 : 200 * 8]).max() > 0.2 * 32767
    assert np.abs(mono[225 * 8 :]).max() < 200
    assert first.media_sinks == () and second.media_sinks == ()  # stop() detached it


def test_gaps_inside_a_stream_are_silence_at_the_right_place(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    source = MediaUnit()
    path = tmp_path / "gaps.wav"
    recorder = Recorder(clock, path)
    source.send_media_to(recorder)
    loud = PCMU_8K.frame_bytes * b"\x80"  # μ-law 0x80: full scale
    for n in range(20):
        clock.advance(20)
        if n not in (5, 6, 7):  # three frames lost on the way
            source._deliver(Frame(loud, PCMU_8K, 1000 + n * 20))
    recorder.stop()
    (mono,) = channels(path)
    loud_at = np.abs(mono.astype(np.int32)) > 30000
    frames = loud_at[: 20 * 160 + 160].reshape(-1, 160).all(axis=1)
    assert list(np.nonzero(~frames)[0]) == [0, 6, 7, 8]  # before the first frame, and the three lost


def test_stereo_recorder_is_not_a_sink_and_releases_its_units(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    a, b = MediaUnit(), MediaUnit()
    recorder = Recorder.stereo(clock, tmp_path / "s.wav", left=a, right=b)
    with pytest.raises(ValueError, match="cannot be a media sink"):
        a.send_media_to(recorder)
    with pytest.raises(ValueError, match="different"):
        Recorder.stereo(clock, tmp_path / "x.wav", left=a, right=a)
    recorder.stop()
    recorder.stop()  # idempotent
    assert a._outputs == () and b._outputs == ()
    ref = weakref.ref(recorder)
    del recorder
    gc.collect()
    assert ref() is None
    with pytest.raises(ValueError, match="rate"):
        Recorder(clock, tmp_path / "y.wav", rate=44100)


def test_long_recordings_are_written_as_they_go_and_stay_aligned(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    pcm8k = PCMU_8K.__class__("pcm16", 8000)
    voice = silence(7300, pcm8k) + tone(440, 100, 8000, AMPLITUDE) + silence(8000, pcm8k)
    voice += tone(440, 100, 8000, AMPLITUDE)
    call = LoopbackCall(clock, voice=voice)
    agent = ModelSource(clock, PCM16_24K)
    path = tmp_path / "long.wav"
    recorder = Recorder.stereo(clock, path, left=call, right=agent)
    call.answer()
    biggest = 0
    for second in range(30):
        if second == 12:
            agent.push(tone(1000, 300, 24000, AMPLITUDE), "a")  # first frame at once, at 12000 ms
        clock.advance(1000)
        biggest = max(biggest, *(len(track.pcm) for track in recorder._tracks))
    assert biggest <= 2 * 8 * (6000 + 1000 + 40)  # bounded: the file holds the rest
    assert path.stat().st_size > 2 * 2 * 8000 * 20  # written before stop()
    recorder.stop()
    left, right = channels(path)
    assert len(left) == 30_000 * 8
    assert abs(onset(left) - (20 + 7300) * 8) <= 2
    assert abs(onset(left, 8000 * 8) - (20 + 15400) * 8) <= 2
    assert abs(onset(right) - 12000 * 8) <= 2


def test_an_unwritable_path_fails_at_once_and_taps_nothing(tmp_path: Path) -> None:
    clock = VirtualMediaClock()
    a, b = MediaUnit(), MediaUnit()
    with pytest.raises(OSError):
        Recorder.stereo(clock, tmp_path / "missing" / "x.wav", left=a, right=b)
    assert a._outputs == () and b._outputs == ()
