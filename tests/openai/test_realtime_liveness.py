"""The Realtime client notices a model server that stops answering, says so when one stays silent,
logs a refused key with the server's words at the default verbosity, and never logs the key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from voxline import OpenAI
from voxline.audio import PCMU_8K, Frame
from voxline.eventtarget import Event
from voxline.media import MediaUnit
from voxline.openai import realtime
from voxline.testing import FakeRealtimeServer

KEY = "sk-proj-liveness-secret-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(api_keys={KEY}) as srv:
        yield srv


class Caller(MediaUnit):
    """Sends 20 ms G.711 frames of silence, like a quiet phone line."""

    media_format = PCMU_8K

    def send(self, n: int, start_ms: int = 0) -> None:
        for k in range(n):
            self._deliver(Frame(b"\xff" * 160, PCMU_8K, start_ms + k * 20))


async def test_a_server_that_stops_answering_is_reported_closed_within_the_keepalive(
    server: FakeRealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The production values are 4 + 4 + 2 s (a dead socket reported within 10 s); scaled down.
    monkeypatch.setattr(realtime, "PING_INTERVAL_S", 0.2)
    monkeypatch.setattr(realtime, "PING_TIMEOUT_S", 0.2)
    monkeypatch.setattr(realtime, "CLOSE_TIMEOUT_S", 0.1)
    closed: list[dict[str, Any]] = []
    done = asyncio.Event()

    def on_close(event: dict[str, Any]) -> None:
        closed.append(event)
        done.set()

    client = await OpenAI.create_realtime_api_client(
        api_key=KEY, base_url=server.base_url, on_web_socket_close=on_close
    )
    connection = await server.wait_for_session()
    await asyncio.sleep(0.5)
    assert not done.is_set()  # pings are answered: the socket stays up
    # The server's host freezes: it reads nothing more (no pong), sends nothing, never closes.
    connection.ws.transport.pause_reading()
    loop = asyncio.get_running_loop()
    frozen_at = loop.time()
    await asyncio.wait_for(done.wait(), 5)
    assert loop.time() - frozen_at < 1.5  # interval + pong timeout + close timeout, with room
    assert closed[0]["code"] == 1006 and closed[0]["was_clean"] is False  # no closing handshake
    assert client.closed
    connection.ws.transport.resume_reading()  # let the fake see the end and close at once


async def test_a_silent_server_is_reported_once_while_the_callers_audio_flows(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await OpenAI.create_realtime_api_client(
        api_key=KEY, base_url=server.base_url, server_silence_timeout_s=0.3
    )
    silent: list[Event] = []
    client.add_event_listener(OpenAI.Events.ModelSilent, silent.append)
    await server.wait_for_session()
    await asyncio.sleep(0.05)  # session.created and the format negotiation's session.updated
    caller = Caller()
    caller.send_media_to(client)
    with caplog.at_level(logging.WARNING, logger="voxline.openai.realtime"):
        caller.send(5)
        assert silent == []  # not yet: the server spoke less than 0.3 s ago
        await asyncio.sleep(0.4)
        caller.send(50, 100)  # a second of a quiet line, nothing comes back
        await asyncio.sleep(0.05)
    assert len(silent) == 1
    assert silent[0].name == OpenAI.Events.ModelSilent and silent[0].data["silent_s"] >= 0.3
    assert "has sent nothing for" in caplog.text
    # Anything from the server ends that silence; a new one is reported again.
    (await server.wait_for_session()).send_event({"type": "rate_limits.updated", "rate_limits": []})
    await asyncio.sleep(0.4)
    caller.send(1, 1200)
    assert len(silent) == 2
    client.close()


async def test_server_silence_timeout_is_checked() -> None:
    with pytest.raises(ValueError, match="server_silence_timeout_s"):
        await OpenAI.create_realtime_api_client(api_key=KEY, server_silence_timeout_s=0)


async def test_a_refused_key_is_logged_with_the_servers_message_and_close_code(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    done = asyncio.Event()
    with caplog.at_level(logging.WARNING):
        await OpenAI.create_realtime_api_client(
            api_key="sk-wrong-key-0000000000",
            base_url=server.base_url,
            on_web_socket_close=lambda e: done.set(),
        )
        await asyncio.wait_for(done.wait(), 5)
    text = caplog.text
    assert "invalid_api_key: Incorrect API key provided" in text
    assert "the connection closed: code 3000 (invalid_request_error.invalid_api_key)" in text
    assert "sk-wrong-key-0000000000" not in text


async def test_no_log_record_carries_the_key_even_at_debug(
    server: FakeRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client = await OpenAI.create_realtime_api_client(api_key=KEY, base_url=server.base_url)
        await server.wait_for_session()
        client.close()
        await client.wait_closed()
    lines = [r.getMessage() for r in caplog.records]
    assert "> Authorization: ***" in lines  # the client's handshake line is there, the key is not
    assert "< Authorization: ***" in lines  # and the server's (the fake and the embedded backend)
    assert all(KEY[10:] not in line for line in lines)
