"""WebRTC signaling on the ``--http`` listener (aiohttp), WHIP-style, and the playground page.

- ``POST {path}`` with an SDP offer (``Content-Type: application/sdp``): ``201 Created`` with the
  SDP answer (every candidate in it: non-trickle ICE) and ``Location: {path}/{id}``, the call's
  resource. The call goes to ``on_call(peer)`` (the runtime makes it a ``Call`` in a session of its
  own) before the answer is sent.
- ``DELETE {path}/{id}``: hang up (200; 404 for an unknown or ended call).
- ``GET {path}/{id}/events``: that call's events as server-sent events (``EventFeed``), for its
  own page only: the id is 128 random bits that only the caller who POSTed the offer got.
- ``GET /playground`` (and its script): the page, from the package data; no build step, no CDN.

Access is the carrier media endpoints' (``carriers.access.AccessControl``): with a token set, every
signaling request needs it (``Authorization: Bearer`` as WHIP has it, or ``?token=``); 401 without,
403 wrong, 503 with ``Retry-After`` while the runtime takes no calls. Bad input gets a 4xx naming
what is wrong (415 not SDP, 413 too large, 400 not an offer voxline can answer) and touches no
other call. Without aiortc (the ``webrtc`` extra) the offer gets 501 saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._tasks import background
from ..carriers.access import AccessControl, UpgradeRequest
from ..media.clock import AsyncioMediaClock
from .sdp import MAX_OFFER_BYTES, check_offer, keep_candidates

if TYPE_CHECKING:
    from .peer import WebRtcPeer

__all__ = ["LOOPBACK_NETWORKS", "WebRtcEndpoint"]

log = logging.getLogger("voxline.webrtc")

OnCall = Callable[["WebRtcPeer"], Awaitable[None]]
LOOPBACK_NETWORKS = ("127.0.0.0/8",)
_HEARTBEAT_S = 10.0
_STATIC = {
    "playground.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
# The page loads nothing from elsewhere; the headers say so to the browser too.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class WebRtcEndpoint:
    """The WebRTC signaling routes and the playground of one runtime (see the module docstring).

    ``candidate_networks``: the remote ICE candidates kept from an offer (CIDRs; None keeps every
    UDP candidate). ``host_addresses``: where local host candidates are gathered (None: aioice's
    choice, every interface but loopback); both default to loopback for a loopback listener.
    ``ice_servers``: STUN/TURN URLs for real deployments (docs/webrtc.md).
    """

    def __init__(
        self,
        on_call: OnCall,
        *,
        access: AccessControl | None = None,
        path: str = "/webrtc",
        ice_servers: Sequence[str] = (),
        ice_username: str | None = None,
        ice_credential: str | None = None,
        candidate_networks: Sequence[str] | None = LOOPBACK_NETWORKS,
        host_addresses: Sequence[str] | None = ("127.0.0.1",),
        playground: bool = True,
    ) -> None:
        if not callable(on_call):
            raise TypeError(f"on_call must be a coroutine function, not {type(on_call).__name__}")
        if not isinstance(path, str) or not path.startswith("/") or path.endswith("/") or len(path) < 2:
            raise ValueError(f"path must start with / and not end with one, not {path!r}")
        self.on_call = on_call
        self.access = access
        self.path = path
        self.ice_servers = tuple(ice_servers)
        self.ice_username = ice_username
        self.ice_credential = ice_credential
        self.candidate_networks = None if candidate_networks is None else tuple(candidate_networks)
        self.host_addresses = None if host_addresses is None else tuple(host_addresses)
        self.playground = playground
        self.peers: dict[str, WebRtcPeer] = {}
        self.stats: dict[str, int] = {}
        self._configured = False

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.post(self.path, self.offer),
            web.delete(self.path + "/{id}", self.hangup),
            web.get(self.path + "/{id}/events", self.events),
        ]
        if self.playground:
            routes += [web.get("/playground", self.page), web.get("/playground/{name}", self.page)]
        return routes

    def add_to(self, app: web.Application) -> None:
        app.add_routes(self.routes())

    async def close(self) -> None:
        """Hang up every call (the runtime's shutdown)."""
        for peer in list(self.peers.values()):
            await peer.close("server shutting down")

    # -- signaling -------------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.access is None:
            return None
        upgrade = UpgradeRequest(
            request.raw_path, request.headers, request.host, request.secure, request.remote
        )
        refusal = self.access.refuse(upgrade, twilio=False, active_sockets=len(self.peers))
        if refusal is None:
            return None
        self._count(f"refused_{refusal.status}")
        return web.Response(status=refusal.status, text=refusal.text, headers=refusal.headers)

    def _bad(self, status: int, reason: str) -> web.Response:
        self._count(f"bad_{status}")
        log.info("refused a WebRTC offer with %d: %s", status, reason)
        return web.Response(status=status, text=reason + "\n")

    async def offer(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if request.content_type != "application/sdp":
            return self._bad(415, f"the offer must be application/sdp, not {request.content_type!r}")
        if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
            return self._bad(413, f"the offer is over {MAX_OFFER_BYTES} bytes")
        body = await request.content.read(MAX_OFFER_BYTES + 1)
        if len(body) > MAX_OFFER_BYTES:
            return self._bad(413, f"the offer is over {MAX_OFFER_BYTES} bytes")
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._bad(400, "the offer is not UTF-8 text")
        problem = check_offer(sdp)
        if problem is not None:
            return self._bad(400, problem)
        if self.candidate_networks is not None:
            sdp, dropped = keep_candidates(sdp, self.candidate_networks)
            if dropped:
                log.debug("dropped %d ICE candidates outside %s", dropped, ", ".join(self.candidate_networks))
        try:
            # The first offer loads aiortc (a second or so): off the loop, so other calls' audio flows.
            peer_io = await asyncio.get_running_loop().run_in_executor(
                None, importlib.import_module, "voxline.webrtc.peer"
            )
        except ImportError as exc:
            return self._bad(501, f"WebRTC needs the 'voxline[webrtc]' extra (aiortc): {exc}")
        if not self._configured:
            peer_io.use_host_addresses(self.host_addresses)
            self._configured = True
        servers = peer_io.ice_servers(self.ice_servers, self.ice_username, self.ice_credential)
        try:
            peer = await peer_io.answer_offer(sdp, clock=AsyncioMediaClock.for_loop(), servers=servers)
        except ValueError as exc:
            return self._bad(400, str(exc))
        peer.remote = request.remote
        self.peers[peer.id] = peer
        self._count("calls")
        background(self._forget(peer), name=f"webrtc-{peer.id}")
        try:
            await self.on_call(peer)
        except Exception:
            log.exception("on_call for WebRTC call %s raised; hanging it up", peer.id)
            await peer.close("call handler failed")
            return web.Response(status=500, text="the call could not be started\n")
        if peer.closed.is_set():  # the runtime filled up since the access check
            return web.Response(
                status=503, text=f"not taking calls: {peer.close_reason}\n", headers={"Retry-After": "1"}
            )
        location = f"{self.path}/{peer.id}"
        return web.Response(
            status=201,
            body=peer.answer_sdp.encode(),
            headers={
                "Content-Type": "application/sdp",
                "Location": location,
                "Link": f'<{location}/events>; rel="events"',
                "Cache-Control": "no-store",
            },
        )

    async def _forget(self, peer: WebRtcPeer) -> None:
        await peer.closed.wait()
        # Kept a moment so the page can still read the end of its feed.
        await asyncio.sleep(5.0)
        self.peers.pop(peer.id, None)

    def _peer(self, request: web.Request) -> WebRtcPeer | None:
        return self.peers.get(request.match_info["id"])

    async def hangup(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        peer = self._peer(request)
        if peer is None or peer.closed.is_set():
            return web.Response(status=404, text="no such call\n")
        await peer.close("hangup", by="remote")
        return web.Response(status=200, text="hung up\n")

    async def events(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        peer = self._peer(request)
        if peer is None:
            return web.Response(status=404, text="no such call\n")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold the events back
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        unsubscribe = peer.feed.subscribe(queue.put_nowait)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), _HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if event is None:
                    await response.write(b"event: end\ndata: {}\n\n")
                    break
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
        except ConnectionResetError:
            return response  # the page went away
        finally:
            unsubscribe()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    # -- the page --------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "playground.html")
        if name == "config.json":
            # What the page needs to call: the signaling path and STUN/TURN URLs (no credentials).
            config = {"webrtc_path": self.path, "ice_servers": list(self.ice_servers)}
            return web.json_response(config, headers=_PAGE_HEADERS)
        content_type = _STATIC.get(name)
        if content_type is None:
            return web.Response(status=404, text="not found\n")
        data = resources.files("voxline.webrtc").joinpath("static", name).read_bytes()
        return web.Response(body=data, headers={"Content-Type": content_type, **_PAGE_HEADERS})
