"""Bad input over real loopback sockets: a malformed-message corpus, random bytes, TCP junk and RTP
from a stranger, all while a call is up. The call must not notice; nothing may raise."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from pathlib import Path

import pytest

from voxline.audio import Frame
from voxline.rtp import RtpPacket
from voxline.sip import CallDisconnected, SipCallLeg, SipEndpoint

from .peers import DATA

CORPUS = sorted((DATA / "malformed").glob("*.sip"))


async def _udp_exchange(port: int, datagrams: list[bytes], wait: float = 0.4) -> list[list[bytes]]:
    """Send each datagram from its own socket; return what each socket got back."""
    socks = []
    for data in datagrams:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.sendto(data, ("127.0.0.1", port))
        socks.append(s)
    await asyncio.sleep(wait)
    replies: list[list[bytes]] = []
    for s in socks:
        got = []
        while True:
            try:
                got.append(s.recv(65535))
            except BlockingIOError:
                break
        s.close()
        replies.append(got)
    return replies


async def _connected_pair(uas: SipEndpoint, uac: SipEndpoint) -> tuple[SipCallLeg, SipCallLeg, list[Frame]]:
    heard: list[Frame] = []
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        leg.on_audio = heard.append
        legs.append(leg)
        await leg.answer()

    uas.on_incoming_call = on_call
    caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
    await asyncio.wait_for(caller.wait_connected(), 3)
    while not legs or legs[0].state != "connected":
        await asyncio.sleep(0.01)
    return legs[0], caller, heard


ANSWERED = [p for p in CORPUS if p.name[:3].isdigit()]


def test_corpus_is_there() -> None:
    assert len([p for p in CORPUS if p.name.startswith("400-")]) >= 10
    assert len([p for p in CORPUS if p.name.startswith("drop-")]) >= 10
    assert {p.name[:3] for p in ANSWERED} == {"400", "416", "505"}


async def test_malformed_corpus_random_bytes_and_tcp_junk_leave_a_call_untouched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voxline")
    async with SipEndpoint("127.0.0.1", 0, max_message_bytes=8192) as uas, SipEndpoint("127.0.0.1", 0) as uac:
        callee, caller, heard = await _connected_pair(uas, uac)
        caller.send_audio(b"\x42" * 160 * 100)  # 2 s of audio keeps flowing during the attack

        replies = await _udp_exchange(uas.port, [p.read_bytes() for p in CORPUS])
        for path, got in zip(CORPUS, replies, strict=True):
            if path in ANSWERED:
                assert len(got) == 1, f"{path.name}: expected one {path.name[:3]}, got {got}"
                # The answer echoes the request's headers, broken ones included (RFC 3261 §8.2.6.2).
                assert got[0].startswith(b"SIP/2.0 " + path.name[:3].encode()), path.name
                assert b"\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-" in got[0], path.name
            else:
                assert got == [], f"{path.name}: expected silence, got {got}"

        rng = random.Random(4733)
        noise = [rng.randbytes(rng.randint(0, 1500)) for _ in range(150)]
        noise += [b"INVITE sip:a@b SIP/2.0\r\n" + rng.randbytes(200) for _ in range(50)]
        noise.append(
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n" + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"
        )  # over limit
        for got in await _udp_exchange(uas.port, noise, wait=0.3):
            for data in got:  # whatever was answered is a 400
                assert data.startswith(b"SIP/2.0 400 Bad Request"), data

        # TCP: a valid OPTIONS gets 200 on the stream; junk without a header end beyond the limit closes it.
        reader, writer = await asyncio.open_connection("127.0.0.1", uas.port)
        options = (DATA / "malformed" / "400-no-to.sip").read_bytes().replace(b"BYE", b"OPTIONS")
        options = options.replace(b"Call-ID", b"To: <sip:agent@127.0.0.1>\r\nCall-ID")
        writer.write(options)
        reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert reply.startswith(b"SIP/2.0 200 OK")
        writer.write(b"X" * 10000)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the endpoint
        writer.close()

        # The call never noticed: still connected and the audio arrived in full and in order.
        await asyncio.sleep(0.2)
        assert callee.state == "connected" and caller.state == "connected"
        assert b"\x42" * 160 * 30 in b"".join(f.data for f in heard)
        stats = uas.stats
        assert stats["bad_request_sent"] >= len(ANSWERED)
        assert stats["malformed_dropped"] >= 10

        # And new calls still work.
        _, second_caller, _ = await _connected_pair(uas, uac)
        second_caller.hangup()
        caller.hangup()
        ended = await asyncio.wait_for(callee.wait_ended(), 2)
        assert isinstance(ended, CallDisconnected) and ended.by == "remote"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]


async def test_rtp_from_another_address_is_ignored_once_latched() -> None:
    async with SipEndpoint("127.0.0.1", 0) as uas, SipEndpoint("127.0.0.1", 0) as uac:
        callee, caller, heard = await _connected_pair(uas, uac)
        assert callee.rtp is not None and caller.rtp is not None
        caller.send_audio(b"\x42" * 160 * 10)
        while callee.rtp.session.latched is None:
            await asyncio.sleep(0.01)
        assert callee.rtp.session.latched == caller.rtp.local_addr
        rtp_port = callee.rtp.local_addr[1]
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            stranger.bind(("127.0.0.1", 0))
            for seq in range(20):
                stranger.sendto(
                    RtpPacket(0, seq, seq * 160, 99, b"\x13" * 160).to_bytes(), ("127.0.0.1", rtp_port)
                )
            await asyncio.sleep(0.4)
        finally:
            stranger.close()
        assert callee.rtp.session.stats["foreign_dropped"] == 20
        assert all(b"\x13" not in f.data for f in heard)
        assert b"\x42" * 160 * 10 in b"".join(f.data for f in heard)
        # Our stream still goes to the latched peer, not to the stranger.
        assert callee.rtp.session.remote_addr == caller.rtp.local_addr
        caller.hangup()
        await asyncio.wait_for(callee.wait_ended(), 2)


async def test_rtp_inactivity_timeout_ends_the_call() -> None:
    async with (
        SipEndpoint("127.0.0.1", 0, rtp_inactivity_timeout_ms=300) as uas,
        SipEndpoint("127.0.0.1", 0, rtp_inactivity_timeout_ms=None) as uac,
    ):
        callee, caller, _ = await _connected_pair(uas, uac)
        assert caller.rtp is not None
        caller.rtp.session.sending = False  # the caller goes silent on the wire
        ended = await asyncio.wait_for(callee.wait_ended(), 3)
        assert isinstance(ended, CallDisconnected) and ended.by == "timeout" and "RTP" in ended.reason
        caller_end = await asyncio.wait_for(caller.wait_ended(), 3)
        assert isinstance(caller_end, CallDisconnected) and caller_end.by == "remote"


async def test_max_concurrent_calls_gives_503() -> None:
    async with SipEndpoint("127.0.0.1", 0, max_calls=1) as uas, SipEndpoint("127.0.0.1", 0) as uac:
        _, first, _ = await _connected_pair(uas, uac)
        second = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        ended = await asyncio.wait_for(second.wait_ended(), 3)
        assert getattr(ended, "status", None) == 503
        first.hangup()
    assert Path(__file__).exists()
