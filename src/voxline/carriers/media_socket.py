"""What a carrier session and its WebSocket say to each other, whichever library serves the socket.

A ``MediaSocket`` (``ws_server.ServerConnection`` on websockets' Sans-I/O protocol, or
``aiohttp_socket.AiohttpMediaSocket`` on aiohttp's public WebSocket API) hands each text message
to its ``CarrierSession`` as it arrives and writes what the session's core has to send, as fast as
the peer reads. A session (``twilio_session``, ``voxengine_session``) is the per-carrier wiring:
core, streams, start deadline, and the rules for bad input (the close codes of the endpoint
docstring). Nothing here imports an I/O library.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from .._tasks import background
from ..telemetry import TELEMETRY
from ._base import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    Ignored,
    ProtocolError,
    Stats,
)
from .stream import CarrierStream

__all__ = ["CarrierSession", "MediaSocket", "SocketLog", "Spawn", "close_message"]

log = logging.getLogger("voxline.carriers")

Spawn = Callable[[CarrierStream], None]
"""Hands a started stream to the application (``CarrierEndpoints`` runs ``on_stream`` for it)."""


def close_message(reason: str) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8, cut on a character boundary."""
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore")


class MediaSocket(Protocol):
    """One accepted carrier WebSocket, as its session uses it."""

    remote: str | None

    def set_source(self, pop: Callable[[], str | None]) -> None:
        """Where outbound text comes from: ``pop()`` gives the next message, None when there is none."""

    def kick(self) -> None:
        """Write what the source has, now if the peer keeps up, else as soon as it does (in order)."""

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the source is written out."""

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``; returns once the closing handshake is done (or gave up)."""

    @property
    def closed(self) -> bool:
        """The socket is closing or closed: nothing more goes out."""


class SocketLog:
    """Logs each reason once per socket and counts every occurrence under ``counter``."""

    _MAX_REASONS = 64  # a peer inventing event names must not grow this without bound

    def __init__(self, kind: str, remote: str | None, stats: Stats) -> None:
        self.prefix = f"{kind} media socket from {remote or '?'}"
        self._seen: set[str] = set()
        self._stats = stats

    def protocol_error(self, event: ProtocolError) -> None:
        self.once("protocol_errors", logging.WARNING, f"closing with {event.close_code}: {event.reason}")

    def ignored(self, event: Ignored) -> None:
        self.once(
            "ignored_events",
            logging.INFO,
            f"ignored {event.event!r}: {event.reason} (logged once, counted)",
            reason=f"ignored:{event.event}",
        )

    def once(self, counter: str, level: int, message: str, reason: str | None = None) -> None:
        self._stats[counter] += 1
        key = reason or counter
        if key not in self._seen and len(self._seen) < self._MAX_REASONS:
            self._seen.add(key)
            log.log(level, "%s: %s", self.prefix, message)


class CarrierSession:
    """The per-carrier wiring of one media socket (subclasses: the Twilio stream, the VoxEngine
    media socket).

    The socket calls ``receive_text`` for each text message, ``receive_binary`` for a binary one
    and ``lost`` once it is gone. A session ends its socket itself (``end``) on Twilio's ``stop``, a
    protocol error (the error's close code), a binary frame (1003), a handler failure (1011), or no
    ``start`` within ``start_timeout_s`` (1008); from then on it takes no more messages.
    """

    kind = "carrier"

    def __init__(
        self, socket: MediaSocket, stats: Stats, spawn: Spawn, start_timeout_s: float | None
    ) -> None:
        self.socket = socket
        self.stats = stats
        self.spawn = spawn
        self.log = SocketLog(self.kind, socket.remote, stats)
        self.loop = asyncio.get_running_loop()
        self.ending: tuple[int, str] | None = None  # the close this side started
        self._start_timer: asyncio.TimerHandle | None = None
        if start_timeout_s is not None:
            self._start_timer = self.loop.call_later(start_timeout_s, self._no_start)

    # -- from the socket ----------------------------------------------------------------------------

    def receive_text(self, text: str) -> None:
        if self.ending is not None:
            return  # the socket is closing: what came after the end is not handled
        try:
            self.handle(text)
        except Exception:
            log.exception("%s: handling a message failed; closing with 1011", self.log.prefix)
            self.end(CLOSE_INTERNAL_ERROR, "internal error")

    def receive_binary(self) -> None:
        if self.ending is not None:
            return
        reason = "binary frames are not part of the protocol"
        self.log.once("binary_frames", logging.WARNING, f"closing with 1003: {reason}")
        self.end(CLOSE_UNSUPPORTED_DATA, reason)

    def lost(self, code: int | None, reason: str, *, error: bool = False, ours: bool = False) -> None:
        """The socket is gone. ``code``, ``reason``: the close sent on a socket error (``error``:
        1009 for a message too big, 1007 for text that is not UTF-8), or by this side (``ours``: a
        shutdown), else the peer's."""
        self._cancel_start_timer()
        if error:
            self.log.once("socket_errors", logging.WARNING, f"closed with {code}: {reason}")
        if self.ending is not None:
            code, reason = self.ending
        elif not error and not ours:
            reason = "closed by peer"
        TELEMETRY.websocket_closed(self.kind, code)
        self.finished(code, reason)

    # -- for subclasses -----------------------------------------------------------------------------

    def handle(self, text: str) -> None:
        raise NotImplementedError

    def finished(self, code: int | None, reason: str) -> None:
        """The socket is over: end every stream of it with ``code``."""
        raise NotImplementedError

    def started(self) -> None:
        """A stream started: the start deadline no longer applies."""
        self._cancel_start_timer()

    def protocol_error(self, event: ProtocolError) -> None:
        self.log.protocol_error(event)
        self.end(event.close_code, event.reason)

    def closing(self, code: int, reason: str) -> None:
        """A stream of this socket is closing it (``stream.close()``): the streams end with ``code``
        and ``reason``, and no more messages are handled."""
        if self.ending is None:
            self.ending = (code, reason)

    def end(self, code: int, reason: str, *, drain_s: float = 0.0) -> None:
        """Close the socket with ``code`` after at most ``drain_s`` s of writing what is queued."""
        if self.ending is not None:
            return
        self.ending = (code, reason)
        background(self._close(code, reason, drain_s), name=f"{self.kind}-close")

    async def _close(self, code: int, reason: str, drain_s: float) -> None:
        if drain_s:
            await self.socket.drain(drain_s)
        await self.socket.close(code, close_message(reason))

    def _no_start(self) -> None:
        self._start_timer = None
        if self.ending is None:
            reason = "no start message in time"
            self.log.once("start_timeouts", logging.WARNING, f"closing with 1008: {reason}")
            self.end(CLOSE_POLICY_VIOLATION, reason)

    def _cancel_start_timer(self) -> None:
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None
