"""The media clock: one absolute 20 ms schedule, no drift, catch-up, idling, subscriber rules."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import random
import weakref
from collections.abc import Callable

import pytest

from voxline.media.clock import AsyncioMediaClock, VirtualMediaClock

from .helpers import FakeLoop


def test_virtual_clock_ticks_every_20_ms_without_drift_for_10_minutes() -> None:
    clock = VirtualMediaClock()
    times: list[int] = []
    clock.subscribe(times.append)
    for _ in range(600):
        clock.advance(1000)  # one simulated second at a time
    assert len(times) == 30_000
    assert times == list(range(20, 600_001, 20))
    assert clock.now_ms() == 600_000


def test_virtual_clock_subscriber_rules(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualMediaClock()
    calls: list[tuple[str, int]] = []

    def late(t: int) -> None:
        calls.append(("late", t))

    def first(t: int) -> None:
        calls.append(("first", t))
        if t == 20:
            clock.subscribe(late)  # first called on the next tick
        if t == 40:
            clock.unsubscribe(second_handle)  # not called later in this tick

    def second(t: int) -> None:
        calls.append(("second", t))

    def broken(t: int) -> None:
        raise RuntimeError("subscriber bug")

    clock.subscribe(first)
    clock.subscribe(broken)
    second_handle = clock.subscribe(second)
    with caplog.at_level(logging.ERROR, logger="voxline.media.clock"):
        clock.advance(60)
    assert calls == [
        ("first", 20),
        ("second", 20),
        ("first", 40),
        ("late", 40),
        ("first", 60),
        ("late", 60),
    ]
    assert clock.subscriber_count == 2  # broken was dropped after its first failure
    assert len([r for r in caplog.records if r.exc_info]) == 1
    clock.unsubscribe(second_handle)  # idempotent


def test_virtual_clock_timers_interleave_with_ticks() -> None:
    clock = VirtualMediaClock()
    events: list[str] = []
    clock.subscribe(lambda t: events.append(f"tick {t}"))
    clock.call_at(30, lambda: events.append(f"timer {clock.now_ms()}"))
    clock.call_at(40, lambda: events.append(f"timer {clock.now_ms()}"))
    clock.advance(45)
    assert events == ["tick 20", "timer 30", "tick 40", "timer 40"]
    clock.run_ticks(2)
    assert clock.now_ms() == 80
    with pytest.raises(ValueError, match="past"):
        clock.call_at(10, lambda: None)
    with pytest.raises(ValueError, match="ms"):
        clock.advance(-1)


def test_asyncio_clock_keeps_the_absolute_schedule_despite_late_wakeups() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    times: list[int] = []
    clock.subscribe(times.append)
    rng = random.Random(7)
    for _ in range(30_000):
        loop.fire_next(lateness=rng.uniform(0, 0.009))  # up to 9 ms late, every time
        assert len(loop.live()) == 1  # one timer for the whole clock, never more
    assert times == list(range(20, 600_001, 20))
    assert clock.late_ticks == 0  # under half a tick late is on time
    # One call_at per tick for the clock, whatever the number of subscribers.
    assert loop.scheduled == 30_001  # the last one is pending for the next tick


def test_asyncio_clock_one_timer_for_many_subscribers() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    counts = [0] * 50

    def make(i: int) -> Callable[[int], None]:
        def cb(t: int) -> None:
            counts[i] += 1

        return cb

    for i in range(50):
        clock.subscribe(make(i))
    for _ in range(100):
        loop.fire_next()
    assert counts == [100] * 50
    assert loop.scheduled == 101


def test_asyncio_clock_catches_up_and_counts_late_ticks() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop, max_catch_up=10)  # type: ignore[arg-type]
    times: list[int] = []
    clock.subscribe(times.append)
    loop.fire_next()
    loop.fire_next(lateness=0.100)  # the loop was blocked for 100 ms: 6 ticks are due at once
    assert times == [20, 40, 60, 80, 100, 120, 140]
    assert clock.late_ticks == 5  # 40..120 ran more than 10 ms late; 140 was on time
    loop.fire_next()
    assert times[-1] == 160
    # A one-second stall: only the last max_catch_up ticks run, the rest are skipped.
    loop.fire_next(lateness=1.0)
    assert times[-10:] == list(range(1000, 1181, 20))[-10:]
    assert clock.skipped_ticks == 41
    assert times[-1] == 1180
    loop.fire_next()
    assert times[-1] == 1200  # back on the grid


def test_asyncio_clock_idles_without_subscribers_and_resumes_on_the_grid() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    assert loop.live() == []
    times: list[int] = []
    handle = clock.subscribe(times.append)
    loop.fire_next()
    clock.unsubscribe(handle)
    assert loop.live() == []  # idle: nothing scheduled
    loop.now += 0.505
    handle = clock.subscribe(times.append)
    loop.fire_next()
    assert times == [20, 540]  # the first grid point after now, not now + 20
    clock.close()
    assert loop.live() == []


def test_asyncio_clock_unsubscribing_inside_a_tick_idles_it() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    times: list[int] = []

    def once(t: int) -> None:
        times.append(t)
        clock.unsubscribe(handle)

    handle = clock.subscribe(once)
    loop.fire_next()
    assert times == [20]
    assert loop.live() == []


async def test_asyncio_clock_on_a_real_loop() -> None:
    clock = AsyncioMediaClock.for_loop()
    assert AsyncioMediaClock.for_loop() is clock
    times: list[int] = []
    done = asyncio.Event()

    def tick(t: int) -> None:
        times.append(t)
        if len(times) == 5:
            clock.unsubscribe(handle)
            done.set()

    handle = clock.subscribe(tick)
    await asyncio.wait_for(done.wait(), 5)
    assert all(t % 20 == 0 for t in times)
    assert [b - a for a, b in itertools.pairwise(times)] == [20] * 4 or clock.skipped_ticks
    assert clock.subscriber_count == 0


def test_asyncio_clock_subscribing_during_catch_up_keeps_the_due_ticks() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    times: list[int] = []
    joined: list[int] = []

    def tick(t: int) -> None:
        times.append(t)
        if t == 40:
            clock.subscribe(joined.append)

    clock.subscribe(tick)
    loop.fire_next(lateness=0.060)  # ticks 20..80 are due at once
    assert times == [20, 40, 60, 80]
    assert joined == [60, 80]
    assert len(loop.live()) == 1


def test_the_per_loop_clock_does_not_keep_its_loop_alive() -> None:
    loop = asyncio.new_event_loop()
    clock = AsyncioMediaClock.for_loop(loop)
    assert AsyncioMediaClock.for_loop(loop) is clock
    loop.close()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="no longer exists"):
        clock.now_ms()


def test_virtual_clock_phases_tick_on_their_own_grid_in_time_order() -> None:
    clock = VirtualMediaClock()
    events: list[tuple[str, int]] = []
    clock.subscribe(lambda t: events.append(("grid", t)))
    clock.advance(13)
    phase7 = clock.subscribe(lambda t: events.append(("p7", t)), phase_ms=7)  # first tick at 27
    clock.advance(50)
    assert events == [("grid", 20), ("p7", 27), ("grid", 40), ("p7", 47), ("grid", 60)]
    clock.unsubscribe(phase7)
    clock.advance(40)
    assert events[-2:] == [("grid", 80), ("grid", 100)]
    with pytest.raises(ValueError, match="phase_ms"):
        clock.subscribe(lambda t: None, phase_ms=20)
    with pytest.raises(TypeError, match="order"):
        clock.subscribe(lambda t: None, order="1")  # type: ignore[arg-type]


def test_subscribers_of_one_instant_run_by_order_then_by_subscription() -> None:
    clock = VirtualMediaClock()
    calls: list[str] = []
    clock.subscribe(lambda t: calls.append("watcher"), order=2)
    clock.subscribe(lambda t: calls.append("sender"), order=1)
    clock.subscribe(lambda t: calls.append("source-a"))
    clock.subscribe(lambda t: calls.append("source-b"))
    clock.advance(20)
    assert calls == ["source-a", "source-b", "sender", "watcher"]


def test_asyncio_clock_one_timer_across_phases_each_on_its_own_grid() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    times: dict[int, list[int]] = {0: [], 5: [], 13: []}
    for phase, got in times.items():
        clock.subscribe(got.append, phase_ms=phase)
    for _ in range(30):
        loop.fire_next(lateness=0.0005)
        assert len(loop.live()) == 1  # never more than one pending timer
    assert times[0][:3] == [20, 40, 60]
    assert times[5][:3] == [5, 25, 45]
    assert times[13][:3] == [13, 33, 53]
    for got in times.values():
        assert all(b - a == 20 for a, b in itertools.pairwise(got))
    assert clock.late_ticks == 0 and loop.scheduled == 32  # 20, then 5 (earlier), then one per tick


def test_asyncio_clock_late_wakeup_runs_due_ticks_of_all_phases_in_time_order() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    order: list[int] = []
    clock.subscribe(order.append, phase_ms=0)
    clock.subscribe(order.append, phase_ms=10)
    loop.fire_next(lateness=0.045)  # due at 10; runs at 55: 10, 20, 30, 40, 50 are all due
    assert order == [10, 20, 30, 40, 50]


def test_asyncio_clock_call_at_runs_once_at_that_time_on_the_clocks_timeline() -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)  # type: ignore[arg-type]
    ran: list[int] = []
    clock.call_at(clock.now_ms() + 1_000, lambda: ran.append(clock.now_ms()))
    while not ran:
        loop.fire_next()
    assert ran == [1_000]
    assert not loop.live()  # one-off: nothing left scheduled, no tick subscribers either


def test_a_subscriber_is_not_called_before_its_resume_time() -> None:
    clock = VirtualMediaClock()
    sleepy: list[int] = []
    awake: list[int] = []
    subscription = clock.subscribe(sleepy.append)
    clock.subscribe(awake.append)
    clock.advance(40)
    subscription.resume_ms = 101  # nothing to do before then: ticks 60..100 pass it by
    clock.advance(100)
    assert sleepy == [20, 40, 120, 140] and awake == [20, 40, 60, 80, 100, 120, 140]
    subscription.resume_ms = 0
    clock.advance(20)
    assert sleepy[-1] == 160


def test_resume_ms_takes_only_an_int() -> None:
    clock = VirtualMediaClock()
    ticks: list[int] = []
    subscription = clock.subscribe(lambda t: None)
    clock.subscribe(ticks.append)
    for bad in ("40", 40.0, None, True):
        with pytest.raises(TypeError, match="resume_ms"):
            subscription.resume_ms = bad  # type: ignore[assignment]
    clock.advance(40)
    assert ticks == [20, 40] and subscription.resume_ms == 0  # the other subscriber is untouched
