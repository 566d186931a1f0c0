"""LoopbackCall: call events, the caller's paced voice, what it hears, carrier-like acknowledgements."""

from __future__ import annotations

import gc
import itertools
import weakref
from pathlib import Path

import numpy as np
import pytest

from voxline.audio import PCM16_16K, PCM16_24K, PCMU_8K, AudioFormat, Frame
from voxline.audio.tone import tone
from voxline.audio.wav import write_wav
from voxline.eventtarget import Event
from voxline.media import MediaUnit, send_media_between
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.runtime.events import CallEvents

from .helpers import ModelSource


class Collector(MediaUnit):
    def __init__(self, clock: VirtualMediaClock) -> None:
        super().__init__()
        self.clock = clock
        self.frames: list[tuple[int, Frame]] = []

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        self.frames.append((self.clock.now_ms(), frame))


def positions(
    clock: VirtualMediaClock,
    call: LoopbackCall,
    source: MediaUnit,
    ms: int,
    seen: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Advance ``ms`` one millisecond at a time, adding (time, position) to ``seen`` each time the
    call's reported playback position of ``source`` changes."""
    seen = [] if seen is None else seen
    for _ in range(ms):
        clock.advance(1)
        position = call.playback_position(source)
        if position is not None and (not seen or seen[-1][1] != position):
            seen.append((clock.now_ms(), position))
    return seen


def events_of(call: LoopbackCall) -> list[tuple[int, str]]:
    got: list[tuple[int, str]] = []
    for name in (CallEvents.Connected, CallEvents.Disconnected, CallEvents.PlaybackFinished):
        call.add_event_listener(name, lambda e: got.append((call.clock.now_ms(), e.name)))
    return got


def test_voice_is_paced_in_the_call_format_then_silence(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    write_wav(path, tone(300, 110, 48000), 48000)
    clock = VirtualMediaClock()
    call = LoopbackCall(clock, voice=path, media_format=PCM16_16K)
    ear = Collector(clock)
    call.send_media_to(ear)
    events = events_of(call)
    clock.advance(100)
    assert ear.frames == []  # nothing before answer
    call.answer()
    clock.advance(30_000)
    frames = [f for _, f in ear.frames]
    assert len(frames) == 1500
    assert [f.timestamp_ms for f in frames] == list(range(0, 30_000, 20))
    assert [t for t, _ in ear.frames] == list(range(120, 30_101, 20))
    assert all(f.format == PCM16_16K and len(f.data) == 640 for f in frames)
    assert np.abs(np.frombuffer(frames[2].data, dtype="<i2")).max() > 5000
    assert frames[6].data == bytes(640)  # silence after the voice
    assert events == [(100, CallEvents.Connected), (240, CallEvents.PlaybackFinished)]


def test_default_format_is_pcmu_and_voice_can_loop() -> None:
    clock = VirtualMediaClock()
    voice = (np.arange(240, dtype="<i2") * 100).tobytes()  # 30 ms at 8 kHz
    call = LoopbackCall(clock, voice=voice, loop=True, send_silence=False)
    assert call.media_format == PCMU_8K
    ear = Collector(clock)
    call.send_media_to(ear)
    call.answer()
    clock.advance(200)
    out = b"".join(f.data for _, f in ear.frames)
    assert len(out) == 10 * 160 and out[:240] == out[240:480]


def test_records_what_it_hears_with_arrival_times() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(clock, send_silence=False)
    source = ModelSource(clock, PCM16_24K)
    source.send_media_to(call)
    call.answer()
    source.push(tone(500, 100, 24000), "a")
    clock.advance(200)
    assert [r.time_ms for r in call.received] == [0, 20, 40, 60, 80]
    assert all(r.source is source for r in call.received)
    assert call.played_ms(source) == 100
    heard = call.heard_audio(PCM16_24K)
    assert heard == tone(500, 100, 24000)


def test_acknowledges_played_audio_after_the_playout_delay() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(clock, acknowledge=True, playout_delay_ms=60, send_silence=False)
    assert call.reports_playback
    source = Collector(clock)
    source.media_format = PCMU_8K
    source.send_media_to(call)
    call.answer()
    for n in range(5):
        clock.advance(20)
        source._deliver(Frame(b"\x42" * 160, PCMU_8K, n * 20))
    # Frame n arrives at 20(n+1), starts playing 60 ms later and counts as played when it ends.
    assert call.playback_position(source) == 20  # the first frame has just ended, at 100
    seen = positions(clock, call, source, 200, [(100, 20)])
    assert seen == [(100, 20), (120, 40), (140, 60), (160, 80), (180, 100)]


def test_jitter_never_reorders_or_overlaps_playback() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(
        clock, acknowledge=True, playout_delay_ms=40, jitter_ms=80, seed=3, send_silence=False
    )
    source = Collector(clock)
    source.send_media_to(call)
    call.answer()
    seen: list[tuple[int, int]] = []
    for n in range(100):
        source._deliver(Frame(b"\x42" * 160, PCMU_8K, n * 20))
        positions(clock, call, source, 20, seen)
    positions(clock, call, source, 500, seen)
    assert [p for _, p in seen] == list(range(20, 2001, 20))  # every frame, in order
    starts = [p.start_ms for p in call.played]
    assert all(b >= a + 20 for a, b in itertools.pairwise(starts))


def test_clear_drops_pending_audio_and_cuts_the_frame_playing() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(clock, acknowledge=True, playout_delay_ms=100, send_silence=False)
    source = ModelSource(clock, PCMU_8K)
    source.send_media_to(call)
    call.answer()
    source.push(b"\x42" * 8 * 1000, "a")
    clock.advance(250)  # 13 frames arrived (0..240); playing since 100, for 150 ms
    cleared = source.clear()
    assert [(c.item_id, c.heard_ms) for c in cleared] == [("a", 140)]
    assert call.played_ms(source) == 150
    clock.advance(1000)
    assert call.played_ms(source) == 150


def test_hangup_disconnects_and_releases_the_call() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(clock)
    client = ModelSource(clock, PCMU_8K)
    send_media_between(call, client)
    events = events_of(call)
    call.answer()
    clock.advance(40)
    call.hangup()
    call.hangup()
    assert [name for _, name in events] == [CallEvents.Connected, CallEvents.Disconnected]
    assert call.state == "disconnected"
    assert client.media_sinks == () and client.media_source is None
    assert clock.subscriber_count == 0
    ref = weakref.ref(call)
    del call, events
    gc.collect()
    assert ref() is None
    with pytest.raises(ValueError, match="media_format"):
        LoopbackCall(clock, media_format=AudioFormat("pcm16", 8000, 2))


def test_remote_hangup_event() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(clock)
    got: list[Event] = []
    call.add_event_listener(CallEvents.Disconnected, got.append)
    call.answer()
    call.remote_hangup()
    assert got[0].initiator == "remote" and got[0].call is call
    with pytest.raises(RuntimeError, match="answer"):
        call.answer()


def test_model_stream_started_and_ended_as_heard_by_the_call() -> None:
    clock = VirtualMediaClock()
    call = LoopbackCall(clock)
    client = ModelSource(clock, PCMU_8K)
    send_media_between(call, client)
    call.answer()
    clock.advance(1000)
    client.push(b"\x42" * 8 * 600, "a")  # 600 ms at t=1000
    clock.advance(3000)
    assert client.events == [("started", 1000, None), ("ended", 2600, 600)]
