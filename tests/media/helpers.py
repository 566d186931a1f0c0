"""Test units: a model-audio source wired the way the Realtime client wires its playout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voxline.audio import AudioFormat
from voxline.media import MediaUnit
from voxline.media.clock import MediaClock
from voxline.media.playout import ClearedItem, Playout, PlayoutBuffer


class ModelSource(MediaUnit):
    """Model audio in (``push``), paced frames out to the sinks, barge-in with ``clear``."""

    def __init__(self, clock: MediaClock, fmt: AudioFormat) -> None:
        super().__init__()
        self.media_format = fmt
        self.buffer = PlayoutBuffer(fmt)
        self.events: list[tuple[str, int, int | None]] = []
        self.clock = clock
        self.playout = Playout(self.buffer, clock, self._deliver, self._started, self._ended)

    def push(self, data: bytes, item_id: str | None = None, content_index: int = 0) -> None:
        self.buffer.push(data, item_id, content_index)

    def clear(self) -> list[ClearedItem]:
        # What the sinks really played, asked before they drop what they hold.
        heard = self._sinks_playback_position()
        if heard is not None:
            self.buffer.acknowledge(heard)
        cleared = self.playout.clear()
        self._clear_sinks()
        return cleared

    def _sinks_changed(self) -> None:
        # Trust only the sinks' positions when a sink reports what it really played.
        self.buffer.acknowledged = self._sinks_report_playback

    def _started(self) -> None:
        self.events.append(("started", self.clock.now_ms(), None))

    def _ended(self, duration_ms: int) -> None:
        self.events.append(("ended", self.clock.now_ms(), duration_ms))

    def close_media(self) -> None:
        self.playout.close()
        super().close_media()


class FakeLoop:
    """Just enough of an event loop for the clock: a virtual time() and call_at()."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.pending: list[asyncio.TimerHandle] = []
        self.scheduled = 0

    def time(self) -> float:
        return self.now

    def get_debug(self) -> bool:
        return False

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), self)  # type: ignore[arg-type]
        self.pending.append(handle)
        self.scheduled += 1
        return handle

    def live(self) -> list[asyncio.TimerHandle]:
        self.pending = [h for h in self.pending if not h.cancelled()]
        return self.pending

    def fire_next(self, lateness: float = 0.0) -> None:
        """Run the pending timer, ``lateness`` seconds after its deadline."""
        (handle,) = self.live()
        self.pending.remove(handle)
        self.now = max(self.now, handle.when() + lateness)
        handle._run()
