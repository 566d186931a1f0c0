"""The carrier socket writer: frames go straight to the transport while that is safe, in order always."""

from __future__ import annotations

import asyncio
from collections import deque

from voxline.carriers.endpoint import _text_frame, _Writer


class FakeTransport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.backlog = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def is_closing(self) -> bool:
        return False


class FakeResponse:
    compress = 0
    closed = False

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(text)
        await asyncio.sleep(0)


def decode(frame: bytes) -> str:
    assert frame[0] == 0x81  # FIN + text, unmasked (a server's frame)
    n = frame[1]
    if n == 126:
        return frame[4:].decode()
    assert n < 126
    return frame[2:].decode()


async def test_frames_are_written_at_once_then_by_the_task_when_the_transport_is_backed_up() -> None:
    queue: deque[str] = deque()
    transport, ws = FakeTransport(), FakeResponse()
    writer = _Writer(ws, lambda: queue.popleft() if queue else None, "test-writer", transport)  # type: ignore[arg-type]
    queue.extend(["a", "b"])
    writer.kick()
    assert [decode(f) for f in transport.written] == ["a", "b"] and not queue  # no task switch needed
    transport.backlog = 1 << 20  # the peer stopped reading: flow control is the task's job
    queue.extend(["c", "d"])
    writer.kick()
    transport.backlog = 0
    queue.append("e")
    writer.kick()  # the task is busy: "e" waits behind "c" and "d", not around them
    await writer.drain(timeout=1.0)
    assert ws.sent == ["c", "d", "e"]
    assert len(transport.written) == 2
    writer.stop()


def test_text_frame_lengths() -> None:
    assert _text_frame("x" * 125)[:2] == bytes((0x81, 125))
    assert _text_frame("x" * 126)[:4] == bytes((0x81, 126, 0, 126))
    assert _text_frame("x" * 70_000)[:2] == bytes((0x81, 127))
    assert int.from_bytes(_text_frame("x" * 70_000)[2:10], "big") == 70_000
    assert decode(_text_frame("é" * 100)) == "é" * 100  # length counts bytes, not characters
