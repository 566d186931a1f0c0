"""The carrier listener cuts a client's bytes into frames itself (``wsframes``) and decodes the common
text frame without websockets' parser; everything else still reaches websockets' protocol at a frame
boundary, so RFC 6455's rules hold. Unit tests of the splitter against frames made by websockets'
client protocol, then a real server and a raw TCP client that writes frames byte by byte, sends
frames in the same write as its handshake, fragments, pings, and breaks the rules."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import struct

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from voxline.carriers import CarrierStream
from voxline.carriers.wsframes import ClientFrames, unmask

from .conftest import ServerFactory


def client_frames(*frames: Frame) -> bytes:
    """``frames`` as a client writes them (masked with a random key), encoded here by RFC 6455
    §5.2's table rather than by either library under test, so broken sequences can be made too."""
    out = b""
    for frame in frames:
        data, mask = bytes(frame.data), os.urandom(4)
        head = bytes([(0x80 if frame.fin else 0) | int(frame.opcode)])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        out += head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return out


def split_all(
    frames: ClientFrames, data: bytes, *, fast: bool = True, step: int | None = None
) -> list[tuple[bool, bytes]]:
    out: list[tuple[bool, bytes]] = []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        frames.feed(data[i : i + step])
        while (item := frames.next(fast)) is not None:
            out.append(item)
            if not frames.pending:
                assert frames.next(fast) is None  # what ``pending`` promises: nothing is left
                break
    return out


def test_unmask_is_the_xor_of_rfc6455_for_every_length() -> None:
    rng = random.Random(7)
    for n in [*range(0, 40), 125, 126, 1000, 65536]:
        data, mask = rng.randbytes(n), rng.randbytes(4)
        assert unmask(mask, data) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536])
def test_a_final_text_frame_is_decoded_at_every_length_encoding(size: int) -> None:
    payload = os.urandom(size)
    assert split_all(ClientFrames(None), client_frames(Frame(Opcode.TEXT, payload))) == [(True, payload)]


def test_frames_split_across_writes_come_out_whole_and_in_order() -> None:
    payloads = [os.urandom(n) for n in (3, 200, 126, 0, 70_000)]
    data = client_frames(*(Frame(Opcode.TEXT, p) for p in payloads))
    for step in (1, 2, 7, 500):
        assert split_all(ClientFrames(None), data, step=step) == [(True, p) for p in payloads]


def test_other_frames_and_any_frame_when_not_fast_are_handed_back_as_sent() -> None:
    ping, first, last = (
        Frame(Opcode.PING, b"hi"),
        Frame(Opcode.TEXT, b"ab", fin=False),
        Frame(Opcode.CONT, b"cd"),
    )
    binary, text = Frame(Opcode.BINARY, b"\x00\x01"), Frame(Opcode.TEXT, b"plain")
    raws = [client_frames(f) for f in (ping, first, last, binary)]
    assert split_all(ClientFrames(None), b"".join(raws)) == [(False, raw) for raw in raws]
    raw_text = client_frames(text)
    assert split_all(ClientFrames(None), raw_text, fast=False) == [(False, raw_text)]


@pytest.mark.parametrize(
    "head",
    [
        b"\x81\x05hello",  # unmasked: a client's frames must be masked (§5.1)
        b"\xc1\x85\x00\x00\x00\x00hello",  # RSV1 without a negotiated extension (§5.2)
        b"\x81\xfe\x10\x00\x00\x00\x00\x00",  # 4,096 bytes announced, over max_size: refused before it comes
    ],
    ids=["unmasked", "reserved-bit", "over-max-size"],
)
def test_a_refused_header_hands_back_everything_from_it_on(head: bytes) -> None:
    good = client_frames(Frame(Opcode.TEXT, b"ok"))
    frames = ClientFrames(1024)
    assert split_all(frames, good + head) == [(True, b"ok"), (False, head)]
    assert frames.bypass
    frames.feed(b"more")
    assert frames.next(True) == (False, b"more")


def test_an_incomplete_frame_waits_and_rest_gives_it_back() -> None:
    data = client_frames(Frame(Opcode.TEXT, b"x" * 300))
    frames = ClientFrames(None)
    frames.feed(data[:100])
    assert frames.next(True) is None
    assert frames.rest() == data[:100]
    assert frames.next(True) is None


def test_pending_tells_whether_bytes_are_left() -> None:
    one, two = client_frames(Frame(Opcode.TEXT, b"a")), client_frames(Frame(Opcode.TEXT, b"b" * 200))
    frames = ClientFrames(None)
    assert not frames.pending
    frames.feed(one + two[:3])
    assert frames.next(True) == (True, b"a") and frames.pending  # the second frame's start waits
    assert frames.next(True) is None and frames.pending
    frames.feed(two[3:])
    assert frames.next(True) == (True, b"b" * 200) and not frames.pending
    frames.feed(two[:5])
    assert frames.rest() == two[:5] and not frames.pending


# -- on a real server -------------------------------------------------------------------------------

SID = "MZ" + "5" * 32
CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
START = json.dumps({"event": "start", "sequenceNumber": "1", "start": {"streamSid": SID, "callSid": "CA5"}})


def media(byte: int) -> str:
    payload = base64.b64encode(bytes([byte]) * 160).decode()
    return json.dumps({"event": "media", "streamSid": SID, "media": {"track": "inbound", "payload": payload}})


def handshake(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /twilio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def read_frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """The server's (unmasked) frames until it closes the connection: (opcode, payload)."""
    data = await asyncio.wait_for(reader.read(), 5)
    head_end = data.index(b"\r\n\r\n") + 4
    assert data.startswith(b"HTTP/1.1 101")
    out, pos = [], head_end
    while pos < len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        out.append((opcode, data[pos : pos + length]))
        pos += length
    return out


class Heard:
    def __init__(self) -> None:
        self.bytes: list[int] = []

    async def __call__(self, stream: CarrierStream) -> None:
        stream.on_audio = lambda frame: self.bytes.append(frame.data[0])
        await stream.wait_closed()


async def run_raw(server_port: int, data: bytes, *, step: int | None = None) -> list[tuple[int, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    step = step or len(data)
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
        await writer.drain()
    await asyncio.sleep(0.2)
    close = Protocol(Side.CLIENT, state=State.OPEN)
    close.send_close(1000, "bye")
    writer.write(b"".join(close.data_to_send()))
    frames = await read_frames(reader)
    writer.close()
    return frames


ON_THE_CARRIER_LISTENER = pytest.mark.parametrize("make_server", ["ws_server"], indirect=True)


@ON_THE_CARRIER_LISTENER
async def test_early_and_byte_by_byte_frames_reach_the_stream(
    make_server: ServerFactory,
) -> None:
    heard = Heard()
    server = await make_server(heard)
    texts = [CONNECTED, START, media(1), media(2)]
    body = client_frames(*(Frame(Opcode.TEXT, t.encode()) for t in texts))
    await run_raw(server.port, handshake(server.port) + body)  # a client too eager: still framed right
    assert heard.bytes == [1, 2]
    # A message in three fragments with a ping between them, sent one byte per write.
    third = media(3).encode()
    fragmented = client_frames(
        Frame(Opcode.TEXT, CONNECTED.encode()),
        Frame(Opcode.TEXT, START.encode()),
        Frame(Opcode.TEXT, third[:10], fin=False),
        Frame(Opcode.PING, b"p1"),
        Frame(Opcode.CONT, third[10:50], fin=False),
        Frame(Opcode.CONT, third[50:]),
        Frame(Opcode.TEXT, media(4).encode()),
    )
    frames = await run_raw(server.port, handshake(server.port) + fragmented, step=1)
    assert heard.bytes == [1, 2, 3, 4]
    assert (int(Opcode.PONG), b"p1") in frames  # websockets answered the ping between the fragments
    assert frames[-1][0] == Opcode.CLOSE and frames[-1][1][:2] == struct.pack("!H", 1000)


@ON_THE_CARRIER_LISTENER
@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (b"\x81\x02hi", 1002),  # unmasked
        (b"\xc1\x82\x00\x00\x00\x00hi", 1002),  # reserved bit
        (client_frames(Frame(Opcode.TEXT, b"\xff\xfe")), 1007),  # not UTF-8
        (client_frames(Frame(Opcode.CONT, b"stray")), 1002),  # a continuation with no message
        (
            client_frames(Frame(Opcode.TEXT, b"a", fin=False), Frame(Opcode.TEXT, b"b")),
            1002,
        ),  # text inside a message
        (client_frames(Frame(Opcode.TEXT, b"x" * 5000)), 1009),  # over max_size
    ],
    ids=["unmasked", "reserved-bit", "not-utf8", "stray-continuation", "interleaved-text", "too-big"],
)
async def test_broken_frames_close_with_rfc6455s_code(
    make_server: ServerFactory, bad: bytes, code: int
) -> None:
    heard = Heard()
    server = await make_server(heard, max_message_bytes=4096)
    good = client_frames(*(Frame(Opcode.TEXT, t.encode()) for t in (CONNECTED, START, media(9))))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(handshake(server.port) + good + bad + client_frames(Frame(Opcode.TEXT, media(8).encode())))
    frames = await read_frames(reader)
    writer.close()
    assert heard.bytes == [9]  # the media before the broken frame, nothing after it
    closes = [payload for opcode, payload in frames if opcode == Opcode.CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == code
