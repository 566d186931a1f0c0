"""A WebSocket client connection: websockets' Sans-I/O ``ClientProtocol`` on an asyncio transport.

The Realtime client sends one ``input_audio_buffer.append`` per 20 ms frame per call. This layer
writes each message to the transport synchronously (no task, future or await per message), using
only websockets' documented Sans-I/O API (``connect``/``send_request``, ``receive_data``,
``events_received``, ``data_to_send``, ``send_text``, ``send_ping``, ``send_close``, ``fail``,
``close_expected``, ``close_code``/``close_reason``) and asyncio's public transport API: the thin
I/O layer over a sans-I/O core that DESIGN.md asks for.

What it does: TCP (and TLS for ``wss://``) with an opening timeout; the handshake with extra
headers; text and binary messages (continuation frames assembled, up to ``max_size``); pongs to the
server's pings (the protocol answers them); a keepalive ping every ``ping_interval`` that must be
answered within ``ping_timeout``, else the connection fails with 1011; the closing handshake, and a
TCP close after ``close_timeout`` when the peer does not end it. Not supported: HTTP proxies and
redirects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable, Mapping
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import LoggerLike
from websockets.uri import parse_uri

__all__ = ["HandshakeFailed", "WebSocketClient", "open_websocket"]

log = logging.getLogger("voxline.openai.websocket")


class HandshakeFailed(Exception):
    """The server did not switch protocols. ``response`` is its HTTP response, when one came."""

    def __init__(self, message: str, response: Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class WebSocketClient(asyncio.Protocol):
    """One client connection (create it with :func:`open_websocket`).

    Messages are held until ``start(on_text, on_binary)``, which hands over the held ones first:
    the user of the connection decides when it is ready for them. ``closed`` resolves to
    ``(code, reason)`` once the TCP connection is gone (1006 when no close frame was received).
    """

    def __init__(
        self,
        protocol: ClientProtocol,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float,
    ) -> None:
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._on_text: Callable[[str], None] | None = None
        self._on_binary: Callable[[bytes], None] | None = None
        self._held: list[tuple[Opcode, bytes]] | None = []  # messages before start()
        self.response: Response | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._handshake: asyncio.Future[Response] = loop.create_future()
        self.closed: asyncio.Future[tuple[int, str]] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode = Opcode.TEXT
        self._keepalive: asyncio.TimerHandle | None = None
        self._pong_deadline: asyncio.TimerHandle | None = None
        self._ping_data = b""
        self._close_timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._connected = False  # from the handshake's success to the connection's loss

    # -- what the client uses ------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self.protocol.id)

    @property
    def open(self) -> bool:
        """The handshake succeeded and no close has started: messages can be sent."""
        return self._connected and self.protocol.state is State.OPEN

    @property
    def write_paused(self) -> bool:
        """The transport's buffer is over its high-water mark (the peer reads slowly)."""
        return self._paused

    def start(self, on_text: Callable[[str], None], on_binary: Callable[[bytes], None]) -> None:
        """Deliver messages from now on: the held ones first, in order."""
        self._on_text, self._on_binary = on_text, on_binary
        held, self._held = self._held or [], None
        for opcode, data in held:
            self._deliver(opcode, data)

    def send_text(self, text: str) -> None:
        """Send one text message now (synchronously; the transport buffers)."""
        self.protocol.send_text(text.encode())
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; ``closed`` resolves when the connection is gone."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self._transport is not None and not self.closed.done() and self.response is None:
            self._transport.close()

    async def wait_closed(self) -> tuple[int, str]:
        return await asyncio.shield(self.closed)

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport, only alike).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._process()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._process()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        self._cancel_timers()
        if not self._handshake.done():
            self._handshake.set_exception(HandshakeFailed(f"connection lost during the handshake: {exc}"))
            self._handshake.exception()  # retrieved: the opener may have timed out already
        if not self.closed.done():
            code = self.protocol.close_code
            self.closed.set_result((1006 if code is None else int(code), self.protocol.close_reason or ""))

    # -- internals -----------------------------------------------------------------------------------

    def _process(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self._on_response(event)
            elif isinstance(event, Frame):
                self._on_frame(event)
        self._flush()

    def _on_response(self, response: Response) -> None:
        if self._handshake.done():
            return
        failure = self.protocol.handshake_exc
        if failure is not None:
            reason = f"HTTP {response.status_code}" if response.status_code != 101 else str(failure)
            self._handshake.set_exception(HandshakeFailed(reason, response))
            self._handshake.exception()
            return
        self.response = response
        self._connected = not self.closed.done()
        self._handshake.set_result(response)
        self._schedule_ping()

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode, frame.data)
            else:
                self._fragment_opcode = opcode
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._deliver(self._fragment_opcode, data)
        elif (
            opcode is Opcode.PONG and self._pong_deadline is not None and bytes(frame.data) == self._ping_data
        ):
            self._pong_deadline.cancel()
            self._pong_deadline = None
            self._schedule_ping()

    def _deliver(self, opcode: Opcode, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            self._held.append((opcode, bytes(data)))
            return
        try:
            if opcode is Opcode.TEXT:
                if self._on_text is not None:
                    self._on_text(bytes(data).decode())
            elif self._on_binary is not None:
                self._on_binary(bytes(data))
        except Exception:  # a consumer's bug must not stop the connection
            log.exception("WebSocket message handler raised")

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if self.protocol.close_expected() and self._close_timer is None and not transport.is_closing():
            self._close_timer = self._loop.call_later(self.close_timeout, transport.abort)

    def _schedule_ping(self) -> None:
        if self.ping_interval is not None and not self.closed.done():
            self._keepalive = self._loop.call_later(self.ping_interval, self._ping)

    def _ping(self) -> None:
        self._keepalive = None
        if self.protocol.state is not State.OPEN:
            return
        self._ping_data = os.urandom(4)
        self.protocol.send_ping(self._ping_data)
        self._flush()
        if self.ping_timeout is not None:
            self._pong_deadline = self._loop.call_later(self.ping_timeout, self._no_pong)

    def _no_pong(self) -> None:
        self._pong_deadline = None
        log.debug("no pong within %.1f s: failing the connection", self.ping_timeout)
        self.protocol.fail(1011, "keepalive ping timeout")
        self._flush()

    def _cancel_timers(self) -> None:
        for timer in (self._keepalive, self._pong_deadline, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._keepalive = self._pong_deadline = self._close_timer = None


async def open_websocket(
    url: str,
    *,
    headers: Mapping[str, str],
    user_agent: str,
    open_timeout: float,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float,
    max_size: int | None = None,
    logger: LoggerLike | None = None,
) -> WebSocketClient:
    """Connect to ``url`` (``ws://`` or ``wss://``) and complete the handshake within
    ``open_timeout``. Raises :class:`HandshakeFailed` (with the response when the server answered),
    OSError (cannot connect) or TimeoutError."""
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=max_size, logger=logger)
    request = protocol.connect()
    for name, value in headers.items():
        request.headers[name] = value
    request.headers["User-Agent"] = user_agent
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if uri.secure else None
    connection = WebSocketClient(
        protocol, ping_interval=ping_interval, ping_timeout=ping_timeout, close_timeout=close_timeout
    )
    async with asyncio.timeout(open_timeout):
        transport, _ = await loop.create_connection(
            lambda: connection,
            uri.host,
            uri.port,
            ssl=context,
            server_hostname=uri.host if context is not None else None,
        )
        try:
            protocol.send_request(request)
            connection._flush()
            await asyncio.shield(connection._handshake)
        except BaseException:
            transport.abort()
            raise
    return connection
