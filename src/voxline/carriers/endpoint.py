"""The carrier endpoints of one server: the Twilio stream, the VoxEngine-format media socket and the
Twilio voice webhook, on one listener. This module ties the parts together:

- ``config``: ``CarrierConfig`` and ``Admit``;
- ``access``: who may open a media socket (token, Twilio signature) and the limits (503);
- socket I/O: ``ws_server`` (websockets' Sans-I/O server, the fast path the carrier listener hands
  each carrier upgrade to) and ``aiohttp_socket`` (aiohttp's public WebSocket API, for the routes
  served any other way);
- per-carrier wiring: ``twilio_session``, ``voxengine_session`` (cores, streams, bad input) and
  ``webhook`` (the TwiML answer).

Access control happens before the WebSocket upgrade: a media endpoint accepts a connection only
with the configured token (query parameter ``token`` or ``Authorization: Bearer``) or, on the
Twilio endpoint, a valid ``X-Twilio-Signature``. No credential: 401; a wrong one: 403. With no
token and no Twilio auth token configured the endpoints are open (a warning is logged once).

Bad input never leaves a socket: non-JSON or a malformed message closes that socket with 1007,
a message out of order (media before start) with 1002, an unsupported format or a binary frame
with 1003, a message over ``max_message_bytes`` with 1009; unknown events are ignored. Each is
counted and logged once per socket with its reason. Other sockets are untouched. The voice
webhook reads only a form body (415 otherwise); a malformed or cut-off one gets 400. Credentials,
signatures and the Host are compared as the bytes received, so bytes that are not UTF-8 get a 403.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from websockets.http11 import Request as WsRequest

from .._tasks import background
from ._base import CLOSE_INTERNAL_ERROR, CLOSE_TRY_AGAIN_LATER, Stats
from .access import AccessControl, Refusal, UpgradeRequest, header_lines
from .aiohttp_socket import AiohttpMediaSocket
from .config import Admit, CarrierConfig
from .http_guard import WEBSOCKET_UPGRADES
from .media_socket import CarrierSession, MediaSocket, Spawn, close_message
from .stream import CarrierStream, OnStream
from .twilio_session import TwilioCarrierStream, TwilioSession
from .voxengine_session import VoxEngineCarrierStream, VoxEngineSession
from .webhook import TwilioVoiceWebhook
from .ws_server import ServerConnection

__all__ = ["Admit", "CarrierConfig", "CarrierEndpoints", "TwilioCarrierStream", "VoxEngineCarrierStream"]

log = logging.getLogger("voxline.carriers")

SessionType = Callable[[MediaSocket, CarrierConfig, Stats, Spawn], CarrierSession]


class CarrierEndpoints:
    """The carrier endpoints of one server; every accepted stream goes to ``on_stream(stream)``.

    ``on_stream`` runs as its own task. The stream lives until the peer ends it or the runtime
    calls ``stream.close()``; ``on_stream`` returning does not end it. If ``on_stream`` raises, the
    error is logged and that stream is closed with 1011.

    ``admit`` (optional): whether the application takes another call now (see ``Admit``). It is
    asked before the upgrade, so a refused carrier gets an HTTP 503 it can fail over on, and again
    right before ``on_stream``: a stream admitted at its upgrade that finds the application full
    when its ``start`` arrives is closed with 1013, counted as ``refused_after_upgrade``.

    Use ``add_to(app)`` (or ``routes()`` with ``app.add_routes``). Served by
    ``http_guard.start_http_site``, the media sockets take the fast path (``ws_server``); served
    by any other aiohttp runner, the routes serve them with aiohttp's public WebSocket API.
    """

    def __init__(
        self, on_stream: OnStream, config: CarrierConfig | None = None, *, admit: Admit | None = None
    ) -> None:
        if not callable(on_stream):
            raise TypeError(f"on_stream must be a coroutine function, not {type(on_stream).__name__}")
        if admit is not None and not callable(admit):
            raise TypeError(f"admit must be callable or None, not {type(admit).__name__}")
        self.on_stream = on_stream
        self.admit = admit
        self.config = config or CarrierConfig()
        self.stats = Stats()
        self.access = AccessControl(self.config, admit, self.stats, self._count_once)
        self._webhook = TwilioVoiceWebhook(self.config, self.stats, self._count_once)
        self._sockets: set[MediaSocket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged: set[str] = set()
        if self.access.open:
            log.warning("carrier media endpoints are open: no token and no Twilio auth token configured")

    # -- wiring ------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        cfg = self.config
        return [
            web.get(cfg.twilio_path, self.twilio_stream),
            web.get(cfg.media_path, self.voxengine_media),
            web.post(cfg.voice_path, self.twilio_voice),
            web.get(cfg.voice_path, self.twilio_voice),
        ]

    def add_to(self, app: web.Application) -> None:
        """Add the routes to ``app`` and offer its carrier listener the media upgrades."""
        app.add_routes(self.routes())
        app[WEBSOCKET_UPGRADES] = self.upgrade

    def upgrade(self, path: str) -> Callable[[], asyncio.Protocol] | None:
        """The connection protocol for a WebSocket upgrade to ``path``, or None (not a media path)."""
        cfg = self.config
        if path == cfg.twilio_path:
            session: SessionType = TwilioSession
            twilio = True
        elif path == cfg.media_path:
            session, twilio = VoxEngineSession, False
        else:
            return None

        def handshake(
            request: WsRequest, connection: ServerConnection
        ) -> Refusal | Callable[[ServerConnection], CarrierSession]:
            headers = request.headers
            hosts = header_lines(headers, "Host")
            if len(hosts) > 1:  # as aiohttp answers one (RFC 9112 §3.2: exactly one Host)
                return Refusal(400, "repeated Host header\n")
            upgrade = UpgradeRequest(
                request.path, headers, hosts[0] if hosts else "", False, connection.remote
            )
            refusal = self.access.refuse(upgrade, twilio=twilio, active_sockets=len(self._sockets))
            if refusal is not None:
                return refusal
            return lambda socket: self._opened(socket, session)

        def protocol() -> asyncio.Protocol:
            return ServerConnection(
                handshake,
                max_size=cfg.max_message_bytes,
                heartbeat_s=cfg.heartbeat_s,
                on_closed=self._sockets.discard,
            )

        return protocol

    @property
    def active_sockets(self) -> int:
        return len(self._sockets)

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every media socket (1001 going away) and cancel the ``on_stream`` tasks."""
        for socket in list(self._sockets):
            await socket.close(code, close_message(reason))
        for task in list(self._tasks):
            task.cancel()

    async def twilio_voice(self, request: web.Request) -> web.Response:
        """Twilio's voice webhook: TwiML connecting the call to the stream endpoint (``webhook``)."""
        return await self._webhook(request)

    # -- media sockets -----------------------------------------------------------------------------

    def _opened(self, socket: MediaSocket, session: SessionType) -> CarrierSession:
        self._sockets.add(socket)
        self.stats["sockets"] += 1
        return session(socket, self.config, self.stats, self._spawn)

    async def twilio_stream(self, request: web.Request) -> web.StreamResponse:
        """The Twilio Media Streams endpoint (``<Connect><Stream url=...>`` points here)."""
        return await self._serve(request, TwilioSession, twilio=True)

    async def voxengine_media(self, request: web.Request) -> web.StreamResponse:
        """The VoxEngine WebSocket media endpoint: any number of tagged streams per socket."""
        return await self._serve(request, VoxEngineSession, twilio=False)

    async def _serve(self, request: web.Request, session: SessionType, *, twilio: bool) -> web.StreamResponse:
        """A media socket through aiohttp's routes (not the listener's fast path)."""
        upgrade = UpgradeRequest(
            request.raw_path, request.headers, request.host, request.secure, request.remote
        )
        refusal = self.access.refuse(upgrade, twilio=twilio, active_sockets=len(self._sockets))
        if refusal is not None:
            return web.Response(status=refusal.status, text=refusal.text, headers=refusal.headers)
        cfg = self.config
        ws = web.WebSocketResponse(max_msg_size=cfg.max_message_bytes, heartbeat=cfg.heartbeat_s)
        await ws.prepare(request)
        socket = AiohttpMediaSocket(ws, request.remote, f"{'twilio' if twilio else 'wsmedia'}-writer")
        try:
            await socket.run(self._opened(socket, session))
        finally:
            self._sockets.discard(socket)
        return ws

    def _spawn(self, stream: CarrierStream) -> None:
        def failed(exc: BaseException) -> None:
            log.error(
                "on_stream for %s stream %s raised; closing it", stream.kind, stream.stream_id, exc_info=exc
            )
            background(stream.close(CLOSE_INTERNAL_ERROR, "stream handler failed"), name="carrier-close")

        task = background(self._admitted(stream), name=f"on_stream-{stream.stream_id}", on_error=failed)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _admitted(self, stream: CarrierStream) -> None:
        # Asked again, with nothing in between that could await: the application may have filled
        # up (other sockets' starts, SIP calls) since this socket was admitted at its upgrade.
        reason = self.admit() if self.admit is not None else None
        if reason is not None:
            self._count_once(
                "refused_after_upgrade", f"closing a {stream.kind} stream at its start with 1013: {reason}"
            )
            await stream.close(CLOSE_TRY_AGAIN_LATER, f"not taking calls: {reason}")
            return
        await self.on_stream(stream)

    def _count_once(self, counter: str, message: str) -> None:
        """Count a refusal; log it at INFO the first time per counter (a flood stays quiet)."""
        self.stats[counter] += 1
        if counter not in self._logged:
            self._logged.add(counter)
            log.info("%s (logged once, counted in %s)", message, counter)
