"""Header and idle timeouts for the aiohttp listener of the carrier endpoints (public aiohttp API only).

aiohttp keeps a connection open until its keep-alive timeout (an hour in aiohttp 3.14), even one
whose request headers never end. ``start_http_site(app, host, port)`` starts the app the way
``AppRunner`` + ``TCPSite`` do, with a ``GuardedSite``: every connection's protocol (aiohttp's own,
from the ``web.Server`` protocol factory) is wrapped in one that times it, and a middleware tells
it when one of its requests is being handled.

- ``header_timeout_s`` (10 s): a request's headers must be complete this long after its first
  byte arrived (on a new connection: after it opened). Otherwise the connection gets a 408 (or,
  if it sent nothing, just the close) and is closed; counted in ``header_timeouts``.
- ``idle_timeout_s`` (15 s): a keep-alive connection with no new request for this long after its
  last response is closed; counted in ``idle_timeouts``.
- While a request is in its handler, neither applies: a WebSocket, once upgraded, lives inside its
  handler until it closes, and is never timed here.
- Requests aiohttp refuses itself (malformed, lines too long, broken chunked framing) still get
  aiohttp's 400; the traceback aiohttp would log for each at ERROR becomes a count in
  ``bad_requests`` and one INFO line per kind of error.

- WebSocket upgrades on the same port: when the app has ``app[WEBSOCKET_UPGRADES]`` (set by
  ``CarrierEndpoints.add_to``), the first request head of each connection is read here first. An
  upgrade to a path it names is handed, with the bytes read, to the protocol it gives (asyncio's
  ``transport.set_protocol``): the carrier media sockets run on websockets' Sans-I/O server
  (``ws_server``), not through aiohttp. Every other connection goes to aiohttp as before; counted
  in ``websocket_upgrades``.

Each reason is logged once at INFO (with the counter's name); ``HttpGuard.stats`` has the counts.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.http import HttpProcessingError

from ._base import Stats

__all__ = [
    "WEBSOCKET_UPGRADES",
    "GuardedSite",
    "HttpGuard",
    "HttpListener",
    "Upgrades",
    "guard_middleware",
    "start_http_site",
]

log = logging.getLogger("voxline.carriers.http")

_ABORT_AFTER_S = 1.0  # a peer that does not read even the 408 is cut off after this
_MAX_HEAD = 16 * 1024  # a first request head longer than this is aiohttp's to refuse

Upgrades = Callable[[str], Callable[[], asyncio.Protocol] | None]
"""For a request path, the protocol factory that takes a WebSocket upgrade to it, or None."""

WEBSOCKET_UPGRADES: web.AppKey[Upgrades] = web.AppKey("voxline_websocket_upgrades", Upgrades)  # type: ignore[arg-type]
"""Where an app names the WebSocket upgrades its carrier listener hands on (``CarrierEndpoints.add_to``)."""


class HttpGuard:
    """The timeouts and counters shared by the connections of one listener."""

    def __init__(
        self,
        *,
        header_timeout_s: float | None = 10.0,
        idle_timeout_s: float | None = 15.0,
        upgrades: Upgrades | None = None,
    ) -> None:
        for name, value in (("header_timeout_s", header_timeout_s), ("idle_timeout_s", idle_timeout_s)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"{name} must be a number > 0 or None, got {value!r}")
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.upgrades = upgrades
        self.stats = Stats()
        self._connections: set[_GuardedConnection] = set()
        self._logged: set[str] = set()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def protocol(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        """Wrap one connection's protocol (what ``web.Server()`` returns)."""
        return _GuardedConnection(inner, self)

    def server_logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """aiohttp's server logger, for ``AppRunner(logger=...)``: bad requests are counted, not
        logged as tracebacks."""
        return _ServerLog(self)

    def _once(self, counter: str, message: str, *args: object) -> None:
        self.stats[counter] += 1
        if counter not in self._logged:
            self._logged.add(counter)
            log.info(message + " (logged once, counted in %s)", *args, counter)

    def _bad_request(self, exc: HttpProcessingError) -> None:
        kind = f"bad_request:{type(exc).__name__}"
        self.stats["bad_requests"] += 1
        if kind not in self._logged and len(self._logged) < 64:
            self._logged.add(kind)
            lines = str(exc.message).strip().splitlines()
            log.info(
                "HTTP %s for a malformed request: %s: %s (logged once per kind, counted in bad_requests)",
                exc.code,
                type(exc).__name__,
                lines[0][:200] if lines else "",
            )


class _GuardedConnection(asyncio.Protocol):
    """One HTTP connection: aiohttp's protocol inside, timed from outside.

    On a new connection the header timer runs from the start; after a response, the idle timer;
    the first byte of the next request turns it into the header timer. The middleware stops the
    timer while a request is handled.
    """

    def __init__(self, inner: asyncio.Protocol, guard: HttpGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: str | None = None  # "header" or "idle": what the timer is for
        self._active = 0  # requests in their handler
        self._received = False  # bytes of a request not yet handed to its handler
        self._unsent = 0  # the write buffer at the last idle check
        self._head: bytearray | None = None  # the first request head, while it decides who serves it

    # -- asyncio.Protocol: every call goes on to aiohttp's protocol ----------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # create_server: a stream transport
        self._guard._connections.add(self)
        self._wait("header", self._guard.header_timeout_s)
        if self._guard.upgrades is not None:
            self._head = bytearray()  # aiohttp's protocol meets the connection once it is its
            return
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._received = True
            head += data
            if b"\r\n\r\n" in head or len(head) > _MAX_HEAD:
                self._decide()
            return
        if not self._active:
            self._received = True
            if self._waiting == "idle":
                self._wait("header", self._guard.header_timeout_s)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._head is not None and not self._decide():
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._guard._connections.discard(self)
        self._transport = None
        if self._head is None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._head is None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._head is None:
            self._inner.resume_writing()

    # -- the first request: a WebSocket upgrade handed on, or aiohttp's ------------------------------

    def _decide(self) -> bool:
        """Give the connection to whoever serves its first request; False if it left aiohttp."""
        head, self._head = bytes(self._head or b""), None
        transport = self._transport
        if transport is None:
            return False
        factory = self._upgrade_for(head)
        if factory is not None:
            self._cancel()
            self._guard._connections.discard(self)
            self._guard.stats["websocket_upgrades"] += 1
            self._transport = None
            protocol = factory()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(head)
            return False
        self._inner.connection_made(transport)
        if head:
            self._inner.data_received(head)
        return True

    def _upgrade_for(self, head: bytes) -> Callable[[], asyncio.Protocol] | None:
        upgrades = self._guard.upgrades
        end = head.find(b"\r\n\r\n")
        if upgrades is None or end < 0:
            return None
        request_line, *lines = head[:end].split(b"\r\n")
        method, _, rest = request_line.partition(b" ")
        target = rest.partition(b" ")[0]
        if method != b"GET" or not target.startswith(b"/"):
            return None
        for line in lines:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"upgrade" and value.strip().lower() == b"websocket":
                path = target.partition(b"?")[0].decode("ascii", "surrogateescape")
                return upgrades(path)
        return None

    # -- from the middleware ----------------------------------------------------------------------

    def request_started(self) -> None:
        self._active += 1
        self._received = False
        self._cancel()

    def request_finished(self) -> None:
        self._active -= 1
        if not self._active and self._transport is not None:
            self._unsent = 0
            self._wait("idle", self._guard.idle_timeout_s)

    # -- timers -----------------------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = None

    def _wait(self, what: str, timeout: float | None) -> None:
        self._cancel()
        self._waiting = what
        if timeout is not None:
            self._timer = self._loop.call_later(timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or self._active or transport.is_closing():
            return
        guard = self._guard
        if self._waiting == "idle":
            unsent = transport.get_write_buffer_size()
            if unsent and unsent != self._unsent:
                # The last response is still going out, and moving: that is not idle.
                self._unsent = unsent
                self._timer = self._loop.call_later(guard.idle_timeout_s or 1.0, self._expired)
                return
            guard._once(
                "idle_timeouts", "closing keep-alive HTTP connections idle for %g s", guard.idle_timeout_s
            )
            transport.close()
            return
        guard._once(
            "header_timeouts",
            "closing HTTP connections whose request headers are not complete within %g s",
            guard.header_timeout_s,
        )
        if self._received:
            body = b"request headers not complete in time\n"
            transport.write(
                b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
        transport.close()
        self._loop.call_later(_ABORT_AFTER_S, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if self._transport is not None:  # connection_lost has not come: the peer reads nothing
            self._transport.abort()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the request's connection that a request is in its handler (no timeouts meanwhile).

    Install it first in ``app.middlewares`` (``start_http_site`` does); it finds the connection
    through ``request.transport.get_protocol()`` and does nothing on connections not guarded.
    """
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, _GuardedConnection):
        return await handler(request)
    connection.request_started()
    try:
        return await handler(request)
    finally:
        connection.request_finished()


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """``aiohttp.server`` as aiohttp's request handler uses it, except for the errors it logs for
    requests it could not parse: those are the peer's, counted by the guard."""

    def __init__(self, guard: HttpGuard) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._guard = guard

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = _exception(kwargs.get("exc_info"))
        if isinstance(exc, HttpProcessingError):
            self._guard._bad_request(exc)
            return
        super().log(level, msg, *args, **kwargs)


def _exception(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    if exc_info is True:
        return sys.exc_info()[1]
    return None


class GuardedSite(web.BaseSite):
    """A TCP site whose connections an ``HttpGuard`` times. The runner's app must have
    ``guard_middleware`` (``start_http_site`` sets all of this up)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str | None,
        port: int,
        guard: HttpGuard,
        *,
        backlog: int = 128,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        if guard_middleware not in runner.app.middlewares:
            raise RuntimeError("GuardedSite: the app needs guard_middleware, or every request is timed out")
        self.guard = guard
        self._app_runner = runner
        self._host = host
        self._requested_port = port
        self._listen_backlog = backlog
        self._reuse = (reuse_address, reuse_port)
        self._listener: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose when asked for 0)."""
        if self._listener is not None and self._listener.sockets:
            return int(self._listener.sockets[0].getsockname()[1])
        return self._requested_port

    @property
    def name(self) -> str:
        host = self._host or "0.0.0.0"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        await super().start()  # registers the site with its runner, which stops it at cleanup
        server = self._app_runner.server
        if server is None:
            raise RuntimeError("GuardedSite: call runner.setup() first")
        guard = self.guard

        def connection() -> asyncio.Protocol:
            return guard.protocol(server())

        self._listener = await asyncio.get_running_loop().create_server(
            connection,
            self._host,
            self._requested_port,
            backlog=self._listen_backlog,
            reuse_address=self._reuse[0],
            reuse_port=self._reuse[1],
        )

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        await super().stop()


@dataclass(frozen=True, slots=True)
class HttpListener:
    """What ``start_http_site`` started: ``await runner.cleanup()`` stops it all."""

    runner: web.AppRunner
    site: GuardedSite
    guard: HttpGuard

    @property
    def port(self) -> int:
        return self.site.port


async def start_http_site(
    app: web.Application, host: str | None, port: int, guard: HttpGuard | None = None, **runner_kwargs: Any
) -> HttpListener:
    """Serve ``app`` on ``host:port`` with header and idle timeouts (``guard``, default
    ``HttpGuard()``). ``runner_kwargs`` go to ``web.AppRunner`` (``access_log=None``, ...)."""
    guard = guard or HttpGuard()
    if guard.upgrades is None:
        guard.upgrades = app.get(WEBSOCKET_UPGRADES)
    app.middlewares.insert(0, guard_middleware)  # outermost: it must see every request
    runner_kwargs.setdefault("logger", guard.server_logger())
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    site = GuardedSite(runner, host, port, guard)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return HttpListener(runner, site, guard)
