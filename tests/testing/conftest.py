"""A raw ``websockets`` client for the fake Realtime server's tests (no voxline client involved)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from voxline.testing import FakeRealtimeServer

KEY = {"Authorization": "Bearer sk-test"}


class RawClient:
    """Sends client events as dicts, reads server events as dicts."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event_type: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": event_type, **fields}))

    async def append(self, audio: bytes, chunk: int = 960) -> None:
        for start in range(0, len(audio), chunk):
            encoded = base64.b64encode(audio[start : start + chunk]).decode("ascii")
            await self.send("input_audio_buffer.append", audio=encoded)

    async def recv(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(await self.ws.recv())
        self.events.append(event)
        return event

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        """Every event up to and including the next one of ``event_type``."""
        got = []
        while True:
            event = await self.recv()
            got.append(event)
            if event["type"] == event_type:
                return got


async def open_client(
    server: FakeRealtimeServer, query: str = "?model=gpt-realtime", headers: dict[str, str] | None = None
) -> tuple[RawClient, dict[str, Any]]:
    # max_queue=None: a test may close with unread events; a bounded queue would pause reading and
    # leave the close frame unread until the close timeout.
    ws = await connect(
        server.ws_url + query, additional_headers=KEY if headers is None else headers, max_queue=None
    )
    client = RawClient(ws)
    return client, await client.recv()


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as fake:
        yield fake


@pytest.fixture
async def client(server: FakeRealtimeServer) -> AsyncIterator[RawClient]:
    raw, created = await open_client(server)
    assert created["type"] == "session.created"
    yield raw
    await raw.ws.close()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
