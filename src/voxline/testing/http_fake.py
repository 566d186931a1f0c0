"""The part every HTTP fake of a service shares: an aiohttp app on 127.0.0.1, on an ephemeral port.

A fake subclasses ``LoopbackHTTPFake``, adds its routes in ``_routes`` and is used with ``async
with`` (or ``start()`` / ``close()``). ``base_url`` ends with ``/``.
"""

from __future__ import annotations

from typing import Self

from aiohttp import web

__all__ = ["LoopbackHTTPFake"]


class LoopbackHTTPFake:
    """An aiohttp app serving a fake service on ``http://127.0.0.1:<port>/``."""

    # A client that goes away cancels the handler, so a fake can count the disconnect.
    handler_cancellation = True

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application()
        self._routes(app.router)
        self._runner = web.AppRunner(app, handler_cancellation=self.handler_cancellation, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"
