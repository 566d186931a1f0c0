"""PlayoutBuffer and Playout: framing, bounds, clear, per-item heard positions, started/ended."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from voxline.audio import PCM16_24K, PCMU_8K, Frame
from voxline.media.clock import ClockSubscription, VirtualMediaClock
from voxline.media.playout import ClearedItem, Playout, PlayoutBuffer


def ulaw(ms: int, byte: int = 0x42) -> bytes:
    return bytes([byte]) * (8 * ms)


def pcm24(ms: int) -> bytes:
    return b"\x01\x02" * (24 * ms)


def drain(buffer: PlayoutBuffer, frames: int) -> list[Frame]:
    out = []
    for _ in range(frames):
        frame = buffer.pop_frame()
        assert frame is not None
        out.append(frame)
    return out


# -- framing --------------------------------------------------------------------------------------


def test_frames_are_20_ms_with_stream_timestamps() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(70), "a")
    frames = drain(buffer, 4)
    assert [f.timestamp_ms for f in frames] == [0, 20, 40, 60]
    assert all(len(f.data) == 160 for f in frames)
    assert frames[3].data == ulaw(10) + b"\xff" * 80  # the final partial frame padded with μ-law silence
    assert buffer.pop_frame() is None
    assert buffer.emitted_ms == 80
    # Audio pushed after a padded frame starts on the next frame.
    buffer.push(ulaw(20, 0x11), "b")
    (frame,) = drain(buffer, 1)
    assert frame.timestamp_ms == 80 and frame.data == ulaw(20, 0x11)


def test_frame_sized_pushes_pass_through_without_a_copy() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    payload = ulaw(20)
    buffer.push(payload, "a")
    frame = buffer.pop_frame()
    assert frame is not None and frame.data is payload


def test_odd_sized_pcm_pushes_span_frames() -> None:
    buffer = PlayoutBuffer(PCM16_24K)
    data = bytes(range(256)) * 40  # 10240 bytes = 5120 samples, about 213 ms
    for i in range(0, len(data), 1234):
        buffer.push(data[i : i + 1234], "a")
    out = b"".join(f.data for f in drain(buffer, 11))
    assert out[: len(data)] == data
    assert out[len(data) :] == bytes(11 * 960 - len(data))
    assert buffer.received_ms("a") == 213


def test_bad_pushes_are_refused_with_a_reason() -> None:
    buffer = PlayoutBuffer(PCM16_24K)
    with pytest.raises(ValueError, match="whole number"):
        buffer.push(b"\x00\x01\x02")
    with pytest.raises(TypeError, match="data"):
        buffer.push("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="item_id"):
        buffer.push(b"\x00\x00", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_ms"):
        PlayoutBuffer(PCMU_8K, max_ms=0)
    assert buffer.buffered_ms == 0


def test_buffer_is_bounded_and_counts_what_it_drops() -> None:
    buffer = PlayoutBuffer(PCMU_8K)  # 10 s, like VoxEngine
    for _ in range(12):
        buffer.push(ulaw(1000), "a")
    assert buffer.buffered_ms == 10_000
    assert buffer.dropped_ms == 2000
    assert buffer.received_ms("a") == 12_000
    drain(buffer, 50)
    buffer.push(ulaw(1500), "a")
    assert buffer.buffered_ms == 10_000  # 1000 ms played, so 1000 ms more fit
    assert buffer.dropped_ms == 2500


# -- clear and heard positions --------------------------------------------------------------------


def test_multi_item_clear_attributes_time_to_the_right_item() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(700), "A")
    buffer.push(ulaw(500), "B")
    buffer.end_item("B")
    drain(buffer, 45)  # 900 ms emitted
    assert buffer.clear() == [ClearedItem("B", 0, heard_ms=200, received_ms=500)]
    assert buffer.pop_frame() is None
    assert buffer.buffered_ms == 0


def test_clear_mid_item_and_with_nothing_playing() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    assert buffer.clear() == []
    buffer.push(ulaw(1000), "A", 1)
    drain(buffer, 13)
    assert buffer.clear() == [ClearedItem("A", 1, heard_ms=260, received_ms=1000, still_streaming=True)]
    assert buffer.clear() == []


def test_fully_played_items_are_not_reported_and_unstarted_ones_report_zero() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(100), "A")
    buffer.push(ulaw(100), "B")
    buffer.end_item("B")
    drain(buffer, 5)  # exactly A
    (cleared,) = buffer.clear()
    assert cleared == ClearedItem("B", 0, heard_ms=0, received_ms=100)
    assert not cleared.interrupted  # nothing heard: nothing to truncate


def test_an_item_still_streaming_is_reported_even_if_all_received_audio_was_heard() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(100), "A")
    drain(buffer, 5)  # all of A so far, then an underrun: the model is slower than real time
    assert buffer.pop_frame() is None
    (cleared,) = buffer.clear()
    assert cleared == ClearedItem("A", 0, heard_ms=100, received_ms=100, still_streaming=True)
    assert cleared.interrupted
    buffer.push(ulaw(100), "A")  # the rest of A, in flight when the caller barged in
    assert buffer.pop_frame() is None and buffer.discarded_ms == 100


def test_an_item_is_complete_once_ended_or_once_the_next_one_starts() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(100), "A")
    buffer.end_item("A")
    drain(buffer, 5)
    assert buffer.clear() == []
    buffer.push(ulaw(100), "B")
    buffer.push(ulaw(100), "C")
    buffer.end_item("B")  # not the open item: no effect
    drain(buffer, 10)
    assert buffer.clear() == [ClearedItem("C", 0, heard_ms=100, received_ms=100, still_streaming=True)]


def test_audio_without_an_item_is_never_reported() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(100))
    drain(buffer, 2)
    assert buffer.clear() == []


def test_late_audio_of_a_cut_item_is_discarded() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(100), "A")
    drain(buffer, 1)
    assert [c.item_id for c in buffer.clear()] == ["A"]
    buffer.push(ulaw(100), "A")
    assert buffer.buffered_ms == 0 and buffer.discarded_ms == 100
    buffer.push(ulaw(100), "C")
    assert buffer.buffered_ms == 100


def test_heard_counts_item_time_not_padding() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(30), "A")
    drain(buffer, 2)  # 30 ms of A + 10 ms of padding: an underrun in the middle of the item
    buffer.push(ulaw(50), "A")
    buffer.end_item("A")
    drain(buffer, 1)  # 20 ms more of A
    # 60 ms emitted on the output timeline, but 50 ms of A's own audio.
    assert buffer.clear() == [ClearedItem("A", 0, heard_ms=50, received_ms=80)]


def test_heard_counts_item_time_across_overflow_drops() -> None:
    buffer = PlayoutBuffer(PCMU_8K, max_ms=100)
    buffer.push(ulaw(150), "A")  # 50 ms of A (100..150) dropped
    drain(buffer, 5)  # the 100 ms kept
    buffer.push(ulaw(40), "A")  # A continues at its offset 150
    buffer.end_item("A")
    drain(buffer, 1)
    assert buffer.dropped_ms == 50
    assert buffer.clear() == [ClearedItem("A", 0, heard_ms=170, received_ms=190)]


def test_acknowledged_position_is_what_was_heard() -> None:
    buffer = PlayoutBuffer(PCMU_8K, acknowledged=True)
    buffer.push(ulaw(700), "A")
    buffer.push(ulaw(500), "B")
    buffer.end_item("B")
    drain(buffer, 45)  # 900 ms emitted, the sink lags
    buffer.acknowledge(640)
    buffer.acknowledge(600)  # lower: ignored
    assert buffer.acknowledged_ms == 640 and buffer.heard_ms == 640
    assert buffer.clear() == [
        ClearedItem("A", 0, heard_ms=640, received_ms=700),  # emitted in full, but not heard in full
        ClearedItem("B", 0, heard_ms=0, received_ms=500),
    ]


def test_acknowledgement_cannot_pass_what_was_emitted() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(200), "A")
    buffer.end_item("A")
    drain(buffer, 2)
    buffer.acknowledge(10_000)
    assert buffer.acknowledged_ms == 40
    assert buffer.clear() == [ClearedItem("A", 0, heard_ms=40, received_ms=200)]


def test_first_acknowledgement_switches_to_acknowledged_positions() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    assert not buffer.acknowledged
    buffer.push(ulaw(200), "A")
    drain(buffer, 3)
    buffer.acknowledge(20)
    assert buffer.acknowledged and buffer.heard_ms == 20


# -- Playout on the clock -------------------------------------------------------------------------


class Recorder:
    def __init__(self, clock: VirtualMediaClock) -> None:
        self.clock = clock
        self.frames: list[tuple[int, Frame]] = []
        self.events: list[tuple[int, str, int | None]] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append((self.clock.now_ms(), frame))

    def started(self) -> None:
        self.events.append((self.clock.now_ms(), "started", None))

    def ended(self, duration_ms: int) -> None:
        self.events.append((self.clock.now_ms(), "ended", duration_ms))


def make_playout() -> tuple[VirtualMediaClock, PlayoutBuffer, Playout, Recorder]:
    clock = VirtualMediaClock()
    buffer = PlayoutBuffer(PCMU_8K)
    rec = Recorder(clock)
    playout = Playout(buffer, clock, rec.deliver, rec.started, rec.ended)
    return clock, buffer, playout, rec


def test_playout_starts_at_once_paces_one_frame_per_tick_and_idles() -> None:
    clock, buffer, playout, rec = make_playout()
    clock.advance(100)
    assert clock.subscriber_count == 0  # nothing to play: not subscribed
    buffer.push(ulaw(500), "A")
    assert [t for t, _ in rec.frames] == [100]  # the first frame leaves inside push
    assert clock.subscriber_count == 1
    clock.advance(2000)
    assert [t for t, _ in rec.frames] == list(range(100, 581, 20))
    assert [f.timestamp_ms for _, f in rec.frames] == list(range(0, 481, 20))
    assert rec.events == [(100, "started", None), (1600, "ended", 500)]
    assert clock.subscriber_count == 0
    assert not playout.playing


def test_audio_within_the_silence_window_continues_the_stream() -> None:
    clock, buffer, _, rec = make_playout()
    buffer.push(ulaw(200), "A")
    clock.advance(700)  # 200 ms played by t=200, then 500 ms of silence
    buffer.push(ulaw(200), "B")  # B starts at once: 700..900
    clock.advance(1500)
    assert rec.events == [(0, "started", None), (1900, "ended", 400)]
    buffer.push(ulaw(100), "C")  # after the stream ended: a new one starts
    clock.advance(2000)
    assert rec.events[2:] == [(2200, "started", None), (3300, "ended", 100)]


def test_clear_silences_the_next_tick() -> None:
    clock, buffer, playout, rec = make_playout()
    buffer.push(ulaw(1000), "A")
    clock.advance(250)  # frames at 0 (inside push) and ticks 20..240: 13 frames
    cleared = playout.clear()
    assert cleared == [ClearedItem("A", 0, heard_ms=260, received_ms=1000, still_streaming=True)]
    count = len(rec.frames)
    clock.advance(20)
    assert len(rec.frames) == count  # the next tick delivers nothing of the cleared stream
    clock.advance(2000)
    assert len(rec.frames) == count
    assert rec.events == [(0, "started", None), (1260, "ended", 260)]


def test_failing_callbacks_do_not_stop_the_playout(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualMediaClock()
    buffer = PlayoutBuffer(PCMU_8K)
    got: list[Frame] = []

    def deliver(frame: Frame) -> None:
        got.append(frame)
        raise RuntimeError("deliver")

    def boom() -> None:
        raise RuntimeError("started")

    Playout(buffer, clock, deliver, boom, lambda d: None)
    buffer.push(ulaw(100), "A")
    with caplog.at_level(logging.ERROR, logger="voxline.media.playout"):
        clock.advance(200)
    assert len(got) == 5


def test_close_stops_the_playout() -> None:
    clock, buffer, playout, rec = make_playout()
    buffer.push(ulaw(1000), "A")
    clock.advance(100)
    playout.close()
    clock.advance(100)
    assert len(rec.frames) == 6 and clock.subscriber_count == 0  # 0, 20, ..., 100
    buffer.push(ulaw(100), "B")
    assert clock.subscriber_count == 0
    Playout(buffer, clock, rec.deliver)  # the buffer can be driven again
    assert clock.subscriber_count == 1
    with pytest.raises(ValueError, match="another Playout"):
        Playout(buffer, clock, rec.deliver)


def test_pacing_does_not_drift_over_ten_minutes() -> None:
    clock, buffer, _, rec = make_playout()
    for second in range(600):
        buffer.push(ulaw(1000), f"item{second}")  # one second of audio every second
        clock.advance(1000)
    stamps = [f.timestamp_ms for _, f in rec.frames]
    assert len(stamps) == 30_000
    assert stamps == list(range(0, 600_000, 20))  # frame timestamps exactly 20 ms apart
    assert [t for t, _ in rec.frames] == list(range(0, 600_000, 20))  # one frame per tick, no gap
    assert buffer.buffered_ms == 0


def test_a_talkspurt_starts_off_the_grid_and_keeps_its_own_phase() -> None:
    clock, buffer, _, rec = make_playout()
    clock.advance(107)
    buffer.push(ulaw(100), "A")
    clock.advance(200)
    assert [t for t, _ in rec.frames] == [107, 127, 147, 167, 187]  # 20 ms apart, from the push
    # A later answer, after the first ran dry but within the silence window: at once, new phase.
    clock.advance_to(333)
    buffer.push(ulaw(60), "B")
    clock.advance(100)
    assert [t for t, _ in rec.frames][5:] == [333, 353, 373]
    assert rec.events == [(107, "started", None)]  # one stream: B came within 1 s of A's end


def test_audio_pushed_while_a_frame_plays_waits_for_its_tick() -> None:
    clock, buffer, _, rec = make_playout()
    clock.advance(5)
    buffer.push(ulaw(20), "A")  # delivered at 5, plays until 25
    clock.advance(10)
    buffer.push(ulaw(40), "A")  # arrives at 15: not early, not a new phase
    clock.advance(100)
    assert [t for t, _ in rec.frames] == [5, 25, 45]
    assert [f.timestamp_ms for _, f in rec.frames] == [0, 20, 40]


# -- batches (sinks that buffer and pace by themselves) ---------------------------------------------


def test_pop_frame_takes_several_whole_frames_and_pads_only_the_first() -> None:
    buffer = PlayoutBuffer(PCMU_8K)
    buffer.push(ulaw(30, 0x01) + ulaw(40, 0x02), "A")  # 70 ms in two pushes
    frame = buffer.pop_frame(5)
    assert frame is not None and frame.timestamp_ms == 0
    assert frame.data == ulaw(30, 0x01) + ulaw(30, 0x02)  # 3 whole frames, the 10 ms rest stays queued
    assert buffer.emitted_ms == 60 and buffer.buffered_ms == 10
    frame = buffer.pop_frame(5)  # only a partial frame left: it is the one due, padded
    assert frame is not None and frame.data == ulaw(10, 0x02) + b"\xff" * 80
    assert buffer.emitted_ms == 80 and buffer.pop_frame(5) is None


def make_batched(batch_ms: int) -> tuple[VirtualMediaClock, PlayoutBuffer, Playout, Recorder]:
    clock, buffer, playout, rec = make_playout()
    playout.batch_ms = batch_ms
    return clock, buffer, playout, rec


def test_a_batch_leaves_as_soon_as_the_sink_holds_less_than_one_beyond_the_frame_playing() -> None:
    clock, buffer, _, rec = make_batched(100)
    clock.advance(7)
    buffer.push(ulaw(450), "A")
    clock.advance(2000)
    # The first inside push, then on the shared grid's ticks (a batch sink has no phase of its own)
    # once the sink holds less than 80 ms beyond the frame playing: it always has 60..180 ms in hand.
    assert [t for t, _ in rec.frames] == [7, 40, 140, 240, 340, 440]
    assert [f.timestamp_ms for _, f in rec.frames] == [0, 100, 200, 300, 400, 440]
    # The last 50 ms: its two whole frames, then the 10 ms rest, padded, on the last tick before the
    # sink would run dry (447).
    assert [len(f.data) for _, f in rec.frames] == [800, 800, 800, 800, 320, 160]
    assert rec.events == [(7, "started", None), (1480, "ended", 460)]


class CountingClock(VirtualMediaClock):
    """Records the ticks each subscriber is really called on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def subscribe(
        self, callback: Callable[[int], None], *, phase_ms: int = 0, order: int = 0
    ) -> ClockSubscription:
        def counted(tick_ms: int) -> None:
            self.calls.append(tick_ms)
            callback(tick_ms)

        return super().subscribe(counted, phase_ms=phase_ms, order=order)


def test_a_batch_playout_sleeps_through_the_ticks_while_its_sink_holds_enough() -> None:
    clock = CountingClock()
    buffer = PlayoutBuffer(PCMU_8K)
    rec = Recorder(clock)
    playout = Playout(buffer, clock, rec.deliver, rec.started, rec.ended)
    playout.batch_ms = 100
    clock.advance(7)
    buffer.push(ulaw(450), "A")
    clock.advance(2000)
    # What the caller gets is as before (the test above) ...
    assert [t for t, _ in rec.frames] == [7, 40, 140, 240, 340, 440]
    # ... but the playout is called only from the tick its sink may need more: not on the four of
    # five between batches. From 380 on, ticks again: the 10 ms rest waits for the tick before the
    # sink runs dry (440), then the silence window that ends the stream.
    assert clock.calls == [40, 140, 240, 340, 380, 400, 420, 440, *range(460, 1481, 20)]
    # A clear ends the sleep: the sink dropped what it held, the next tick is the playout's again.
    buffer.push(ulaw(300), "B")  # at 2007, its first batch at once: asleep until 2027
    del clock.calls[:]
    clock.advance(10)
    playout.clear()
    clock.advance(10)
    assert clock.calls == [2020]


def test_a_batch_is_what_whole_frames_allow_and_the_rest_follows_in_time() -> None:
    clock, buffer, _, rec = make_batched(100)
    buffer.push(ulaw(50), "A")  # a model delta that is not a whole number of frames
    assert [(t, len(f.data)) for t, f in rec.frames] == [(0, 320)]  # 40 ms now, the 10 ms rest waits
    clock.advance(20)
    buffer.push(ulaw(200), "A")  # the rest of the delta arrives before the 40 ms have played
    clock.advance(40)
    # At 20 only 10 ms is queued beyond the frames delivered: a partial frame is not due, it waits.
    # At 40 the first 40 ms have played: a batch leaves, contiguous and unpadded; at 60 the next.
    assert [(t, f.timestamp_ms, len(f.data)) for t, f in rec.frames] == [
        (0, 0, 320),
        (40, 40, 800),
        (60, 140, 800),
    ]
    assert b"\xff" not in b"".join(f.data for _, f in rec.frames)


def test_after_a_clear_new_audio_starts_at_once_whatever_the_batch() -> None:
    clock, buffer, playout, rec = make_batched(100)
    buffer.push(ulaw(1000), "A")
    clock.advance(130)  # batches at 0, 20 and 120: the sink holds audio until 300
    playout.clear()
    clock.advance(10)
    buffer.push(ulaw(100), "B")  # the sinks dropped what they held: B need not wait
    assert [t for t, _ in rec.frames] == [0, 20, 120, 140]


def test_batch_ms_must_be_a_positive_multiple_of_20() -> None:
    _, _, playout, _ = make_playout()
    for bad in (0, 30, -20, 1.5, True):
        with pytest.raises(ValueError, match="batch_ms"):
            playout.batch_ms = bad  # type: ignore[assignment]
    playout.batch_ms = 60
    assert playout.batch_ms == 60
