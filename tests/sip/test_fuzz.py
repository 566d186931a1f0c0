"""A seeded, bounded SIP fuzz run against a live call.

A ``SipEndpoint`` on loopback carries a call whose RTP carries known bytes both ways while two
threads send thousands of mutations of valid messages (INVITE with SDP, OPTIONS, BYE, ACK, CANCEL,
REGISTER, INFO, responses), the RFC 4475 torture messages and the malformed corpus: byte flips,
truncation, header duplication, huge values, list explosions, bad Content-Lengths, CRLF injection,
over UDP and over several TCP connections (some read, some never do, some stop mid-message and stay
open, some only half-close). Then: no error or traceback in the log, the call's audio arrived
byte-exact both ways, no gap between the RTP packets the peer received above 60 ms, a clean OPTIONS
is still answered over UDP and TCP, and the call ends cleanly with BYE.

The mutations are made before the call starts (their cost is not the endpoint's) and are the same
on every run (``SEED``); a failure prints the seed and the message index to reproduce it.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from voxline.audio import Frame
from voxline.rtp import RtpPacket
from voxline.sip import CallDisconnected, SipCallLeg, SipEndpoint

from .messages import OFFER_PCMU_PCMA, invite, request

SEED = 13_2026
UDP_MESSAGES = 2500
TCP_CONNECTIONS = 10
TCP_MESSAGES_EACH = 120
MAX_GAP_MS = 60.0
FRAME = 160  # bytes of one 20 ms PCMU frame

DATA = Path(__file__).resolve().parent.parent / "data" / "sip"
CORPUS = [p.read_bytes() for p in sorted((DATA / "rfc4475").glob("*.dat"))]
CORPUS += [p.read_bytes() for p in sorted((DATA / "malformed").glob("*.sip"))]

Mutation = Callable[[random.Random, bytes], bytes]


# ------------------------------------------------------------------------------ the messages


def _valid(rng: random.Random) -> bytes:
    """A fresh valid message with its own Call-ID, branch and tags (never the live call's)."""
    call_id = f"fuzz-{rng.getrandbits(48):x}@127.0.0.1"
    branch = f"z9hG4bK-{rng.getrandbits(48):x}"
    tag = f"{rng.getrandbits(32):x}"
    kind = rng.randrange(9)
    if kind <= 2:
        return invite(call_id=call_id, branch=branch, from_tag=tag, sdp=OFFER_PCMU_PCMA if kind else None)
    if kind == 3:
        return request("OPTIONS", call_id=call_id, branch=branch, from_tag=tag)
    if kind == 4:
        return request("BYE", call_id=call_id, branch=branch, from_tag=tag, to_tag="t" + tag)
    if kind == 5:
        return request("ACK", call_id=call_id, branch=branch, from_tag=tag, to_tag="t" + tag, cseq=1)
    if kind == 6:
        return request("CANCEL", call_id=call_id, branch=branch, from_tag=tag, cseq=1)
    if kind == 7:
        method = rng.choice(["REGISTER", "INFO", "SUBSCRIBE", "NOTIFY", "MESSAGE", "BOGUS"])
        return request(method, call_id=call_id, branch=branch, from_tag=tag, uri="sip:127.0.0.1")
    return (
        f"SIP/2.0 {rng.choice([100, 180, 200, 404, 487, 503])} Whatever\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:a@127.0.0.1>;tag={tag}\r\n"
        f"To: <sip:b@127.0.0.1>;tag=x\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _header_lines(data: bytes) -> tuple[list[bytes], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), sep + body


def _duplicate_header(rng: random.Random, data: bytes) -> bytes:
    lines, rest = _header_lines(data)
    if len(lines) < 2:
        return data
    i = rng.randrange(1, len(lines))
    lines[i:i] = [lines[i]] * rng.choice([1, 2, 5, 70, 300, 2000])
    return b"\r\n".join(lines) + rest


def _huge_value(rng: random.Random, data: bytes) -> bytes:
    lines, rest = _header_lines(data)
    size = rng.choice([200, 5000, 8200, 20_000, 60_000])
    value = rng.choice([b"v", b";p=1", b'"', b"<", b"%00"]) * (size // 4)
    if len(lines) > 1 and rng.random() < 0.5:
        i = rng.randrange(1, len(lines))
        name = lines[i].partition(b":")[0]
        lines[i] = name + b": " + value  # an existing header (Via, From, Call-ID...) made huge
    else:
        lines.insert(1, b"X-Huge: " + value)
    return b"\r\n".join(lines) + rest


def _list_explosion(rng: random.Random, data: bytes) -> bytes:
    lines, rest = _header_lines(data)
    n = rng.choice([71, 300, 5000, 29_000])
    name, entry = rng.choice(
        [
            (b"Via", b"a"),
            (b"Via", b"SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx"),
            (b"Contact", b'"x, y" <sip:a@127.0.0.1>'),
            (b"Record-Route", b"<sip:127.0.0.1;lr>"),
            (b"Route", b"<sip:p@127.0.0.1>"),
        ]
    )
    if rng.random() < 0.5:
        lines.insert(1, name + b": " + b",".join([entry] * n))
    else:
        lines[1:1] = [name + b": " + entry] * min(n, 3000)
    return (b"\r\n".join(lines) + rest)[:65000]


def _bad_content_length(rng: random.Random, data: bytes) -> bytes:
    lines, rest = _header_lines(data)
    value = rng.choice(
        [b"-1", b"9" * 5000, b"99999", b"abc", b"", b"1e3", b"\xc2\xb2", b" 5 5", b"4294967296", b"0"]
    )
    lines = [line for line in lines if not line.lower().startswith(b"content-length")]
    lines.append(b"Content-Length: " + value)
    if rng.random() < 0.3:
        lines.append(b"l: " + str(rng.randrange(500)).encode())  # a second one
    return b"\r\n".join(lines) + rest


def _crlf_injection(rng: random.Random, data: bytes) -> bytes:
    out = data
    for _ in range(rng.randint(1, 5)):
        pos = rng.randrange(len(out) + 1)
        out = out[:pos] + rng.choice([b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"\r\n ", b"\x00"]) + out[pos:]
    return out


def _garbage(rng: random.Random, data: bytes) -> bytes:
    return rng.choice([rng.randbytes(rng.randint(0, 3000)), b"\r\n\r\n", data + rng.randbytes(100)])


MUTATIONS: list[Mutation] = [
    _flip,
    _truncate,
    _duplicate_header,
    _huge_value,
    _list_explosion,
    _bad_content_length,
    _crlf_injection,
    _garbage,
]


def _message(rng: random.Random) -> bytes:
    data = rng.choice(CORPUS) if rng.random() < 0.1 else _valid(rng)
    if rng.random() < 0.9:  # one in ten goes out valid (or as the corpus has it)
        for _ in range(rng.choice([1, 1, 1, 2])):
            data = rng.choice(MUTATIONS)(rng, data)
    return data[:65000]  # a UDP datagram


# ------------------------------------------------------------------------------ the senders


class _TcpFuzzer:
    """One TCP connection's traffic, sent a chunk at a time; reconnects when the endpoint closes it
    (after a framing error) and goes on after the message that broke the framing."""

    def __init__(self, port: int, stream: list[bytes], style: str, rng: random.Random) -> None:
        self.port = port
        self.data = b"".join(stream)
        self.style = style
        self.rng = rng
        self.pos = 0
        self.sock: socket.socket | None = None
        self.reconnects = 0

    def step(self) -> None:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            self.sock.setblocking(False)
        if self.pos >= len(self.data):
            return
        chunk = self.data[self.pos : self.pos + self.rng.choice([1, 7, 100, 1400, 4000, 16000])]
        try:
            self.pos += self.sock.send(chunk)
            if self.style == "reader":
                self.sock.recv(65535)
        except BlockingIOError:
            pass
        except OSError:  # closed by the endpoint
            self.sock.close()
            self.sock = None
            self.reconnects += 1
            end = self.data.find(b"\r\n\r\n", self.pos)
            self.pos = len(self.data) if end < 0 else end + 4

    def finish(self) -> None:
        """Leave the connection as its style says: half-open mid-message, half-closed, or open."""
        if self.sock is None:
            return
        try:
            if self.style == "half-open":
                self.sock.send(b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127")  # no end
            elif self.style == "shut-wr":
                self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def _fuzz(
    port: int, datagrams: list[bytes], tcp: list[_TcpFuzzer], sent: threading.Event, done: threading.Event
) -> None:
    """The whole attack from one thread (few threads: little contention for the GIL the endpoint's
    event loop needs): datagrams from four sockets, interleaved with chunks of every TCP stream."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        for i, data in enumerate(datagrams):
            sock = socks[i % len(socks)]
            sock.sendto(data, ("127.0.0.1", port))
            try:
                while True:  # drain the answers now and then, as peers do
                    sock.recv(65535)
            except BlockingIOError:
                pass
            tcp[i % len(tcp)].step()
            time.sleep(0.0015)
        while any(t.pos < len(t.data) for t in tcp):
            for t in tcp:
                t.step()
            time.sleep(0.002)
        for t in tcp:
            t.finish()
        sent.set()
        done.wait(20)  # connections stay as they are until the checks are done
    finally:
        for s in socks:
            s.close()
        for t in tcp:
            t.close()


# ------------------------------------------------------------------------------ the test


def _pattern(rng: random.Random, frames: int) -> bytes:
    # No 0xFF (PCMU silence) nor 0xD5 (PCMA silence): what is not silence is the pattern.
    return bytes(rng.choice([b for b in range(256) if b not in (0xFF, 0xD5)]) for _ in range(frames * FRAME))


@pytest.fixture
def frozen_gc() -> Iterator[None]:
    """The test process holds ~100k objects of its own (pytest, imports): one full collection of
    those takes 50+ ms on a slow CI machine and would be measured as an RTP gap of the endpoint.
    Frozen, the collector only walks what the run itself creates."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("frozen_gc")
async def test_fuzzing_leaves_a_live_call_untouched(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(SEED)
    datagrams = [_message(rng) for _ in range(UDP_MESSAGES)]
    styles = ["reader", "never-reads", "half-open", "shut-wr", "idle"]
    streams = [[_message(rng) for _ in range(TCP_MESSAGES_EACH)] for _ in range(TCP_CONNECTIONS)]
    down = _pattern(rng, 450)  # 9 s of audio from the endpoint under fire to the peer
    up = _pattern(rng, 450)  # and from the peer to it

    heard_by_endpoint: list[Frame] = []
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        if legs:
            leg.reject(486)  # a fuzzed INVITE that parsed: refused, as a busy agent would
            return
        legs.append(leg)
        leg.on_audio = heard_by_endpoint.append
        await leg.answer()

    async with (
        SipEndpoint(
            "127.0.0.1", 0, on_incoming_call=on_call, tcp_message_timeout=0.5, tcp_idle_timeout=1.0
        ) as uas,
        SipEndpoint("127.0.0.1", 0) as peer,
    ):
        caller = await peer.call(f"sip:agent@127.0.0.1:{uas.port}")
        await asyncio.wait_for(caller.wait_connected(), 3)
        while not legs or legs[0].state != "connected":
            await asyncio.sleep(0.01)
        callee = legs[0]
        assert caller.rtp is not None and callee.rtp is not None

        # Every RTP packet the peer gets, with the loop time it arrived at.
        loop = asyncio.get_running_loop()
        arrived: list[tuple[float, RtpPacket]] = []
        deliver = caller.rtp.datagram_received

        def spy(data: bytes, addr: tuple[Any, ...]) -> None:
            arrived.append((loop.time(), RtpPacket.parse(data)))
            deliver(data, addr)

        caller.rtp.datagram_received = spy  # type: ignore[method-assign]
        await asyncio.sleep(0.2)
        callee.send_audio(down)
        caller.send_audio(up)

        sent, done = threading.Event(), threading.Event()
        tcp = []
        for i, stream in enumerate(streams):
            style = styles[i % len(styles)]
            tcp.append(
                _TcpFuzzer(uas.port, [] if style == "idle" else stream, style, random.Random(SEED + i))
            )
        attack = asyncio.ensure_future(asyncio.to_thread(_fuzz, uas.port, datagrams, tcp, sent, done))
        async with asyncio.timeout(25):
            while not sent.is_set():
                if attack.done():
                    attack.result()  # the sender failed: its exception
                await asyncio.sleep(0.05)
        while callee.queued_ms or caller.queued_ms:  # the rest of the audio
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)

        try:
            # The endpoint still answers a clean OPTIONS, over UDP and TCP.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                s.setblocking(False)
                s.sendto(request("OPTIONS", branch="z9hG4bK-final"), ("127.0.0.1", uas.port))
                answer = await asyncio.wait_for(loop.sock_recv(s, 65535), 2)
            assert answer.startswith(b"SIP/2.0 200 OK")
            reader, writer = await asyncio.open_connection("127.0.0.1", uas.port)
            writer.write(request("OPTIONS", branch="z9hG4bK-final-tcp"))
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"SIP/2.0 200 OK")
            writer.close()
        finally:
            done.set()
            await asyncio.wait_for(attack, 25)

        # The call's audio, byte for byte, both ways (silence around it: nothing queued).
        packets = [p for _, p in arrived]  # loopback keeps the order; none may be missing
        assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in itertools.pairwise(packets))
        received = b"".join(p.payload for p in packets)
        assert received.strip(b"\xff") == down, f"seed {SEED}: the peer's audio differs"
        assert b"".join(f.data for f in heard_by_endpoint).strip(b"\xff") == up
        # And on time: the largest gap between two packets the peer received.
        times = [t for t, _ in arrived]
        gap_ms = max(b - a for a, b in itertools.pairwise(times)) * 1000
        assert gap_ms <= MAX_GAP_MS, f"seed {SEED}: an RTP gap of {gap_ms:.0f} ms"
        print(f"fuzz: largest RTP gap {gap_ms:.1f} ms over {len(packets)} packets; stats {uas.stats}")

        caller.hangup()
        ended = await asyncio.wait_for(callee.wait_ended(), 3)
        assert isinstance(ended, CallDisconnected) and ended.by == "remote"
        stats = uas.stats
        assert stats["received"] >= UDP_MESSAGES
        assert stats["bad_request_sent"] > 100 and stats["over_limit"] > 50
        assert stats["tcp_framing_errors"] + stats["tcp_message_timeouts"] + stats["tcp_idle_closed"] > 0

    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad[:5]]
