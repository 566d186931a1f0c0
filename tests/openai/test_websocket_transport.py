"""The WebSocket client transport (websockets' Sans-I/O protocol on asyncio) against a websockets
server on loopback: TLS, held messages, fragments, close codes, a refused handshake."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.protocol import State

from tests.conftest import require_tool
from voxline.openai.websocket import HandshakeFailed, WebSocketClient, open_websocket

Handler = Callable[[ServerConnection], Awaitable[None]]


def options() -> dict[str, object]:
    return {
        "headers": {"Authorization": "Bearer sk-test"},
        "user_agent": "voxline-test",
        "open_timeout": 5,
        "ping_interval": None,
        "ping_timeout": None,
        "close_timeout": 1,
    }


@asynccontextmanager
async def server(handler: Handler, **kwargs: object) -> AsyncIterator[int]:
    async with serve(handler, "127.0.0.1", 0, **kwargs) as srv:  # type: ignore[arg-type]
        yield next(iter(srv.sockets)).getsockname()[1]


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def collect(client: WebSocketClient) -> list[str]:
    got: list[str] = []
    client.start(got.append, lambda data: got.append(f"binary:{len(data)}"))
    return got


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_text_both_ways_held_messages_and_a_clean_close() -> None:
    async def greet_then_echo(ws: ServerConnection) -> None:
        await ws.send("hello")  # arrives right after the 101, before the client is started
        await echo(ws)

    async with server(greet_then_echo) as port:
        client = await open_websocket(f"ws://127.0.0.1:{port}/v1", **options())  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        got = await collect(client)
        assert got == ["hello"]  # held until start(), then handed over first
        for i in range(50):
            client.send_text(f"m{i}")
        await until(lambda: len(got) == 51)
        assert got[1:] == [f"m{i}" for i in range(50)]
        client.close(1000, "bye")
        assert await client.wait_closed() == (1000, "bye")


async def test_fragmented_messages_are_assembled_and_binary_is_passed_on() -> None:
    async def fragments(ws: ServerConnection) -> None:
        await ws.send(iter(["frag", "men", "ted"]))
        await ws.send(b"\x00\x01\x02")
        await ws.wait_closed()

    async with server(fragments) as port:
        client = await open_websocket(f"ws://127.0.0.1:{port}/", **options())  # type: ignore[arg-type]
        got = await collect(client)
        await until(lambda: len(got) == 2)
        assert got == ["fragmented", "binary:3"]
        client.close()
        await client.wait_closed()


async def test_a_server_close_reaches_closed_with_its_code() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.close(3000, "invalid_request_error.invalid_api_key")

    async with server(refuse) as port:
        client = await open_websocket(f"ws://127.0.0.1:{port}/", **options())  # type: ignore[arg-type]
        await collect(client)
        assert await client.wait_closed() == (3000, "invalid_request_error.invalid_api_key")
        assert not client.open


async def test_a_connection_lost_without_a_close_frame_is_no_longer_open() -> None:
    # The protocol still thinks the connection is open (no close frame came): what the socket
    # says counts.
    async def drop(ws: ServerConnection) -> None:
        # A reset, not a FIN: the client's protocol sees no end of stream either.
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()

    async with server(drop) as port:
        client = await open_websocket(f"ws://127.0.0.1:{port}/", **options())  # type: ignore[arg-type]
        await collect(client)
        assert await client.wait_closed() == (1006, "")
        assert client.protocol.state is State.OPEN and not client.open


async def test_a_refused_handshake_carries_the_response() -> None:
    def process_request(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(
            401, '{"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}'
        )

    async with server(echo, process_request=process_request) as port:
        with pytest.raises(HandshakeFailed) as refused:
            await open_websocket(f"ws://127.0.0.1:{port}/", **options())  # type: ignore[arg-type]
        response = refused.value.response
        assert response is not None and response.status_code == 401
        assert b"Incorrect API key" in (response.body or b"")


async def test_wss_verifies_the_server_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    async with server(echo, ssl=context) as port:
        url = f"wss://127.0.0.1:{port}/"
        with pytest.raises(ssl.SSLCertVerificationError):  # a certificate nobody vouches for
            await open_websocket(url, **options())  # type: ignore[arg-type]
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted, as a system CA would be
        client = await open_websocket(url, **options())  # type: ignore[arg-type]
        got = await collect(client)
        client.send_text("over TLS")
        await until(lambda: got == ["over TLS"])
        client.close()
        assert (await client.wait_closed())[0] == 1000
