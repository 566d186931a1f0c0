"""A real server on 127.0.0.1 with the carrier endpoints and an in-test echo bridge.

``make_server`` runs every test that uses it on both ways a media socket is served: the carrier
listener's fast path (websockets' Sans-I/O server, ``ws_server``) and aiohttp's routes with its
public WebSocket API (``aiohttp_socket``, what an app served by its own runner gets).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from voxline.carriers import Admit, CarrierConfig, CarrierEndpoints, CarrierStream
from voxline.carriers.http_guard import HttpGuard, start_http_site

OnStream = Callable[[CarrierStream], Awaitable[None]]


@dataclass
class Server:
    endpoints: CarrierEndpoints
    base: str  # http://127.0.0.1:port
    streams: list[CarrierStream] = field(default_factory=list)
    guard: HttpGuard | None = None
    listener: str = "ws_server"  # or "aiohttp": which layer serves the media sockets

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def ws_url(self, path: str, **query: str) -> str:
        url = self.base.replace("http://", "ws://") + path
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url


async def echo_bridge(stream: CarrierStream) -> None:
    """The minimal bridge: every inbound frame goes straight back out, tagged with its position."""
    stream.on_audio = lambda frame: stream.send_audio(
        frame.data, source_ms=frame.timestamp_ms + int(frame.duration_ms)
    )
    await stream.wait_closed()


ServerFactory = Callable[..., Awaitable[Server]]


LISTENERS = ["ws_server", "aiohttp"]


@pytest.fixture(params=LISTENERS)
async def make_server(request: pytest.FixtureRequest) -> AsyncIterator[ServerFactory]:
    kind: str = request.param
    runners: list[web.AppRunner] = []
    servers: list[Server] = []

    async def make(
        on_stream: OnStream | None = None,
        *,
        admit: Admit | None = None,
        guard: HttpGuard | None = None,
        **config: object,
    ) -> Server:
        holder: list[Server] = []
        handler = on_stream or echo_bridge

        async def recording(stream: CarrierStream) -> None:
            holder[0].streams.append(stream)
            await handler(stream)

        endpoints = CarrierEndpoints(recording, CarrierConfig(**config), admit=admit)  # type: ignore[arg-type]
        app = web.Application()
        if kind == "ws_server":
            endpoints.add_to(app)
        else:
            app.add_routes(endpoints.routes())  # no upgrades offered: aiohttp serves the sockets
        # As the runtime serves them: behind the header and idle timeouts.
        listener = await start_http_site(app, "127.0.0.1", 0, guard or HttpGuard())
        server = Server(endpoints, f"http://127.0.0.1:{listener.port}", guard=listener.guard, listener=kind)
        holder.append(server)
        runners.append(listener.runner)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.endpoints.close()
    for runner in runners:
        await runner.cleanup()
    await asyncio.sleep(0)
