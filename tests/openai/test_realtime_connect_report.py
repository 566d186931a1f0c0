"""How a Realtime client tells the session it runs in how its connect ended (the runtime's readiness
counts the failures in a row), over real loopback WebSockets: once per client, good at
session.created, bad for a refused handshake, an unreachable endpoint or a refused key (an error
event after the 101); no failure for a close of our own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from voxline import OpenAI
from voxline.context import Closable, current_session
from voxline.testing import FakeRealtimeServer

KEY = "sk-connect-report-key"


class RecordingSession:
    """A :class:`voxline.context.SessionContext` that keeps what it is told."""

    realtime_base_url: str | None = None
    trace = False

    def __init__(self) -> None:
        self.reports: list[str | None] = []
        self.adopted: list[Closable] = []

    def adopt(self, resource: Closable) -> None:
        self.adopted.append(resource)

    def model_connect(self, error: str | None) -> None:
        self.reports.append(error)


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_keys={KEY}) as srv:
        yield srv


@pytest.fixture
def session() -> Iterator[RecordingSession]:
    recording = RecordingSession()
    token = current_session.set(recording)
    try:
        yield recording
    finally:
        current_session.reset(token)


async def connect(base_url: str, key: str = KEY, **kwargs: Any) -> OpenAI.RealtimeAPIClient:
    return await OpenAI.create_realtime_api_client(api_key=key, base_url=base_url, **kwargs)


async def until(predicate: Any) -> None:
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_session_created_is_one_good_report(
    server: FakeRealtimeServer, session: RecordingSession
) -> None:
    client = await connect(server.base_url)
    assert session.reports == []  # the 101 alone is not a usable session yet
    await until(lambda: session.reports)
    connection = await server.wait_for_session()
    connection.close(4001, "going away")
    await client.wait_closed()
    assert session.reports == [None]  # the close after it is not a connect failure


async def test_a_refused_handshake_is_reported_with_its_status(
    server: FakeRealtimeServer, session: RecordingSession
) -> None:
    server.refuse_handshake(429, "Too many sessions", code="rate_limit_exceeded")
    with pytest.raises(OpenAI.RealtimeAPIError):
        await connect(server.base_url)
    assert session.reports == ["HTTP 429: Too many sessions"]


async def test_an_unreachable_endpoint_is_reported(session: RecordingSession) -> None:
    with pytest.raises(OpenAI.RealtimeAPIError):
        await connect("http://127.0.0.1:9/")
    assert len(session.reports) == 1 and "cannot connect" in (session.reports[0] or "")


async def test_a_refused_key_is_one_bad_report(server: FakeRealtimeServer, session: RecordingSession) -> None:
    client = await connect(server.base_url, key="sk-not-the-right-one")
    await client.wait_closed()
    assert len(session.reports) == 1
    report = session.reports[0] or ""
    assert report.startswith("invalid_api_key: ") and "sk-not-the-right-one" not in report


async def test_our_own_close_is_no_failure(server: FakeRealtimeServer, session: RecordingSession) -> None:
    client = await connect(server.base_url)
    client.close()  # maybe before session.created came in: not the endpoint's fault either way
    await client.wait_closed()
    assert session.reports in ([], [None])
