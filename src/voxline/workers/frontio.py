"""The asyncio layer of the SIP front (:mod:`voxline.workers.sipfront`): its sockets and its timer.

The public address listens on UDP and/or TCP (as ``--sip`` and the SIP transports say); the inner
address is one loopback UDP socket the workers talk to. TCP connections are kept by peer address so
a response goes back on the connection its request came on, and a worker's request to a TCP caller
reuses the caller's connection (or opens one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from .._tasks import background
from ..sip.message import MAX_MESSAGE_BYTES, SipParseError, StreamFramer
from .sipfront import Address, FrontConfig, Outgoing, SipFront, Transport

__all__ = ["FrontServer"]

log = logging.getLogger("voxline.workers.front")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: FrontServer, side: str) -> None:
        self.server = server
        self.side = side

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        source = (str(addr[0]), int(str(addr[1])))
        self.server.received(data, source, "udp", self.side)

    def error_received(self, exc: Exception) -> None:
        # An ICMP unreachable for a datagram to a gone peer: nothing to do (the sender retransmits).
        log.debug("SIP front UDP error: %s", exc)


class FrontServer:
    """Sockets for one ``SipFront``; ``await start()``, ``close()``."""

    def __init__(
        self,
        public_host: str,
        public_port: int,
        transports: tuple[str, ...],
        *,
        workers: int,
        secret: bytes,
        allow_sources: Sequence[str] | None,
    ) -> None:
        self.public_host = public_host
        self.public_port = public_port
        self.transports = transports
        self._workers = workers
        self._secret = secret
        self._allow_sources = allow_sources
        self.core: SipFront | None = None
        self._public_udp: asyncio.DatagramTransport | None = None
        self._inner_udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp: dict[Address, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.port = 0

    async def start(self) -> SipFront:
        loop = asyncio.get_running_loop()
        inner, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self, "inside"), local_addr=("127.0.0.1", 0)
        )
        self._inner_udp = inner
        port = self.public_port
        if "udp" in self.transports:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self, "outside"), local_addr=(self.public_host, port)
            )
            self._public_udp = udp
            port = udp.get_extra_info("sockname")[1]
        if "tcp" in self.transports:
            self._tcp_server = await asyncio.start_server(self._on_tcp, self.public_host, port)
            port = self._tcp_server.sockets[0].getsockname()[1]
        self.port = port
        inner_addr = inner.get_extra_info("sockname")
        known: tuple[Transport, ...] = ("udp", "tcp")
        transports = tuple(t for t in known if t in self.transports)
        config = FrontConfig(
            public=(self.public_host, port),
            inner=(str(inner_addr[0]), int(inner_addr[1])),
            workers=self._workers,
            secret=self._secret,
            allow_sources=self._allow_sources,
            public_transports=transports,
        )
        self.core = SipFront(config)
        self._schedule()
        return self.core

    def set_worker(self, index: int, addr: Address | None) -> None:
        assert self.core is not None
        self.core.set_worker(index, addr)
        self._schedule()

    def received(self, data: bytes, source: Address, transport: str, side: str) -> None:
        core = self.core
        if core is None:
            return
        now = time.monotonic()
        if side == "inside":
            out = core.receive_inside(data, source, now)
        else:
            out = core.receive_outside(data, source, "tcp" if transport == "tcp" else "udp", now)
        self._send(out)

    def _send(self, out: list[Outgoing]) -> None:
        for item in out:
            if item.side == "inside":
                if self._inner_udp is not None:
                    self._inner_udp.sendto(item.data, item.addr)
            elif item.transport == "udp":
                if self._public_udp is not None:
                    self._public_udp.sendto(item.data, item.addr)
            else:
                self._send_tcp(item)

    def _send_tcp(self, item: Outgoing) -> None:
        writer = self._tcp.get(item.addr)
        if writer is not None and not writer.is_closing():
            writer.write(item.data)
            return
        self._spawn(self._connect_and_send(item))

    async def _connect_and_send(self, item: Outgoing) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*item.addr), 5)
        except (OSError, TimeoutError) as exc:
            log.info("SIP front: cannot connect to %s:%d over TCP: %s", *item.addr, exc)
            return
        writer.write(item.data)
        await self._read_tcp(reader, writer, item.addr)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        await self._read_tcp(reader, writer, (str(peer[0]), int(peer[1])))

    async def _read_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Address
    ) -> None:
        self._tcp[peer] = writer
        framer = StreamFramer(MAX_MESSAGE_BYTES)
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), 300)  # idle connections are closed
                if not chunk:
                    break
                try:
                    messages = framer.feed(chunk)
                except SipParseError as exc:
                    log.info("SIP front: TCP framing error from %s:%d: %s", *peer, exc.reason)
                    break
                for message in messages:
                    self.received(message, peer, "tcp", "outside")
        except (OSError, TimeoutError):
            pass
        finally:
            if self._tcp.get(peer) is writer:
                del self._tcp[peer]
            writer.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = background(coro, name="voxline-workers")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule(self) -> None:
        core = self.core
        if core is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._send(core.tick(time.monotonic()))
        deadline = core.deadline()
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._schedule)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for transport in (self._public_udp, self._inner_udp):
            if transport is not None:
                transport.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
        for writer in list(self._tcp.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            if self._tcp_server is not None:
                await self._tcp_server.wait_closed()
