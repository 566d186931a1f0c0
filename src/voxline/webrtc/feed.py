"""A call's event feed for its playground page: what happened, as small JSON-able dicts.

No I/O: ``publish`` adds an event (with the time since the call began), subscribers get each one
synchronously, and a late subscriber is given the history first. The feed carries only what the
page shows (transcripts, event names, latencies, truncations), never a header, key or token.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["EventFeed"]

log = logging.getLogger("voxline.webrtc")

Subscriber = Callable[["dict[str, Any] | None"], None]


class EventFeed:
    """The events of one call; ``None`` to a subscriber means the feed has ended."""

    def __init__(self, max_events: int = 1000) -> None:
        self._t0 = time.monotonic()
        self._history: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._subscribers: list[Subscriber] = []
        self.ended = False

    def publish(self, kind: str, **data: Any) -> None:
        if self.ended:
            return
        event = {"type": kind, "t": round((time.monotonic() - self._t0) * 1000), **data}
        self._history.append(event)
        for subscriber in list(self._subscribers):
            self._call(subscriber, event)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Replay the history to ``subscriber``, then each new event; returns the unsubscribe."""
        for event in list(self._history):
            self._call(subscriber, event)
        if self.ended:
            self._call(subscriber, None)
        else:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for subscriber in self._subscribers:
            self._call(subscriber, None)
        self._subscribers.clear()

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self._history)

    def _call(self, subscriber: Subscriber, event: dict[str, Any] | None) -> None:
        try:
            subscriber(event)
        except Exception:
            log.exception("event feed subscriber %r raised; removed", subscriber)
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
