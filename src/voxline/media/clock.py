"""The media clock: one absolute 20 ms schedule that drives every paced playout of an event loop.

Tick ``n`` happens at ``t0 + n * 20 ms``. Deadlines are computed from ``n``, never by adding up
sleeps, so the schedule does not drift however late single ticks run. Subscribers get the tick's
time in integer milliseconds on the clock's timeline.

``AsyncioMediaClock`` keeps at most one ``loop.call_at`` handle pending for ALL its subscribers (no
task or timer per frame per playout) and idles while nobody is subscribed. ``VirtualMediaClock``
runs ticks deterministically for tests.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from voxline.audio import FRAME_MS

__all__ = ["AsyncioMediaClock", "ClockSubscription", "MediaClock", "TickCallback", "VirtualMediaClock"]

log = logging.getLogger("voxline.media.clock")

TickCallback = Callable[[int], None]


class ClockSubscription:
    """The handle ``subscribe`` returns; pass it to ``unsubscribe``."""

    __slots__ = ("active", "callback")

    def __init__(self, callback: TickCallback) -> None:
        self.callback = callback
        self.active = True

    def __repr__(self) -> str:
        state = "active" if self.active else "cancelled"
        return f"<ClockSubscription {state} {self.callback!r}>"


class MediaClock(ABC):
    """Drives subscribers on one absolute 20 ms schedule.

    A subscriber added during a tick is first called on the next tick; one removed during a tick is
    not called again, not even later in that tick. A subscriber that raises is logged with its
    traceback and unsubscribed; the clock and the other subscribers go on.
    """

    tick_ms: int = FRAME_MS

    def __init__(self) -> None:
        self._subscriptions: list[ClockSubscription] = []
        self._snapshot: tuple[ClockSubscription, ...] = ()

    def subscribe(self, callback: TickCallback) -> ClockSubscription:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        subscription = ClockSubscription(callback)
        self._subscriptions.append(subscription)
        self._snapshot = tuple(self._subscriptions)
        self._subscribers_changed()
        return subscription

    def unsubscribe(self, handle: ClockSubscription) -> None:
        """Stop calling ``handle``'s callback. Idempotent."""
        if not handle.active:
            return
        handle.active = False
        try:
            self._subscriptions.remove(handle)
        except ValueError:
            return
        self._snapshot = tuple(self._subscriptions)
        self._subscribers_changed()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @abstractmethod
    def now_ms(self) -> int:
        """The current time on the clock's timeline, in milliseconds."""

    def _subscribers_changed(self) -> None:  # noqa: B027 - optional hook
        """Start or idle the timer (asyncio)."""

    def _run_tick(self, tick_time_ms: int) -> None:
        for subscription in self._snapshot:
            if not subscription.active:
                continue
            try:
                subscription.callback(tick_time_ms)
            except Exception:
                log.exception("clock subscriber %r raised; unsubscribed", subscription.callback)
                self.unsubscribe(subscription)


class VirtualMediaClock(MediaClock):
    """A clock that moves only when told: ``advance(ms)`` runs every tick due in that span, in order.

    Ticks happen at ``start_ms + n * 20`` for n >= 1, whether or not anybody is subscribed.
    ``call_at`` runs one-off callbacks at a virtual time (tests use it to interleave pushes,
    clears and acknowledgements between ticks).
    """

    def __init__(self, start_ms: int = 0) -> None:
        super().__init__()
        self._now = start_ms
        self._next_tick = start_ms + self.tick_ms
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self.ticks = 0

    def now_ms(self) -> int:
        return self._now

    def call_at(self, time_ms: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the clock reaches ``time_ms`` (after that instant's tick, if any)."""
        if time_ms < self._now:
            raise ValueError(f"time_ms {time_ms} is in the past (now {self._now})")
        self._timer_seq += 1
        heapq.heappush(self._timers, (time_ms, self._timer_seq, callback))

    def advance(self, ms: int) -> None:
        """Move time forward by ``ms``, running every tick and timer due up to the new time."""
        if ms < 0:
            raise ValueError(f"ms must be >= 0, got {ms}")
        target = self._now + ms
        while True:
            tick_due = self._next_tick if self._next_tick <= target else None
            timer_due = self._timers[0][0] if self._timers and self._timers[0][0] <= target else None
            if tick_due is None and timer_due is None:
                break
            if timer_due is not None and (tick_due is None or timer_due < tick_due):
                self._now = timer_due
                _, _, callback = heapq.heappop(self._timers)
                callback()
                continue
            assert tick_due is not None
            self._now = tick_due
            self._next_tick += self.tick_ms
            self.ticks += 1
            self._run_tick(tick_due)
        self._now = target

    def advance_to(self, time_ms: int) -> None:
        self.advance(time_ms - self._now)

    def run_ticks(self, n: int) -> None:
        """Run exactly ``n`` more ticks; the clock stops on the last one."""
        if n > 0:
            self.advance_to(self._next_tick + (n - 1) * self.tick_ms)


class _Loop(Protocol):
    """What the asyncio clock needs of an event loop (a fake loop can stand in, in tests)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle: ...


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioMediaClock] = weakref.WeakKeyDictionary()


class AsyncioMediaClock(MediaClock):
    """The media clock of an asyncio event loop.

    Use ``AsyncioMediaClock.for_loop()`` to get the one clock shared by every playout of the running
    loop. While somebody is subscribed, exactly one ``loop.call_at`` handle is pending, for the next
    due tick. When the loop is late, due ticks run back to back to catch up (``late_ticks`` counts
    ticks run more than half a tick late); after a stall longer than ``max_catch_up`` ticks the
    older ticks are skipped (``skipped_ticks``) rather than sending a burst of audio.
    The schedule restarts on the same grid after idling.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop | _Loop | None = None, *, max_catch_up: int = 10
    ) -> None:
        super().__init__()
        if max_catch_up < 1:
            raise ValueError(f"max_catch_up must be >= 1, got {max_catch_up}")
        # Held weakly: the per-loop registry maps the loop to its clock, and a strong reference back
        # would keep every loop (and its clock) alive forever.
        self._loop_ref: weakref.ref[_Loop] = weakref.ref(
            loop if loop is not None else asyncio.get_running_loop()
        )
        self.max_catch_up = max_catch_up
        self._t0_ms = round(self._loop.time() * 1000)
        self._next_n = 1
        self._handle: asyncio.TimerHandle | None = None
        self._in_timer = False
        self.ticks = 0
        self.late_ticks = 0
        self.skipped_ticks = 0

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop | None = None) -> AsyncioMediaClock:
        """The clock shared by everything on ``loop`` (default: the running loop)."""
        loop = loop if loop is not None else asyncio.get_running_loop()
        clock = _clocks.get(loop)
        if clock is None:
            clock = _clocks[loop] = cls(loop)
        return clock

    @property
    def _loop(self) -> _Loop:
        loop = self._loop_ref()
        if loop is None:
            raise RuntimeError("the event loop of this media clock no longer exists")
        return loop

    def now_ms(self) -> int:
        return round(self._loop.time() * 1000) - self._t0_ms

    def _tick_time(self, n: int) -> int:
        return n * self.tick_ms

    def _subscribers_changed(self) -> None:
        if self._in_timer:
            return  # _on_timer reschedules (or idles) when its ticks are done
        if self._subscriptions and self._handle is None:
            # Resume on the same grid: the first tick not in the past.
            now = self.now_ms()
            self._next_n = max(self._next_n, -(-now // self.tick_ms))
            self._schedule()
        elif not self._subscriptions and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        when = (self._t0_ms + self._tick_time(self._next_n)) / 1000
        self._handle = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = None
        now = self.now_ms()
        # The last tick number that is due; the loop may wake a hair early, so allow 1 ms.
        due = (now + 1) // self.tick_ms
        if due - self._next_n + 1 > self.max_catch_up:
            skip = due - self._next_n + 1 - self.max_catch_up
            self.skipped_ticks += skip
            self._next_n += skip
        self._in_timer = True
        try:
            while self._next_n <= due and self._subscriptions:
                tick_time = self._tick_time(self._next_n)
                if now - tick_time > self.tick_ms // 2:
                    self.late_ticks += 1
                self._next_n += 1
                self.ticks += 1
                self._run_tick(tick_time)
        finally:
            self._in_timer = False
        if self._subscriptions and self._handle is None:
            self._schedule()

    def close(self) -> None:
        """Cancel the pending timer and drop every subscriber."""
        for subscription in self._subscriptions:
            subscription.active = False
        self._subscriptions.clear()
        self._snapshot = ()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
