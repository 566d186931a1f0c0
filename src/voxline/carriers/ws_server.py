"""Carrier WebSockets on websockets' Sans-I/O ``ServerProtocol``, driven from an asyncio Protocol.

The carrier listener (``http_guard.start_http_site``) reads the first request head of each
connection; an upgrade to a carrier media path is handed, on the same port, to a
``ServerConnection`` (asyncio's public ``transport.set_protocol``), everything else goes on to
aiohttp. Why not aiohttp's own WebSocket: its public API costs a future and a task wake-up per
message each way (``receive()``, ``send_str``), measured at 1.4x the bare pass-through bridge's
CPU on the Twilio G.711 path (docs/carriers.md); here a message is handled inside
``data_received`` and written synchronously, as ``voxline.openai.websocket`` does for the client
side.

Only websockets' documented Sans-I/O API is used (``receive_data``, ``receive_eof``,
``events_received``, ``data_to_send``, ``accept``, ``reject``, ``send_response``, ``send_text``,
``send_ping``, ``send_close``, ``fail``, ``close_expected``, ``state``, ``close_sent`` /
``close_rcvd``, ``handshake_exc``) and asyncio's public transport API, so it runs on uvloop too.
What the handshake answers (401/403/503 before the upgrade) comes from ``access``; text messages
go to the socket's ``CarrierSession``. Messages over ``max_size`` close with 1009, text that is
not UTF-8 with 1007 (checked here), a broken frame with 1002 (websockets' protocol does that).

Once open, the bytes are cut into frames by ``wsframes.ClientFrames``: the ~50 media messages a
second of each call (final masked text frames) are decoded there, a third of the cost of
websockets' parser (``bench/ws_frame_cost.py``); every other frame reaches websockets' protocol
whole, at a frame boundary, so its RFC 6455 checks and replies (pings, closes, fragments,
1002/1009) stay its own. What a kick writes goes out in one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from .access import Refusal
from .media_socket import CarrierSession
from .wsframes import ClientFrames

__all__ = ["Handshake", "ServerConnection"]

log = logging.getLogger("voxline.carriers")

Handshake = Callable[[Request, "ServerConnection"], "Refusal | Callable[[ServerConnection], CarrierSession]"]
"""Decides on a handshake request: a ``Refusal``, or what makes the session once the upgrade is sent."""

_CLOSE_TIMEOUT_S = 2.0  # a peer that does not answer our close frame is cut off after this
_MAX_HEAD = 65536  # a handshake head longer than this goes to websockets, which refuses it


class ServerConnection(asyncio.Protocol):
    """One carrier WebSocket connection, server side: a ``MediaSocket`` for its session.

    ``handshake`` decides on the upgrade request; ``on_closed(self)`` is called once the
    connection is gone. ``heartbeat_s``: a ping every this many seconds, the connection fails with
    1011 if its pong is not back within half of it (None: no pings).
    """

    def __init__(
        self,
        handshake: Handshake,
        *,
        max_size: int,
        heartbeat_s: float | None = None,
        on_closed: Callable[[ServerConnection], None] | None = None,
    ) -> None:
        self.protocol = ServerProtocol(max_size=max_size)
        self._max_size = max_size
        self._head: bytearray | None = bytearray()  # the handshake head, until it is complete
        self._frames: ClientFrames | None = None  # once open: the stream cut into frames
        self.remote: str | None = None
        self.session: CarrierSession | None = None
        self._handshake = handshake
        self._heartbeat_s = heartbeat_s
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._pop: Callable[[], str | None] | None = None
        self._paused = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._gone: asyncio.Future[None] = self._loop.create_future()
        self._fragments: list[bytes] = []
        self._fragment_opcode = Opcode.TEXT
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._ping_data = b""
        self._closing = False  # close() was called: the close is this side's, not a failure

    # -- MediaSocket ---------------------------------------------------------------------------------

    def set_source(self, pop: Callable[[], str | None]) -> None:
        self._pop = pop

    def kick(self) -> None:
        pop = self._pop
        if pop is None or self._paused or self.protocol.state is not State.OPEN:
            return
        protocol = self.protocol
        while (text := pop()) is not None:
            protocol.send_text(text.encode())
            if self._paused:
                break
        else:
            self._drained.set()
        self._flush()

    async def drain(self, timeout: float) -> None:
        if self._pop is not None and not self._paused:
            self.kick()
        if self._drained.is_set() or self.closed:
            return
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            pass

    async def close(self, code: int, reason: str) -> None:
        self._closing = True
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.protocol.state is State.CONNECTING and self._transport is not None:
            self._transport.close()
        await asyncio.shield(self._gone)

    @property
    def closed(self) -> bool:
        return self.protocol.state is not State.OPEN

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport, only alike).
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, tuple) and peer else None

    def data_received(self, data: bytes) -> None:
        frames = self._frames
        if frames is None:
            self._received_other(data)
            return
        # The media path: text frames go to the session without websockets' parser (wsframes).
        frames.feed(data)
        protocol = self.protocol
        while (item := frames.next(not self._fragments and protocol.state is State.OPEN)) is not None:
            fast, payload = item
            if not fast:
                protocol.receive_data(payload)
                self._process()  # flushes what websockets answers
            else:
                try:
                    text = str(payload, "utf-8")
                except UnicodeDecodeError:
                    protocol.fail(1007, "invalid UTF-8 in a text message")
                    self._flush()
                else:
                    # What the session writes goes out with its kick(): nothing is left to flush.
                    if self.session is not None:
                        self.session.receive_text(text)
            if not frames.pending:
                break  # the usual case: the read held one whole frame

    def _received_other(self, data: bytes) -> None:
        """Bytes before the socket is open: the handshake head goes to websockets alone, so that
        frames a client sent too early start the frame stream at a frame boundary."""
        head = self._head
        if head is None:  # refused or failed handshake: websockets decides what is left
            self.protocol.receive_data(data)
            self._process()
            return
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) <= _MAX_HEAD:
            return
        cut = end + 4 if end >= 0 else len(head)
        self._head = None
        self.protocol.receive_data(bytes(head[:cut]))
        self._process()  # an accepted upgrade opens self._frames
        if len(head) > cut:
            self.data_received(bytes(head[cut:]))

    def eof_received(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            rest = frames.rest()
            if rest:
                self.protocol.receive_data(rest)  # an incomplete frame: websockets reports it
        elif self._head:
            self.protocol.receive_data(bytes(self._head))
        self._head = None
        self.protocol.receive_eof()
        self._process()

    def pause_writing(self) -> None:
        self._paused = True
        self._drained.clear()

    def resume_writing(self) -> None:
        self._paused = False
        self.kick()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for timer in (self._close_timer, self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._drained.set()
        if not self._gone.done():
            self._gone.set_result(None)
        self._session_lost()
        if self._on_closed is not None:
            self._on_closed(self)

    def _session_lost(self) -> None:
        """Tell the session its socket is over: once the closing handshake is done (the streams end
        before the TCP connection does), or when the connection is lost without one."""
        session, self.session = self.session, None
        if session is None:
            return
        sent, received = self.protocol.close_sent, self.protocol.close_rcvd
        if sent is not None and (received is None or not self.protocol.close_rcvd_then_sent):
            # This side closed first: close() (a session's end, a stream's close, shutdown), or
            # websockets failing the connection (1009, 1002, ...), which is the one error.
            session.lost(int(sent.code), sent.reason, error=not self._closing, ours=self._closing)
        elif received is not None:
            session.lost(int(received.code), received.reason)
        else:
            session.lost(1006, "connection lost")

    # -- internals -----------------------------------------------------------------------------------

    def _process(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        if self.protocol.close_sent is not None and self.protocol.close_rcvd is not None:
            self._session_lost()
        self._flush()

    def _on_request(self, request: Request) -> None:
        protocol = self.protocol
        decision = self._handshake(request, self)
        if isinstance(decision, Refusal):
            response = protocol.reject(decision.status, decision.text)
            for name, value in decision.headers.items():
                response.headers[name] = value
            protocol.send_response(response)
            return
        response = protocol.accept(request)
        protocol.send_response(response)
        if response.status_code != 101:
            return  # not a valid upgrade: websockets answered it (400, 426), the connection ends
        self._flush()  # the 101 goes out before anything the session writes
        self._frames = ClientFrames(self._max_size)
        self.session = decision(self)
        self._schedule_ping()

    def _on_frame(self, frame: Frame) -> None:
        session = self.session
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragment_opcode = opcode
                self._fragments = [bytes(frame.data)]
                return
            data = frame.data
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return
            data, self._fragments, opcode = b"".join(self._fragments), [], self._fragment_opcode
        else:
            if (
                opcode is Opcode.PONG
                and self._pong_timer is not None
                and bytes(frame.data) == self._ping_data
            ):
                self._pong_timer.cancel()
                self._pong_timer = None
                self._schedule_ping()
            return  # pings are answered and closes handled by the protocol itself
        if session is None:
            return
        if opcode is Opcode.TEXT:
            try:
                text = str(data, "utf-8")
            except UnicodeDecodeError:
                # Text frames must be UTF-8 (RFC 6455 §8.1); the Sans-I/O protocol leaves the check here.
                self.protocol.fail(1007, "invalid UTF-8 in a text message")
                return
            session.receive_text(text)
        else:
            session.receive_binary()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        chunks = self.protocol.data_to_send()
        if chunks:
            # One write for what a kick made (a playout batch: several media messages and a mark),
            # so one send() rather than one per frame. An empty chunk is websockets' end of stream.
            eof = b"" in chunks
            data = b"".join(chunks[: chunks.index(b"")] if eof else chunks)
            if data:
                transport.write(data)
            if eof:
                if transport.can_write_eof():
                    transport.write_eof()
                else:
                    transport.close()
        protocol = self.protocol
        if (
            protocol.state is not State.OPEN  # open: no close expected (the per-message case)
            and protocol.close_expected()
            and self._close_timer is None
            and not transport.is_closing()
        ):
            self._close_timer = self._loop.call_later(_CLOSE_TIMEOUT_S, transport.abort)

    def _schedule_ping(self) -> None:
        if self._heartbeat_s is not None and self.protocol.state is State.OPEN:
            self._ping_timer = self._loop.call_later(self._heartbeat_s, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.protocol.state is not State.OPEN or self._heartbeat_s is None:
            return
        self._ping_data = os.urandom(4)
        self.protocol.send_ping(self._ping_data)
        self._flush()
        self._pong_timer = self._loop.call_later(self._heartbeat_s / 2, self._no_pong)

    def _no_pong(self) -> None:
        self._pong_timer = None
        log.debug("carrier socket from %s: no pong in time, failing it with 1011", self.remote)
        self.protocol.fail(1011, "keepalive ping timeout")
        self._flush()
