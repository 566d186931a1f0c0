"""The fast path's writer (``ws_server.ServerConnection``): what the core queues is written at once,
synchronously, while the transport keeps up; while the transport is paused it stays in the core
(where a ``clear`` can still drop it) and goes out, in order, when writing resumes."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from voxline.carriers.ws_server import ServerConnection


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class NullSession:
    ending = None

    def receive_text(self, text: str) -> None:
        pass

    def receive_binary(self) -> None:
        pass

    def lost(self, code: int | None, reason: str, *, error: bool = False) -> None:
        pass


def texts(client: ClientProtocol, transport: FakeTransport) -> list[str]:
    """The text messages the server wrote since the last call, as a client reads them."""
    data = b"".join(transport.written)
    transport.written.clear()
    client.receive_data(data)
    return [
        bytes(e.data).decode()
        for e in client.events_received()
        if isinstance(e, Frame) and e.opcode is Opcode.TEXT
    ]


async def test_frames_are_written_at_once_and_held_back_while_the_transport_is_paused() -> None:
    queue: deque[str] = deque()
    connection = ServerConnection(lambda request, conn: lambda c: NullSession(), max_size=65536)  # type: ignore[arg-type, return-value]
    transport = FakeTransport()
    connection.connection_made(transport)
    client = ClientProtocol(parse_uri("ws://127.0.0.1/twilio"))
    client.send_request(client.connect())
    connection.data_received(b"".join(client.data_to_send()))
    client.receive_data(b"".join(transport.written))  # the 101
    transport.written.clear()
    connection.set_source(lambda: queue.popleft() if queue else None)

    queue.extend(["a", "b"])
    connection.kick()
    assert texts(client, transport) == ["a", "b"] and not queue  # written synchronously, no task
    connection.pause_writing()  # the peer stopped reading
    queue.extend(["c", "d"])
    connection.kick()
    assert texts(client, transport) == [] and list(queue) == ["c", "d"]  # still in the core
    queue.append("e")
    connection.kick()
    connection.resume_writing()
    assert texts(client, transport) == ["c", "d", "e"]  # in order, as soon as it may
    await connection.drain(timeout=0.1)
