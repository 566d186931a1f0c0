"""The media clock: one absolute 20 ms schedule that drives every paced playout of an event loop.

Tick ``n`` happens at ``t0 + n * 20 ms``. Deadlines are computed from ``n``, never by adding up
sleeps, so the schedule does not drift however late single ticks run. Subscribers get the tick's
time in integer milliseconds on the clock's timeline.

A subscriber may ask for a *phase*: its ticks happen at ``n * 20 + phase_ms``. A playout that starts
a talkspurt sends its first frame at once and takes the phase of that moment, so model audio is not
held back until the next multiple of 20 ms; every later frame still leaves exactly 20 ms after the
previous one. Within one instant subscribers run by ``order`` (lower first), then by subscription:
sources (playouts, order 0) before the senders they feed (RTP, order 1) before whatever watches
what was sent (order 2), so a frame produced in a tick leaves in the same tick.

``AsyncioMediaClock`` keeps at most one ``loop.call_at`` handle pending for ALL its subscribers (no
task or timer per frame per playout) and idles while nobody is subscribed. ``VirtualMediaClock``
runs ticks deterministically for tests.
"""

from __future__ import annotations

import asyncio
import bisect
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
    """The handle ``subscribe`` returns; pass it to ``unsubscribe``.

    ``resume_ms``: the callback is not called for ticks before this time on the clock's timeline
    (0, the default: every tick). A subscriber with nothing to do for a while sets it -- a playout
    whose sink holds 100 ms of audio skips the ticks until it needs the next batch -- instead of
    being called only to return.
    """

    __slots__ = ("_resume_ms", "active", "callback", "order", "phase_ms")

    def __init__(self, callback: TickCallback, phase_ms: int = 0, order: int = 0) -> None:
        self.callback = callback
        self.phase_ms = phase_ms
        self.order = order
        self.active = True
        self._resume_ms = 0

    @property
    def resume_ms(self) -> int:
        return self._resume_ms

    @resume_ms.setter
    def resume_ms(self, value: int) -> None:
        # Checked here: a bad value read on a tick would stop every other subscriber's tick too.
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"resume_ms must be an int (clock ms), not {type(value).__name__}")
        self._resume_ms = value

    def __repr__(self) -> str:
        state = "active" if self.active else "cancelled"
        return f"<ClockSubscription {state} phase {self.phase_ms} ms {self.callback!r}>"


class _Phase:
    """The subscribers ticking at ``n * tick_ms + offset``; ``next_time`` is their next tick's time."""

    __slots__ = ("next_time", "offset", "snapshot", "subscriptions")

    def __init__(self, offset: int, next_time: int) -> None:
        self.offset = offset
        self.next_time = next_time
        self.subscriptions: list[ClockSubscription] = []
        self.snapshot: tuple[ClockSubscription, ...] = ()


class MediaClock(ABC):
    """Drives subscribers on one absolute 20 ms schedule (per phase).

    A subscriber added during a tick is first called on a later tick; one removed during a tick is
    not called again, not even later in that tick. A subscriber that raises is logged with its
    traceback and unsubscribed; the clock and the other subscribers go on.
    """

    tick_ms: int = FRAME_MS

    def __init__(self) -> None:
        self._phases: dict[int, _Phase] = {}
        self._count = 0
        self._running_tick: int | None = None

    def subscribe(self, callback: TickCallback, *, phase_ms: int = 0, order: int = 0) -> ClockSubscription:
        """Call ``callback(tick_time_ms)`` at every ``n * 20 + phase_ms`` from now on, ``order`` first."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if isinstance(phase_ms, bool) or not isinstance(phase_ms, int) or not 0 <= phase_ms < self.tick_ms:
            raise ValueError(f"phase_ms must be an int in [0, {self.tick_ms}), got {phase_ms!r}")
        if isinstance(order, bool) or not isinstance(order, int):
            raise TypeError(f"order must be an int, not {type(order).__name__}")
        subscription = ClockSubscription(callback, phase_ms, order)
        phase = self._phases.get(phase_ms)
        if phase is None:
            phase = self._phases[phase_ms] = _Phase(phase_ms, self._first_tick(phase_ms))
        subs = phase.subscriptions
        subs.insert(bisect.bisect_right(subs, order, key=_order), subscription)
        phase.snapshot = tuple(subs)
        self._count += 1
        self._subscribers_changed()
        return subscription

    def unsubscribe(self, handle: ClockSubscription) -> None:
        """Stop calling ``handle``'s callback. Idempotent."""
        if not handle.active:
            return
        handle.active = False
        phase = self._phases.get(handle.phase_ms)
        if phase is None:
            return
        try:
            phase.subscriptions.remove(handle)
        except ValueError:
            return
        self._count -= 1
        if phase.subscriptions:
            phase.snapshot = tuple(phase.subscriptions)
        else:
            phase.snapshot = ()
            del self._phases[handle.phase_ms]
            self._phase_idle(phase)
        self._subscribers_changed()

    @property
    def subscriber_count(self) -> int:
        return self._count

    @abstractmethod
    def now_ms(self) -> int:
        """The current time on the clock's timeline, in milliseconds."""

    @abstractmethod
    def call_at(self, time_ms: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when the clock reaches ``time_ms`` (a one-off timer on the clock's
        timeline, for what need not run every tick)."""

    def media_time_ms(self) -> int:
        """The time media produced now belongs to: inside a tick, that tick's time (after a stall
        the clock runs late ticks back to back, each with its own time); between ticks, now."""
        running = self._running_tick
        return running if running is not None else self.now_ms()

    @abstractmethod
    def _first_tick(self, phase_ms: int) -> int:
        """The time of the first tick of a newly active phase."""

    def _subscribers_changed(self) -> None:  # noqa: B027 - optional hook
        """Start or idle the timer (asyncio)."""

    def _phase_idle(self, phase: _Phase) -> None:  # noqa: B027 - optional hook
        """The last subscriber of ``phase`` left."""

    def _run_phase(self, phase: _Phase, tick_time_ms: int) -> None:
        self._running_tick = tick_time_ms
        try:
            for subscription in phase.snapshot:
                if not subscription.active or subscription._resume_ms > tick_time_ms:
                    continue
                try:
                    subscription.callback(tick_time_ms)
                except Exception:
                    log.exception("clock subscriber %r raised; unsubscribed", subscription.callback)
                    self.unsubscribe(subscription)
        finally:
            self._running_tick = None


def _order(subscription: ClockSubscription) -> int:
    return subscription.order


class VirtualMediaClock(MediaClock):
    """A clock that moves only when told: ``advance(ms)`` runs every tick due in that span, in order.

    Ticks of phase 0 happen at ``start_ms + n * 20`` for n >= 1, whether or not anybody is subscribed
    (``ticks`` counts them); other phases tick while they have subscribers, first strictly after the
    moment they were subscribed. ``call_at`` runs one-off callbacks at a virtual time (tests use it to
    interleave pushes, clears and acknowledgements between ticks).
    """

    def __init__(self, start_ms: int = 0) -> None:
        super().__init__()
        self._start = start_ms
        self._now = start_ms
        self._next_tick = start_ms + self.tick_ms
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self.ticks = 0

    def now_ms(self) -> int:
        return self._now

    def _first_tick(self, phase_ms: int) -> int:
        n = (self._now - self._start - phase_ms) // self.tick_ms + 1
        return self._start + n * self.tick_ms + phase_ms

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
            earliest = self._next_tick
            phased: _Phase | None = None
            for phase in self._phases.values():
                if phase.offset:
                    when = phase.next_time
                    if when < earliest:
                        earliest, phased = when, phase
            tick_due = earliest if earliest <= target else None
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
            if phased is not None:
                phased.next_time += self.tick_ms
                self._run_phase(phased, tick_due)
                continue
            self._next_tick += self.tick_ms
            self.ticks += 1
            grid = self._phases.get(0)
            if grid is not None:
                self._run_phase(grid, tick_due)
        self._now = target

    def advance_to(self, time_ms: int) -> None:
        self.advance(time_ms - self._now)

    def run_ticks(self, n: int) -> None:
        """Run exactly ``n`` more ticks of phase 0; the clock stops on the last one."""
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
    due tick of any phase. When the loop is late, due ticks run back to back (in time order across
    phases) to catch up (``late_ticks`` counts ticks run more than half a tick late); after a stall
    longer than ``max_catch_up`` ticks the older ticks of a phase are skipped (``skipped_ticks``)
    rather than sending a burst of audio. A phase restarts on its own grid after idling, at the
    first tick not in the past.
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
        self._handle: asyncio.TimerHandle | None = None
        self._handle_time: int | None = None
        self._resume: dict[int, int] = {}  # next tick time of each phase that idled
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

    def call_at(self, time_ms: int, callback: Callable[[], None]) -> None:
        self._loop.call_at((self._t0_ms + time_ms) / 1000, callback)

    def _first_tick(self, phase_ms: int) -> int:
        # The first tick of the phase's grid that is not in the past, and never one already run.
        first = -(-(self.now_ms() - phase_ms) // self.tick_ms) * self.tick_ms + phase_ms
        return max(first, self._resume.get(phase_ms, phase_ms or self.tick_ms))

    def _phase_idle(self, phase: _Phase) -> None:
        self._resume[phase.offset] = phase.next_time

    def _next_due(self) -> int | None:
        phases = self._phases
        if not phases:
            return None
        return min(phase.next_time for phase in phases.values())

    def _subscribers_changed(self) -> None:
        if self._in_timer:
            return  # _on_timer reschedules (or idles) when its ticks are done
        self._reschedule()

    def _reschedule(self) -> None:
        due = self._next_due()
        if due == self._handle_time:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._handle_time = due
        if due is not None:
            self._handle = self._loop.call_at((self._t0_ms + due) / 1000, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = None
        self._handle_time = None
        now = self.now_ms()
        tick_ms = self.tick_ms
        for phase in self._phases.values():
            # The last tick that is due; the loop may wake a hair early, so allow 1 ms.
            due = (now + 1 - phase.offset) // tick_ms * tick_ms + phase.offset
            behind = (due - phase.next_time) // tick_ms + 1
            if behind > self.max_catch_up:
                skip = behind - self.max_catch_up
                self.skipped_ticks += skip
                phase.next_time += skip * tick_ms
        self._in_timer = True
        try:
            while True:
                earliest: _Phase | None = None
                when = now + 2
                for candidate in self._phases.values():
                    if candidate.next_time < when:
                        earliest, when = candidate, candidate.next_time
                if earliest is None:
                    break
                if now - when > tick_ms // 2:
                    self.late_ticks += 1
                earliest.next_time += tick_ms
                self.ticks += 1
                self._run_phase(earliest, when)
        finally:
            self._in_timer = False
        self._reschedule()

    def close(self) -> None:
        """Cancel the pending timer and drop every subscriber."""
        for phase in self._phases.values():
            for subscription in phase.subscriptions:
                subscription.active = False
        self._phases.clear()
        self._count = 0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._handle_time = None
