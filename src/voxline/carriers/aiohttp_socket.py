"""Carrier WebSockets on aiohttp's public ``WebSocketResponse`` API (``receive``, ``send_str``, ``close``).

The routes of ``CarrierEndpoints`` serve a carrier socket this way when it did not come through
the carrier listener's fast path (``ws_server``): an app served by an ``AppRunner`` of its own, or
an upgrade that is not the first request of its connection. One task reads, one writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import WebSocketError, WSMsgType, web

from .media_socket import CarrierSession

__all__ = ["AiohttpMediaSocket"]

log = logging.getLogger("voxline.carriers")


class AiohttpMediaSocket:
    """A prepared ``web.WebSocketResponse`` as a ``MediaSocket``; ``run(session)`` reads it until
    it is over."""

    def __init__(self, ws: web.WebSocketResponse, remote: str | None, name: str) -> None:
        self.ws = ws
        self.remote = remote
        self._pop: Callable[[], str | None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.get_running_loop().create_task(self._write(), name=name)
        self._sent: tuple[int, str] | None = None  # the close this side sent

    def set_source(self, pop: Callable[[], str | None]) -> None:
        self._pop = pop

    def kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            pass

    async def close(self, code: int, reason: str) -> None:
        if self._sent is None and not self.ws.closed:
            self._sent = (code, reason)
        await self.ws.close(code=code, message=reason.encode("utf-8"))

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                pop = self._pop
                while pop is not None and (text := pop()) is not None:
                    await self.ws.send_str(text)
                if not self._wake.is_set():
                    self._idle.set()
        except ConnectionError:
            pass  # the socket went away; the reader side reports the close
        except Exception:
            log.exception("carrier media writer failed; the socket's output stops")
        finally:
            self._idle.set()

    async def run(self, session: CarrierSession) -> None:
        """Hand every message to ``session`` until the socket is over, then tell it (``lost``)."""
        ws = self.ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT:
                    session.receive_text(str(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    session.receive_binary()
                elif msg.type is WSMsgType.ERROR:
                    exc = ws.exception()
                    # aiohttp closes with the protocol error's code (1009 for a message too big) but
                    # then reports 1006; the stream ends with the code the peer was sent.
                    code = exc.code if isinstance(exc, WebSocketError) else ws.close_code
                    session.lost(code, str(exc), error=True)
                    return
                else:  # CLOSE, CLOSING, CLOSED
                    break
            if self._sent is not None:  # aiohttp reports the peer's answer; the stream ends with ours
                session.lost(self._sent[0], self._sent[1], ours=True)
            else:
                session.lost(ws.close_code, "closed by peer")
        finally:
            self._task.cancel()
            if not ws.closed:
                await ws.close()
