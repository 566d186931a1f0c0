"""SipEndpoint to SipEndpoint on loopback: TCP, DTMF both ways, barge-in clear, outbound cancel."""

from __future__ import annotations

import asyncio
import socket

import pytest

from voxline.audio import Frame
from voxline.rtp import DtmfDigit
from voxline.sip import CallDisconnected, CallFailed, CallProgress, SipCallLeg, SipEndpoint


async def test_call_over_tcp_with_audio_and_dtmf_both_ways() -> None:
    heard: list[Frame] = []
    digits: list[str] = []
    callee_legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        callee_legs.append(leg)
        leg.on_audio = heard.append
        leg.add_listener(lambda ev: digits.append(ev.digit) if isinstance(ev, DtmfDigit) else None)
        leg.ringing()
        await leg.answer()

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(
            f"sip:agent@127.0.0.1:{uas.port};transport=tcp", transport="tcp", caller_id="777"
        )
        progress: list[object] = []
        caller.add_listener(progress.append)
        await asyncio.wait_for(caller.wait_connected(), 3)
        assert any(isinstance(p, CallProgress) and p.status == 180 for p in progress)
        callee = callee_legs[0]
        assert callee.caller_id == "777" and (callee.headers.get("Via") or "").startswith("SIP/2.0/TCP")
        caller.send_audio(b"\x31" * 160 * 5)
        caller.send_dtmf("12#")
        for _ in range(100):
            if len(digits) == 3:
                break
            await asyncio.sleep(0.02)
        assert digits == ["1", "2", "#"]
        assert b"\x31" * 160 * 5 in b"".join(f.data for f in heard)
        callee.hangup()  # BYE goes back over the same TCP connection
        ended = await asyncio.wait_for(caller.wait_ended(), 3)
        assert isinstance(ended, CallDisconnected) and ended.by == "remote"


async def test_clear_drops_queued_audio_and_sent_ms_counts_only_what_left() -> None:
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        await leg.answer()

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        await asyncio.wait_for(caller.wait_connected(), 3)
        caller.send_audio(b"\x31" * 8000)  # 1 s
        while caller.sent_ms < 200:
            await asyncio.sleep(0.01)
        dropped = caller.clear_audio()
        sent = caller.sent_ms
        assert dropped + sent == 1000 and caller.queued_ms == 0
        await asyncio.sleep(0.1)
        assert caller.sent_ms == sent  # nothing more of it left after the clear
        caller.hangup()
        await asyncio.wait_for(legs[0].wait_ended(), 3)


async def test_outbound_hangup_while_ringing_cancels() -> None:
    legs: list[SipCallLeg] = []

    def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        leg.ringing()

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        while caller.state != "progress":
            await asyncio.sleep(0.01)
        caller.hangup()
        ended = await asyncio.wait_for(legs[0].wait_ended(), 3)
        assert isinstance(ended, CallFailed) and (ended.status, ended.by) == (487, "remote")
        mine = await caller.wait_ended()
        assert isinstance(mine, CallFailed) and mine.by == "local"


async def test_reject_with_chosen_code() -> None:
    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=lambda leg: leg.reject(486, "Busy Here")) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        ended = await asyncio.wait_for(caller.wait_ended(), 3)
        assert isinstance(ended, CallFailed) and (ended.status, ended.reason) == (486, "Busy Here")


class ManualClock:
    """The application's own media clock: the endpoint only adds and removes its senders."""

    def __init__(self) -> None:
        self.members: set[object] = set()

    def add(self, member: object) -> None:
        self.members.add(member)

    def discard(self, member: object) -> None:
        self.members.discard(member)


async def test_an_external_clock_drives_the_rtp_senders() -> None:
    clock = ManualClock()
    heard: list[Frame] = []
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        leg.on_audio = heard.append
        await leg.answer()

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as uas,
        SipEndpoint(
            "127.0.0.1",
            0,
            rtp_clock=clock,
        ) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        await asyncio.wait_for(caller.wait_connected(), 3)
        assert clock.members == {caller.rtp}
        caller.send_audio(b"\x31" * 480)
        assert caller.rtp is not None
        for n in range(3):  # three ticks of the application's clock: three packets, nothing else
            caller.rtp.tick(1000.0 + 20 * n)
        await asyncio.sleep(0.1)
        assert [f.data for f in heard] == [b"\x31" * 160] * 3
        caller.hangup()
        await asyncio.wait_for(legs[0].wait_ended(), 3)
        assert clock.members == set()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_call_over_ipv6_loopback() -> None:
    heard: list[Frame] = []
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        leg.on_audio = heard.append
        await leg.answer()

    async with SipEndpoint("::1", 0, on_incoming_call=on_call) as uas, SipEndpoint("::1", 0) as uac:
        caller = await uac.call(f"sip:agent@[::1]:{uas.port}")
        await asyncio.wait_for(caller.wait_connected(), 3)
        assert caller.media is not None and caller.media.remote_host == "::1"  # c=IN IP6 ::1
        caller.send_audio(b"\x33" * 800)
        for _ in range(50):
            if b"\x33" * 800 in b"".join(f.data for f in heard):
                break
            await asyncio.sleep(0.02)
        assert b"\x33" * 800 in b"".join(f.data for f in heard)
        caller.hangup()
        ended = await asyncio.wait_for(legs[0].wait_ended(), 3)
        assert isinstance(ended, CallDisconnected) and ended.by == "remote"


async def test_wildcard_listen_advertises_the_address_facing_the_caller() -> None:
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        await leg.answer()

    # Listening on all interfaces (the runtime's default); the caller and all traffic stay on loopback.
    async with SipEndpoint("0.0.0.0", 0, on_incoming_call=on_call) as uas, SipEndpoint("127.0.0.1", 0) as uac:
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        await asyncio.wait_for(caller.wait_connected(), 3)
        assert caller.media is not None and caller.media.remote_host == "127.0.0.1"  # not 0.0.0.0
        caller.hangup()
        await asyncio.wait_for(legs[0].wait_ended(), 3)
