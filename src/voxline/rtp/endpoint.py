"""asyncio I/O for RTP: a UDP socket per session, sending on the ticks of the shared media clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..media.clock import AsyncioMediaClock, ClockSubscription, MediaClock
from .session import RtpEvent, RtpSession

if TYPE_CHECKING:
    from .srtp import SrtpTransform

__all__ = ["RtpEndpoint"]

log = logging.getLogger("voxline.rtp")


class RtpEndpoint(asyncio.DatagramProtocol):
    """A UDP socket bound for one ``RtpSession``, on the timeline of a ``MediaClock``.

    ``start()`` subscribes ``tick`` to the clock on the session's slot phase (``order`` 1: after the
    sources of the same instant, so a frame a playout delivers in a tick leaves in that tick);
    ``stop()`` and ``close()`` unsubscribe. ``push_audio`` hands the session a frame to send: the
    first of a talkspurt leaves at once and moves the tick to its phase (``RtpSession.push_audio``).
    Received datagrams are stamped with ``clock.now_ms()``, so the session's reorder buffer, DTMF
    expiry and inactivity timer run on the clock's timeline. Received audio, DTMF and timeouts go to
    ``on_event``. After a stall the clock runs the missed ticks back to back (its ``max_catch_up``
    is the only stall policy): each sends its slot, with its own timestamp. ``srtp`` (an
    ``SrtpTransform``, set by ``set_srtp``): SRTP between the session and the socket, protecting each
    packet sent and unprotecting each one received (what fails is counted and dropped).
    """

    clock_order = 1
    """The subscriber order of RTP senders: sources (order 0) before them, watchers (order 2) after."""

    def __init__(
        self,
        session: RtpSession,
        on_event: Callable[[RtpEvent], Any] | None = None,
        clock: MediaClock | None = None,
    ) -> None:
        self.session = session
        self.on_event = on_event
        self.clock = clock if clock is not None else AsyncioMediaClock.for_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._subscription: ClockSubscription | None = None
        self.srtp: SrtpTransform | None = None

    @classmethod
    async def create(
        cls,
        session: RtpSession,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: Callable[[RtpEvent], Any] | None = None,
        *,
        clock: MediaClock | None = None,
    ) -> RtpEndpoint:
        loop = asyncio.get_running_loop()
        clock = clock if clock is not None else AsyncioMediaClock.for_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(session, on_event, clock), local_addr=(host, port)
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

    @property
    def started(self) -> bool:
        """Subscribed to the clock: sending on its ticks."""
        return self._subscription is not None

    def now_ms(self) -> int:
        """The current time on the clock's timeline (what the session's timers count in)."""
        return self.clock.now_ms()

    def start(self) -> None:
        """Send on every tick of the session's phase from now on. Idempotent; nothing once closed."""
        if self._subscription is None and not self.closed:
            self._subscription = self.clock.subscribe(
                self.tick, phase_ms=self.session.phase_ms, order=self.clock_order
            )

    def stop(self) -> None:
        """Stop sending (the socket stays open and keeps receiving). Idempotent."""
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None

    def push_audio(self, audio: bytes, end_ms: int | None = None) -> None:
        """Send ``audio`` (in the session's format) on this stream: now if it starts a talkspurt,
        else in its slot. ``end_ms`` is where it ends on its source's timeline (``played_ms``)."""
        session = self.session
        session.push_audio(audio, end_ms, self.clock.media_time_ms())
        self._send()
        subscription = self._subscription
        if subscription is not None and subscription.phase_ms != session.phase_ms:
            # The talkspurt set a new slot phase: tick on it from the next slot on.
            self.clock.unsubscribe(subscription)
            self._subscription = self.clock.subscribe(
                self.tick, phase_ms=session.phase_ms, order=self.clock_order
            )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop()

    def set_srtp(self, suite: str | None, local_key: bytes = b"", remote_key: bytes = b"") -> None:
        """Protect the stream with SRTP from now on (``suite`` None: plain RTP again)."""
        if suite is None:
            self.srtp = None
            return
        # Loaded with the first SRTP call: plain RTP needs nothing beyond the standard library.
        from .srtp import SrtpTransform

        self.srtp = SrtpTransform(suite, local_key, remote_key)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        srtp = self.srtp
        if srtp is not None:
            clear = srtp.unprotect(data)
            if clear is None:
                return
            data = clear
        self.session.receive(data, (addr[0], addr[1]), self.clock.now_ms())
        self._dispatch()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: keep the socket, the call decides.
        log.debug("RTP socket error: %s", exc)

    def tick(self, now_ms: int) -> None:
        """The slot at ``now_ms`` (a tick time of the clock): send its packet, run the timers."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self.stop()
            return
        self.session.tick(now_ms)
        self._send()
        self._dispatch()

    def _send(self) -> None:
        transport = self._transport
        packets = self.session.data_to_send()
        if transport is None or transport.is_closing():
            return
        srtp = self.srtp
        for data, addr in packets:
            if srtp is not None:
                protected = srtp.protect(data)
                if protected is None:
                    continue
                data = protected
            transport.sendto(data, addr)

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
        self.stop()
        if self._transport is not None:
            self._transport.close()
