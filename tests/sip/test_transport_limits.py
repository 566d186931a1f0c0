"""Over real loopback sockets: strangers cannot call, and calls that hold a slot for nothing
(never ACKed, never answered) end by themselves."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from voxline.sip import CallFailed, SipCallLeg, SipConfig, SipEndpoint, Timers

from .messages import invite


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


async def test_a_caller_outside_allow_sources_gets_403_and_no_call_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voxline")
    offered: list[SipCallLeg] = []
    async with (
        SipEndpoint("127.0.0.1", 0, allow_sources=["10.0.0.0/8"], on_incoming_call=offered.append) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        for transport in ("udp", "tcp"):
            caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}", transport=transport)  # type: ignore[arg-type]
            ended = await asyncio.wait_for(caller.wait_ended(), 3)
            assert isinstance(ended, CallFailed) and ended.status == 403
        # The two INVITEs and their ACKs (dropped: never answered, and they confirm nothing).
        assert offered == [] and uas.stats["rejected_source"] == 4 and uas.core is not None
        assert uas.core.active_calls == 0
    async with (
        SipEndpoint("127.0.0.1", 0, allow_sources=["127.0.0.0/8"], on_incoming_call=offered.append) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        for _ in range(100):
            if offered:
                break
            await asyncio.sleep(0.01)
        assert len(offered) == 1
        caller.hangup()
    with pytest.raises(ValueError, match="allow_sources: 'not-an-ip'"):
        SipEndpoint("127.0.0.1", 0, allow_sources=["127.0.0.1", "not-an-ip"])
    _no_errors(caplog)


def _udp_peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def _recv_until(s: socket.socket, start: bytes, seconds: float) -> list[bytes]:
    """Datagrams received until one starting with ``start`` (fails after ``seconds``)."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    async with asyncio.timeout(seconds):
        while not got or not got[-1].startswith(start):
            got.append(await loop.sock_recv(s, 65535))
    return got


async def test_a_200_never_acked_ends_at_timer_h_and_frees_the_slot() -> None:
    # Issue 13 item 7b over loopback, with T1 = 20 ms: Timer H = 64*T1 = 1.28 s.
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        await leg.answer()

    config = SipConfig(timers=Timers(t1=0.02, t2=0.2), max_calls=1)
    async with SipEndpoint("127.0.0.1", 0, config=config, on_incoming_call=on_call) as uas:
        peer = _udp_peer()
        try:
            start = time.monotonic()
            peer.sendto(invite(call_id="junk-1"), ("127.0.0.1", uas.port))  # and never an ACK
            got = await _recv_until(peer, b"BYE ", 3)
            assert got[0].startswith(b"SIP/2.0 100") and sum(g.startswith(b"SIP/2.0 200") for g in got) > 3
            ended = await asyncio.wait_for(legs[0].wait_ended(), 1)
            assert isinstance(ended, CallFailed) and (ended.status, ended.by) == (408, "timeout")
            assert 1.2 <= time.monotonic() - start < 2.5
            assert uas.core is not None and uas.core.active_calls == 0 and uas.stats["ack_timeouts"] == 1
            peer.sendto(invite(call_id="next", branch="z9hG4bK-next"), ("127.0.0.1", uas.port))
            await _recv_until(peer, b"SIP/2.0 200", 2)  # the slot is free: answered, not 503
            assert [leg.call_id for leg in legs] == ["junk-1", "next"]
        finally:
            peer.close()


async def test_an_incoming_call_never_answered_is_refused_480_at_alerting_timeout() -> None:
    offered: list[SipCallLeg] = []
    config = SipConfig(alerting_timeout=0.3)
    async with SipEndpoint("127.0.0.1", 0, config=config, on_incoming_call=offered.append) as uas:
        peer = _udp_peer()
        try:
            start = time.monotonic()
            peer.sendto(invite(), ("127.0.0.1", uas.port))
            got = await _recv_until(peer, b"SIP/2.0 480", 3)
            assert got[0].startswith(b"SIP/2.0 100") and 0.25 <= time.monotonic() - start < 1.5
            ended = await asyncio.wait_for(offered[0].wait_ended(), 1)
            assert isinstance(ended, CallFailed) and (ended.status, ended.by) == (480, "timeout")
            assert offered[0].state == "ended" and uas.stats["alerting_timeouts"] == 1
        finally:
            peer.close()
