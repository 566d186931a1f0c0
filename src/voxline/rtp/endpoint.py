"""asyncio I/O for RTP: a UDP socket per session and one shared 20 ms clock for many senders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..audio import FRAME_MS
from .session import RtpEvent, RtpSession

__all__ = ["MediaClock", "RtpClock", "RtpEndpoint", "Tickable"]

log = logging.getLogger("voxline.rtp")


class Tickable(Protocol):
    def tick(self, now_ms: float) -> None: ...


class MediaClock(Protocol):
    """What drives senders: ``RtpClock``, or the application's own shared 20 ms clock."""

    def add(self, member: Tickable) -> None: ...

    def discard(self, member: Tickable) -> None: ...


class RtpEndpoint(asyncio.DatagramProtocol):
    """A UDP socket bound for one ``RtpSession``. ``tick(now_ms)`` sends what is due; received audio,
    DTMF and timeouts go to ``on_event``. ``now_ms`` is the event loop's clock in milliseconds."""

    def __init__(self, session: RtpSession, on_event: Callable[[RtpEvent], Any] | None = None) -> None:
        self.session = session
        self.on_event = on_event
        self._transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def create(
        cls,
        session: RtpSession,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: Callable[[RtpEvent], Any] | None = None,
    ) -> RtpEndpoint:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(session, on_event), local_addr=(host, port)
        )
        return protocol

    @property
    def local_addr(self) -> tuple[str, int]:
        assert self._transport is not None
        addr = self._transport.get_extra_info("sockname")
        return (addr[0], addr[1])

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def now_ms(self) -> float:
        return self._loop.time() * 1000.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.session.receive(data, (addr[0], addr[1]), self.now_ms())
        self._dispatch()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: keep the socket, the call decides.
        log.debug("RTP socket error: %s", exc)

    def tick(self, now_ms: float) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self.session.tick(now_ms)
        for data, addr in self.session.data_to_send():
            self._transport.sendto(data, addr)
        self._dispatch()

    def _dispatch(self) -> None:
        events = self.session.events_received()
        if not events or self.on_event is None:
            return
        for event in events:
            try:
                self.on_event(event)
            except Exception:
                log.exception("RTP event handler raised")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RtpClock:
    """One task ticking many senders on an absolute 20 ms schedule (``t0 + n*20 ms``, no drift).

    Use one per process (or pass your own clock's ticks to ``RtpEndpoint.tick``)."""

    def __init__(self, interval_ms: int = FRAME_MS) -> None:
        self.interval_ms = interval_ms
        self._members: set[Tickable] = set()
        self._task: asyncio.Task[None] | None = None
        self.late_ticks = 0

    def add(self, member: Tickable) -> None:
        self._members.add(member)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, member: Tickable) -> None:
        self._members.discard(member)

    def __len__(self) -> int:
        return len(self._members)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval_ms / 1000.0
        start = loop.time()
        n = 0
        while self._members:
            now = loop.time()
            for member in tuple(self._members):
                try:
                    member.tick(now * 1000.0)
                except Exception:
                    log.exception("RTP clock member raised")
            n += 1
            target = start + n * interval
            now = loop.time()
            if now > target + interval:
                self.late_ticks += 1
                n = int((now - start) / interval) + 1
                target = start + n * interval
            await asyncio.sleep(max(0.0, target - now))

    async def stop(self) -> None:
        self._members.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
