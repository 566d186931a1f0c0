"""What a Realtime server keeps about its sessions, and waiting for it to happen.

:class:`ServerRecords` is the inspection side of :class:`~voxline.realtime_server.server.RealtimeServer`:
server-wide lists of the client events received, the server events sent, the violations and
truncations of every session, the accepted sessions and the refused handshakes, and coroutines that
wait until a count of something is reached. Tests read them; the embedded backend drops them
periodically (``LocalRealtimeBackend.trim_history``). No sockets here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .conversation import Truncation

if TYPE_CHECKING:
    from .server import RealtimeConnection

__all__ = ["HandshakeRejection", "ServerRecords", "Waiters"]


@dataclass(frozen=True, slots=True)
class HandshakeRejection:
    """A connection the server turned away: after the upgrade (``status`` 101) or with an HTTP status."""

    status: int
    close_code: int | None
    error: dict[str, Any]


class Waiters:
    """Futures resolved when a predicate over the server's records becomes true."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def notify(self) -> None:
        for predicate, future in list(self._waiting):
            if not future.done() and predicate():
                future.set_result(None)

    async def wait(self, predicate: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(describe()) from None
        finally:
            self._waiting.remove(entry)


def _types(events: Iterable[dict[str, Any]]) -> list[str]:
    return [str(e.get("type")) for e in events]


class ServerRecords:
    """Server-wide records of every session, and waiting on them (see the module docstring)."""

    #: How :meth:`assert_no_violations` names the server when it failed itself.
    failure_label = "the Realtime server"

    def __init__(self) -> None:
        self._waiters = Waiters()
        self.sessions: list[RealtimeConnection] = []
        self.rejections: list[HandshakeRejection] = []
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.truncations: list[Truncation] = []

    @property
    def internal_errors(self) -> list[str]:
        """Faults of the server itself (each answered with a ``server_error`` event); should stay empty."""
        return [error for connection in self.sessions for error in connection.core.internal_errors]

    def assert_no_violations(self, ignore: Collection[str] = ()) -> None:
        """Fail when any client event was invalid or unexpected (``ignore``: error codes to tolerate).

        Also fails on faults of the server itself, so a test never passes on a broken double.
        """
        left = [v for v in self.violations if not any(f": {code}: " in v for code in ignore)]
        if left:
            raise AssertionError("the client sent invalid or unexpected events:\n  " + "\n  ".join(left))
        if self.internal_errors:
            raise AssertionError(f"{self.failure_label} failed:\n" + "\n".join(self.internal_errors))

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``count`` client events of ``event_type`` were received (all sessions); returns them."""
        return await self.wait_for_events(self.received, event_type, count, timeout, "received")

    async def wait_for_sent(
        self, event_type: str, count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` server events of ``event_type`` were sent (all sessions); returns them."""
        return await self.wait_for_events(self.sent, event_type, count, timeout, "sent")

    async def wait_for_session(self, count: int = 1, timeout: float = 5.0) -> RealtimeConnection:
        """Wait until ``count`` sessions were accepted; returns the ``count``-th."""
        await self._waiters.wait(
            lambda: len(self.sessions) >= count,
            timeout,
            lambda: (
                f"{len(self.sessions)} session(s) accepted, waited for {count}; rejections: {self.rejections}"
            ),
        )
        return self.sessions[count - 1]

    async def wait_for_rejection(self, count: int = 1, timeout: float = 5.0) -> HandshakeRejection:
        await self._waiters.wait(
            lambda: len(self.rejections) >= count,
            timeout,
            lambda: f"{len(self.rejections)} rejection(s), waited for {count}",
        )
        return self.rejections[count - 1]

    def notify_waiters(self) -> None:
        """Re-check what the ``wait_for*`` coroutines wait for: call after the records changed."""
        self._waiters.notify()

    async def wait_for_events(
        self, events: list[dict[str, Any]], event_type: str, count: int, timeout: float, verb: str
    ) -> list[dict[str, Any]]:
        """Wait until ``events`` (a records list: the server's or one session's) holds ``count`` events of
        ``event_type``; returns them. ``verb`` names the list in the timeout message."""

        def matching() -> list[dict[str, Any]]:
            return [e for e in events if e.get("type") == event_type]

        await self._waiters.wait(
            lambda: len(matching()) >= count,
            timeout,
            lambda: f"waited {timeout}s for {count} {event_type!r} event(s) {verb}; {verb}: {_types(events)}",
        )
        return matching()[:count]
