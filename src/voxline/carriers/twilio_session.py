"""The Twilio Media Streams wiring: one socket's ``TwilioMediaStream`` core and its stream.

``TwilioSession`` feeds the core each message with the time and acts on its events; the stream
(``TwilioCarrierStream``) is what the runtime gets. No I/O library here: the session talks to its
socket through ``MediaSocket``.
"""

from __future__ import annotations

import asyncio
import logging

from ._base import CLOSE_NORMAL, Ignored, ProtocolError, Stats
from .config import CarrierConfig
from .media_socket import CarrierSession, MediaSocket, Spawn, close_message
from .stream import CarrierStream
from .twilio import (
    Heard,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioMediaStream,
    TwilioStart,
    TwilioState,
    TwilioStop,
)

__all__ = ["TwilioCarrierStream", "TwilioSession"]


class TwilioCarrierStream(CarrierStream):
    """A Twilio Media Stream; marks acknowledge outbound playout, and ``heard_ms()`` estimates it
    between marks (see ``voxline.carriers.twilio``)."""

    kind = "twilio"

    def __init__(self, session: TwilioSession, start: TwilioStart) -> None:
        super().__init__(
            stream_id=start.stream_sid,
            media_format=start.media_format,
            call_id=start.call_sid or None,
            account_id=start.account_sid or None,
            custom_parameters=start.custom_parameters,
            remote=session.socket.remote,
        )
        self._session = session
        self._core = session.core
        self.stats = session.core.stats

    def _ended(self) -> bool:
        # After Twilio's `stop` the socket is still open for a moment; the stream is over already.
        return self._closed.is_set() or self._core.state is not TwilioState.STARTED

    def send_audio(self, data: bytes, *, source_ms: int | None = None) -> None:
        if self._ended():
            self.stats["audio_dropped_after_close"] += 1
            return
        self._core.send_audio(data, source_ms, self._session.now_ms())
        self._session.wrote()

    def mark(self, name: str | None = None) -> str | None:
        """Send a mark now (its echo acknowledges all audio before it); None after close."""
        if self._ended():
            return None
        name = self._core.mark(name)
        self._session.wrote()
        return name

    def clear(self) -> None:
        if self._ended():
            return
        self._core.clear(self._session.now_ms())
        self._session.wrote()

    @property
    def sent_ms(self) -> int:
        return self._core.sent_ms

    @property
    def acknowledged_ms(self) -> int:
        return self._core.acknowledged_ms

    def heard_ms(self) -> Heard:
        return self._core.heard(self._session.now_ms())

    @property
    def queued_messages(self) -> int:
        """Outbound messages not yet handed to the socket (a backlog means a slow peer)."""
        return self._core.queued_messages

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed.is_set():
            return
        self._session.closing(code, reason)
        socket = self._session.socket
        await socket.drain(timeout=1.0)
        await socket.close(code, close_message(reason))
        self.finish(code, reason)

    def finish(self, code: int | None, reason: str) -> None:
        self._session.cancel_tick()
        super().finish(code, reason)


class TwilioSession(CarrierSession):
    """One Twilio Media Streams socket: its core, its one stream, the core's deadline timer."""

    kind = "twilio"

    def __init__(self, socket: MediaSocket, config: CarrierConfig, stats: Stats, spawn: Spawn) -> None:
        super().__init__(socket, stats, spawn, config.start_timeout_s)
        self.config = config
        self.core = TwilioMediaStream(
            chunk_ms=config.twilio_batch_ms, mark_interval_ms=config.mark_interval_ms
        )
        self.stream: TwilioCarrierStream | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at: float | None = None
        socket.set_source(self.core.next_outgoing)

    def now_ms(self) -> float:
        return self.loop.time() * 1000.0

    def handle(self, text: str) -> None:
        # One message, one event: ``receive`` is ``receive_text`` + ``events_received`` without the list.
        event = self.core.receive(text, self.loop.time() * 1000.0)
        if isinstance(event, TwilioMedia):
            stream = self.stream
            if stream is not None and event.track in ("inbound", "inbound_track"):
                stream.deliver_audio(event.payload, event.timestamp_ms)
            else:
                self.log.once("media_other_track", logging.INFO, f"ignoring media of track {event.track!r}")
        elif isinstance(event, TwilioMark):
            if self.stream is not None and event.acknowledged_ms is not None:
                self.stream.acknowledge(event.acknowledged_ms, event.source_ms)
        elif isinstance(event, TwilioStart):
            self.started()
            stream = self.stream = TwilioCarrierStream(self, event)
            stream.playout_batch_ms = self.config.twilio_batch_ms
            self.stats["streams"] += 1
            self.spawn(stream)
        elif isinstance(event, TwilioDtmf):
            if self.stream is not None:
                self.stream.deliver_dtmf(event.digit)
        elif isinstance(event, TwilioStop):
            # What was queued before the stop still goes out.
            self.end(CLOSE_NORMAL, "stop", drain_s=0.5)
        elif isinstance(event, ProtocolError):
            self.protocol_error(event)
        elif isinstance(event, Ignored):
            self.log.ignored(event)

    def finished(self, code: int | None, reason: str) -> None:
        self.cancel_tick()
        if self.stream is not None:
            self.stream.finish(code, reason)

    # -- outbound: the writer and the core's deadline ----------------------------------------------

    def wrote(self) -> None:
        """The core has new messages (and maybe a new deadline)."""
        self.socket.kick()
        deadline = self.core.next_deadline()
        if deadline is not None and (self._tick_at is None or deadline < self._tick_at):
            if self._tick is not None:
                self._tick.cancel()
            self._tick_at = deadline
            self._tick = self.loop.call_at(deadline / 1000.0, self._on_tick)

    def _on_tick(self) -> None:
        due = self._tick_at or 0.0
        self._tick = self._tick_at = None
        if self.ending is not None or (self.stream is not None and self.stream.is_closed):
            return
        # The loop may fire a hair before the deadline in ms: the deadline itself has come.
        self.core.tick(max(self.loop.time() * 1000.0, due))
        self.wrote()

    def cancel_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        self._tick = self._tick_at = None
