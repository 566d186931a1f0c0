"""The test callers' carrier model on virtual time, and the inbound re-framing of streams."""

from __future__ import annotations

import asyncio

import pytest

from voxline.audio import PCM16_16K, PCMU_8K, Frame
from voxline.carriers._base import Reframer
from voxline.carriers.stream import CarrierStream
from voxline.testing.carrier_callers import PlaybackModel, VirtualClock


def test_audio_plays_in_real_time_from_arrival_and_marks_wait_for_it() -> None:
    model = PlaybackModel(8, mark_delay_ms=10)
    model.media(b"a" * 160, now_ms=0)  # plays 0..20
    model.media(b"b" * 160, now_ms=5)  # queued behind: 20..40
    model.mark("m1", now_ms=5)  # due when 40 ms have played, + 10
    assert model.buffered_ms(5) == 35
    assert model.advance(19) == [] and model.played == b""
    assert model.advance(20) == [] and model.played == b"a" * 160
    assert model.advance(49) == [] and model.played == b"a" * 160 + b"b" * 160
    assert model.advance(50) == ["m1"]
    assert model.idle


def test_audio_arriving_after_a_gap_starts_playing_on_arrival() -> None:
    model = PlaybackModel(8, mark_delay_ms=0)
    model.media(b"a" * 160, now_ms=0)
    model.media(b"b" * 160, now_ms=100)  # the buffer ran dry: plays 100..120
    model.mark("m", now_ms=100)
    assert model.advance(119) == []
    assert model.advance(120) == ["m"]


def test_jitter_never_reorders_marks() -> None:
    model = PlaybackModel(8, mark_delay_ms=0, mark_jitter_ms=200, seed=3)
    for i in range(20):
        model.media(b"x" * 160, now_ms=i * 20)
        model.mark(f"m{i}", now_ms=i * 20)
    echoed: list[str] = []
    for t in range(0, 1000, 5):
        echoed += model.advance(t)
    assert echoed == [f"m{i}" for i in range(20)]


def test_clear_drops_unplayed_audio_and_returns_pending_marks_at_once() -> None:
    model = PlaybackModel(8, mark_delay_ms=30)
    for i in range(5):
        model.media(b"%d" % i * 160, now_ms=0)
        model.mark(f"m{i}", now_ms=0)
    assert model.advance(40) == []  # two chunks played, no mark due yet (delay)
    assert model.clear(now_ms=45) == ["m0", "m1", "m2", "m3", "m4"]
    assert model.played == b"0" * 160 + b"1" * 160
    assert model.cleared_bytes == 3 * 160 and model.idle
    # New audio after the clear plays at once.
    model.media(b"n" * 160, now_ms=50)
    assert model.advance(70) == [] and model.played.endswith(b"n" * 160)


async def test_virtual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, at: float) -> None:
        await clock.sleep_until(at)
        woke.append((name, clock.now_ms()))

    tasks = [asyncio.create_task(sleeper(n, t)) for n, t in (("late", 60), ("early", 20), ("mid", 40))]
    await asyncio.sleep(0)
    await clock.advance(30)
    assert woke == [("early", 20)]
    await clock.advance(100)
    assert woke == [("early", 20), ("mid", 40), ("late", 60)]
    assert clock.now_ms() == 130
    await asyncio.gather(*tasks)


def test_reframer_passes_whole_frames_through_uncopied() -> None:
    reframer = Reframer(PCMU_8K)
    payload = bytes(range(160))
    (frame,) = reframer.push(payload, 40)
    assert frame.data is payload and frame.timestamp_ms == 40


def test_reframer_cuts_other_sizes_into_20ms_frames() -> None:
    reframer = Reframer(PCM16_16K)  # 640 bytes a frame
    assert reframer.push(b"\x01" * 1000, 100) == [Frame(b"\x01" * 640, PCM16_16K, 100)]
    frames = reframer.push(b"\x02" * 1000, 131)
    assert [f.timestamp_ms for f in frames] == [120, 140]
    assert frames[0].data == b"\x01" * 360 + b"\x02" * 280
    tail = reframer.flush()
    assert tail is not None and len(tail.data) == 80 and tail.timestamp_ms == 160
    assert reframer.flush() is None


class _Stream(CarrierStream):
    kind = "twilio"


async def test_frames_before_a_consumer_are_kept_for_it() -> None:
    stream = _Stream(stream_id="s", media_format=PCMU_8K)
    for i in range(3):
        stream.deliver_audio(bytes([i]) * 160, i * 20)
    got: list[Frame] = []
    stream.on_audio = got.append
    stream.deliver_audio(b"\x03" * 160, 60)
    assert [f.timestamp_ms for f in got] == [0, 20, 40, 60]
    with pytest.raises(TypeError, match="on_audio"):
        stream.on_audio = "not callable"  # type: ignore[assignment]


async def test_async_iteration_ends_when_the_stream_ends() -> None:
    stream = _Stream(stream_id="s", media_format=PCMU_8K)
    stream.deliver_audio(b"\xff" * 160, 0)
    stream.deliver_audio(b"\xff" * 100, 20)  # a short tail, flushed at the end
    stream.finish(1000, "stop")
    frames = [frame async for frame in stream]
    assert [len(f.data) for f in frames] == [160, 100]
    assert stream.is_closed and stream.close_reason == "stop"
    assert [f async for f in stream.frames()] == []  # a second iterator ends at once
