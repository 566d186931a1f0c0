"""SRTP with libsrtp (pylibsrtp) as the RTP I/O layer's transform: round trips, forged and replayed
packets counted and dropped, RTCP passed through, and two RtpEndpoints talking SRTP on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from voxline.audio import Frame
from voxline.rtp import RtpEndpoint, RtpSession
from voxline.rtp.packet import RtpPacket, build_packet
from voxline.rtp.srtp import SrtpTransform
from voxline.sip.crypto import SUITES, new_key

A, B = new_key(), new_key()


@pytest.mark.parametrize("suite", list(SUITES))
def test_round_trip_and_tag_length(suite: str) -> None:
    alice, bob = SrtpTransform(suite, A, B), SrtpTransform(suite, B, A)
    packet = build_packet(0, 1, 160, 0x1234, b"\x55" * 160, True)
    protected = alice.protect(packet)
    assert protected is not None and protected != packet
    assert protected[:12] == packet[:12]  # the header stays in clear, the payload does not
    assert len(protected) == len(packet) + (10 if suite.endswith("_80") else 4)
    clear = bob.unprotect(protected)
    assert clear == packet and RtpPacket.parse(clear).payload == b"\x55" * 160
    assert alice.stats["protected"] == 1 and bob.stats["unprotected"] == 1


def test_forged_and_replayed_packets_are_counted_and_dropped() -> None:
    alice, bob = (
        SrtpTransform("AES_CM_128_HMAC_SHA1_80", A, B),
        SrtpTransform("AES_CM_128_HMAC_SHA1_80", B, A),
    )
    first = alice.protect(build_packet(0, 1, 160, 7, b"\x01" * 160, False))
    second = alice.protect(build_packet(0, 2, 320, 7, b"\x02" * 160, False))
    assert first is not None and second is not None
    assert bob.unprotect(first) is not None
    assert bob.unprotect(first) is None  # replayed
    forged = second[:20] + bytes([second[20] ^ 1]) + second[21:]
    assert bob.unprotect(forged) is None  # fails authentication
    plain = build_packet(0, 3, 480, 7, b"\x03" * 160, False)
    assert bob.unprotect(plain) is None  # plain RTP on an SRTP stream
    assert bob.unprotect(second) is not None  # the real one still goes through
    assert bob.stats == {
        "protected": 0,
        "unprotected": 2,
        "auth_failed": 2,
        "replayed": 1,
        "protect_failed": 0,
    }
    rtcp = bytes([0x80, 200, 0, 6]) + bytes(24)
    assert bob.unprotect(rtcp) == rtcp  # RTCP left to the core (it counts and drops it)


def test_keys_and_suites_are_checked() -> None:
    with pytest.raises(ValueError, match="suite must be one of"):
        SrtpTransform("F8_128_HMAC_SHA1_80", A, B)
    with pytest.raises(ValueError, match="remote_key must be 30 bytes"):
        SrtpTransform("AES_CM_128_HMAC_SHA1_80", A, B[:16])


async def test_two_endpoints_talk_srtp_and_a_stranger_cannot_inject() -> None:
    heard: list[Frame] = []
    left = await RtpEndpoint.create(RtpSession(), "127.0.0.1", 0)
    right = await RtpEndpoint.create(
        RtpSession(), "127.0.0.1", 0, lambda e: heard.append(e) if isinstance(e, Frame) else None
    )
    try:
        left.session.remote_addr = right.local_addr
        right.session.remote_addr = left.local_addr
        left.set_srtp("AES_CM_128_HMAC_SHA1_80", A, B)
        right.set_srtp("AES_CM_128_HMAC_SHA1_80", B, A)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))
            # Plain RTP from elsewhere before the stream: dropped before the session could latch on it.
            stranger.sendto(build_packet(0, 9, 9, 9, b"\x77" * 160, True), right.local_addr)
            await asyncio.sleep(0.05)
        for i in range(5):
            left.push_audio(bytes([0x10 + i]) * 160)
            await asyncio.sleep(0.03)
        for _ in range(50):
            if len(heard) >= 5:
                break
            await asyncio.sleep(0.02)
        data = b"".join(f.data for f in heard)
        assert b"\x77" not in data and all(bytes([0x10 + i]) * 160 in data for i in range(5))
        assert right.srtp is not None and right.srtp.stats["auth_failed"] == 1
        assert right.session.latched == left.local_addr
    finally:
        left.close()
        right.close()
