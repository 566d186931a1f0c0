"""On the carrier listener's fast path (websockets' Sans-I/O server) text messages are handled inside
the connection's ``data_received`` (no task wake-up per message); on either path in the order they
came, and nothing after the message that ends the socket (Twilio's stop, a protocol error) is
handled. Real server, real WebSocket client, on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from voxline.carriers import CarrierStream
from voxline.carriers.aiohttp_socket import AiohttpMediaSocket
from voxline.carriers.endpoint import TwilioCarrierStream
from voxline.carriers.ws_server import ServerConnection

from .conftest import ServerFactory

SID = "MZ" + "2" * 32
CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
START = json.dumps({"event": "start", "sequenceNumber": "1", "start": {"streamSid": SID, "callSid": "CA2"}})
STOP = json.dumps({"event": "stop", "streamSid": SID, "stop": {"callSid": "CA2"}})


def media(byte: int) -> str:
    payload = base64.b64encode(bytes([byte]) * 160).decode()
    return json.dumps({"event": "media", "streamSid": SID, "media": {"track": "inbound", "payload": payload}})


def burst(ws: ClientConnection, messages: list[str]) -> None:
    """Write ``messages`` in one write, so the server parses them in one ``data_received``."""
    for message in messages:
        ws.protocol.send_text(message.encode())
    ws.transport.write(b"".join(ws.protocol.data_to_send()))


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[int, asyncio.Task[Any] | None]] = []
        self.streams: list[CarrierStream] = []

    async def __call__(self, stream: CarrierStream) -> None:
        self.streams.append(stream)
        stream.on_audio = lambda frame: self.frames.append((frame.data[0], asyncio.current_task()))
        await stream.wait_closed()


async def read_until_closed(ws: ClientConnection) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:
        pass


async def test_media_is_handled_inside_the_parser_callback_not_by_a_task(make_server: ServerFactory) -> None:
    bridge = Recorder()
    server = await make_server(bridge)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await asyncio.sleep(0.05)  # on_stream sets on_audio (frames before it are handed over by its task)
        for byte in (1, 2, 3):
            await ws.send(media(byte))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
    assert [data for data, _ in bridge.frames] == [1, 2, 3]
    # Code run from a protocol callback has no current task; aiohttp's path runs in the handler's task.
    assert all((task is None) is (server.listener == "ws_server") for _, task in bridge.frames)


async def test_the_same_messages_reach_the_stream_on_either_path(make_server: ServerFactory) -> None:
    bridge = Recorder()
    server = await make_server(bridge, start_timeout_s=0.2)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await asyncio.sleep(0.3)  # past the start deadline: the stream has started, it stays
        burst(ws, [media(1), media(2), STOP, media(3)])
        await read_until_closed(ws)
        assert ws.close_code == 1000
    assert [data for data, _ in bridge.frames] == [1, 2]


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        # `stop` needs the task (drain, then close); the media behind it must not overtake it.
        ([media(1), media(2), STOP, media(3)], 1000),
        # So does closing on a protocol error.
        ([media(1), media(2), "not json", media(3)], 1007),
    ],
    ids=["stop", "protocol-error"],
)
async def test_messages_after_one_left_to_the_task_wait_for_it(
    make_server: ServerFactory, messages: list[str], code: int
) -> None:
    bridge = Recorder()
    server = await make_server(bridge)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await asyncio.sleep(0.05)
        burst(ws, messages)
        await read_until_closed(ws)
        assert ws.close_code == code
    assert [data for data, _ in bridge.frames] == [1, 2]
    assert bridge.streams[0].close_code == code


async def test_a_start_handled_in_the_callback_cancels_the_start_deadline(make_server: ServerFactory) -> None:
    bridge = Recorder()
    server = await make_server(bridge, start_timeout_s=0.2)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await asyncio.sleep(0.5)  # well past the deadline: the socket's task was waiting with it
        await ws.send(media(7))
        await asyncio.sleep(0.05)
        assert not bridge.streams[0].is_closed
    assert [data for data, _ in bridge.frames] == [7]


async def test_a_failure_in_the_callback_closes_that_socket_with_1011(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: TwilioCarrierStream, payload: bytes, timestamp_ms: int) -> None:
        if payload[0] == 9:
            raise RuntimeError("bug")

    monkeypatch.setattr(TwilioCarrierStream, "deliver_audio", broken)
    server = await make_server(Recorder())
    with caplog.at_level(logging.ERROR, logger="voxline.carriers"):
        async with connect(server.ws_url("/twilio")) as ws:
            await ws.send(CONNECTED)
            await ws.send(START)
            await ws.send(media(1))
            await ws.send(media(9))
            await read_until_closed(ws)
            assert ws.close_code == 1011
    assert "handling a message failed" in caplog.text


async def test_nothing_is_handled_while_the_task_closes_after_a_protocol_error(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = Recorder()
    server = await make_server(bridge)
    closing = asyncio.Event()
    socket_type: Any = ServerConnection if server.listener == "ws_server" else AiohttpMediaSocket
    close = socket_type.close

    async def slow_close(self: Any, code: int, reason: str) -> None:
        closing.set()
        await asyncio.sleep(0.1)  # media arriving now must not reach the stream
        await close(self, code, reason)

    monkeypatch.setattr(socket_type, "close", slow_close)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await asyncio.sleep(0.05)
        await ws.send("not json")
        await asyncio.wait_for(closing.wait(), 1)
        await ws.send(media(5))
        await read_until_closed(ws)
        assert ws.close_code == 1007
    assert bridge.frames == []


async def test_a_stream_closed_by_the_application_ends_with_its_own_code_and_reason(
    make_server: ServerFactory,
) -> None:
    async def bridge(stream: CarrierStream) -> None:
        await asyncio.sleep(0.05)
        await stream.close(1000, "hangup")

    server = await make_server(bridge)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await read_until_closed(ws)
        assert ws.close_code == 1000 and ws.close_reason == "hangup"
    stream = server.streams[0]
    await asyncio.wait_for(stream.wait_closed(), 1)
    assert (stream.close_code, stream.close_reason) == (1000, "hangup")
    assert server.endpoints.stats["socket_errors"] == 0


async def test_shutdown_closes_every_socket_with_1001_and_counts_no_error(make_server: ServerFactory) -> None:
    bridge = Recorder()
    server = await make_server(bridge)
    async with connect(server.ws_url("/twilio")) as ws:
        await ws.send(CONNECTED)
        await ws.send(START)
        await asyncio.sleep(0.05)
        reader = asyncio.create_task(read_until_closed(ws))
        await asyncio.wait_for(server.endpoints.close(), 3)
        await asyncio.wait_for(reader, 3)
        assert ws.close_code == 1001
    assert bridge.streams[0].close_code == 1001
    assert server.endpoints.stats["socket_errors"] == 0
    assert server.endpoints.active_sockets == 0
