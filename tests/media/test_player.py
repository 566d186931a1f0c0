"""Player: WAV of any rate/channels, tones, silence, loop, pacing, events, format following."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxline.audio import PCM16_16K, PCM16_24K, PCMA_8K, PCMU_8K, AudioFormat, Frame
from voxline.audio.g711 import ulaw_decode
from voxline.audio.tone import tone
from voxline.audio.wav import write_wav
from voxline.eventtarget import Event
from voxline.media import MediaUnit
from voxline.media.clock import VirtualMediaClock
from voxline.media.player import Player, PlayerEvents, encode_pcm16


class Collector(MediaUnit):
    def __init__(self, clock: VirtualMediaClock, fmt: AudioFormat | None) -> None:
        super().__init__()
        self.clock = clock
        self.media_format = fmt
        self.frames: list[tuple[int, Frame]] = []

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        self.frames.append((self.clock.now_ms(), frame))


def listen(player: Player) -> list[tuple[int, str]]:
    events: list[tuple[int, str]] = []
    for name in PlayerEvents:
        player.add_event_listener(name, lambda e: events.append((player.clock.now_ms(), e.name)))
    return events


def dominant_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_stereo_44k1_wav_is_mixed_to_mono_and_converted_to_the_sinks_format(tmp_path: Path) -> None:
    left = np.frombuffer(tone(440, 500, 44100, 0.4), dtype="<i2")
    right = np.zeros_like(left)
    path = tmp_path / "in.wav"
    write_wav(path, np.column_stack([left, right]).astype("<i2").tobytes(), 44100, 2)
    clock = VirtualMediaClock()
    player = Player.from_wav(clock, path)
    call = Collector(clock, PCMU_8K)
    player.send_media_to(call)
    clock.advance(1000)
    assert player.media_format == PCMU_8K
    frames = [f for _, f in call.frames]
    assert len(frames) == 25
    assert all(f.format == PCMU_8K and len(f.data) == 160 for f in frames)
    assert [f.timestamp_ms for f in frames] == list(range(0, 500, 20))
    assert [t for t, _ in call.frames] == list(range(20, 501, 20))  # one frame per tick
    pcm = ulaw_decode(b"".join(f.data for f in frames))
    assert abs(dominant_hz(pcm, 8000) - 440) < 20
    peak = np.abs(np.frombuffer(pcm, dtype="<i2")).max()
    assert 0.15 * 32767 < peak < 0.25 * 32767  # the mean of a 0.4 tone and silence


def test_output_equals_the_whole_file_converted_once(tmp_path: Path) -> None:
    pcm = tone(300, 130, 16000)
    clock = VirtualMediaClock()
    player = Player(clock, pcm, 16000, media_format=PCMA_8K)
    sink = Collector(clock, PCM16_24K)  # an explicit format wins over the sink's
    player.send_media_to(sink)
    clock.advance(200)
    out = b"".join(f.data for _, f in sink.frames)
    expected = encode_pcm16(pcm, 16000, PCMA_8K)
    assert len(out) == 7 * 160
    assert out[: len(expected)] == expected
    assert out[len(expected) :] == b"\xd5" * (len(out) - len(expected))  # padded with A-law silence


def test_format_follows_the_first_sink_or_defaults_to_pcm16() -> None:
    clock = VirtualMediaClock()
    alone = Player.from_tone(clock, 500, 100)
    clock.advance(20)
    assert alone.media_format is None
    assert alone._output()[1] == PCM16_16K
    player = Player.from_tone(clock, 500, 100)
    sink = Collector(clock, PCM16_24K)
    player.send_media_to(sink)
    clock.advance(40)
    assert {f.format for _, f in sink.frames} == {PCM16_24K}
    assert all(len(f.data) == 960 for _, f in sink.frames)


def test_events_and_timing() -> None:
    clock = VirtualMediaClock()
    player = Player.from_silence(clock, 100, media_format=PCMU_8K)
    events = listen(player)
    clock.advance(500)
    assert events == [(20, PlayerEvents.Started), (120, PlayerEvents.PlaybackFinished)]
    assert not player.playing and player.position_ms == 100
    player.stop()  # finished already: no Stopped
    assert len(events) == 2


def test_loop_plays_until_stopped() -> None:
    clock = VirtualMediaClock()
    pcm = (np.arange(50 * 8, dtype="<i2") * 7).tobytes()  # 50 ms of a recognisable ramp
    player = Player(clock, pcm, 8000, media_format=AudioFormat("pcm16", 8000), loop=True)
    sink = Collector(clock, None)
    player.send_media_to(sink)
    events = listen(player)
    clock.advance(400)
    out = b"".join(f.data for _, f in sink.frames)
    assert len(out) == 20 * 320 and out == pcm * 8  # 400 ms: eight seamless rounds
    player.stop()
    clock.advance(100)
    assert len(sink.frames) == 20
    assert [name for _, name in events] == [PlayerEvents.Started, PlayerEvents.Stopped]
    assert clock.subscriber_count == 0


def test_pause_and_resume_keep_the_position() -> None:
    clock = VirtualMediaClock()
    player = Player.from_tone(clock, 400, 200, media_format=PCMU_8K)
    sink = Collector(clock, None)
    player.send_media_to(sink)
    clock.advance(60)
    player.pause()
    clock.advance(100)
    player.resume()
    clock.advance(60)
    assert [f.timestamp_ms for _, f in sink.frames] == [0, 20, 40, 60, 80, 100]
    assert [t for t, _ in sink.frames] == [20, 40, 60, 180, 200, 220]


def test_bad_input_is_named() -> None:
    clock = VirtualMediaClock()
    with pytest.raises(ValueError, match="pcm"):
        Player(clock, b"\x00", 8000)
    with pytest.raises(ValueError, match="rate"):
        Player(clock, b"", 100)
    with pytest.raises(TypeError, match="media_format"):
        Player(clock, b"", 8000, media_format="pcmu")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        Player.from_wav(clock, "/nonexistent.wav")


def test_event_carries_the_player() -> None:
    clock = VirtualMediaClock()
    player = Player.from_silence(clock, 20)
    got: list[Event] = []
    player.add_event_listener(PlayerEvents.PlaybackFinished, got.append)
    player.add_event_listener("Player.Started", got.append)
    clock.advance(100)
    assert [e.name for e in got] == ["Player.Started", "Player.PlaybackFinished"]
    assert got[0].player is player


def test_close_stops_and_detaches() -> None:
    clock = VirtualMediaClock()
    player = Player.from_tone(clock, 400, 1000, media_format=PCMU_8K)
    sink = Collector(clock, None)
    player.send_media_to(sink)
    clock.advance(40)
    player.close_media()
    clock.advance(100)
    assert len(sink.frames) == 2 and sink.media_source is None and clock.subscriber_count == 0
