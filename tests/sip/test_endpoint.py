"""SipEndpoint to SipEndpoint on loopback: TCP, DTMF both ways, barge-in clear, outbound cancel."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from voxline.audio import Frame
from voxline.callstate import CallState
from voxline.media.clock import AsyncioMediaClock, VirtualMediaClock
from voxline.rtp import DtmfDigit, RtpPacket
from voxline.sip import CallDisconnected, CallFailed, CallProgress, SipCallLeg, SipConfig, SipEndpoint
from voxline.sip.dialog import DialogState

from .loopback import loopback_call


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
    async with loopback_call() as (caller, _):
        caller.send_audio(b"\x31" * 8000)  # 1 s
        while caller.sent_ms < 200:
            await asyncio.sleep(0.01)
        dropped = caller.clear_audio()
        sent = caller.sent_ms
        assert dropped + sent == 1000 and caller.queued_ms == 0
        await asyncio.sleep(0.1)
        assert caller.sent_ms == sent  # nothing more of it left after the clear


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
        while caller.state != "proceeding":
            await asyncio.sleep(0.01)
        caller.hangup()
        ended = await asyncio.wait_for(legs[0].wait_ended(), 3)
        assert isinstance(ended, CallFailed) and (ended.status, ended.by) == (487, "remote")
        mine = await caller.wait_ended()
        assert isinstance(mine, CallFailed) and mine.by == "local"


async def test_leg_states_are_the_dialog_states_on_both_sides() -> None:
    seen: dict[str, list[DialogState]] = {"callee": [], "caller": []}
    callee_legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        callee_legs.append(leg)
        seen["callee"].append(leg.state)
        leg.ringing()
        seen["callee"].append(leg.state)
        await leg.answer()
        seen["callee"].append(leg.state)

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        seen["caller"].append(caller.state)
        caller.add_listener(lambda event: seen["caller"].append(caller.state))
        await asyncio.wait_for(caller.wait_connected(), 3)
        callee = callee_legs[0]
        while callee.state is not DialogState.CONNECTED:
            await asyncio.sleep(0.01)
        caller.hangup()
        await asyncio.wait_for(callee.wait_ended(), 3)
        assert callee.state is DialogState.ENDED and caller.state is DialogState.ENDED
    S = DialogState
    assert seen["callee"] == [S.INCOMING, S.EARLY, S.ANSWERING]
    assert seen["caller"] == [S.CALLING, S.PROCEEDING, S.CONNECTED, S.ENDED]  # 180, 200, our BYE
    assert caller.state.call_state is CallState.ENDED


async def test_reject_with_chosen_code() -> None:
    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=lambda leg: leg.reject(486, "Busy Here")) as uas,
        SipEndpoint("127.0.0.1", 0) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        ended = await asyncio.wait_for(caller.wait_ended(), 3)
        assert isinstance(ended, CallFailed) and (ended.status, ended.reason) == (486, "Busy Here")


async def test_the_endpoint_clock_drives_the_rtp_senders() -> None:
    clock = VirtualMediaClock()
    heard: list[Frame] = []

    def listen(callee: SipCallLeg) -> None:
        callee.on_audio = heard.append

    async with loopback_call(clock=clock, prepare=listen) as (caller, callee):
        assert caller.clock is clock and caller.rtp is not None and caller.rtp.started
        assert clock.subscriber_count == 1  # the call's RTP sender, subscribed when it connected
        caller.send_audio(b"\x31" * 480)
        await asyncio.sleep(0.1)
        # The clock has not ticked: only the talkspurt's first frame, which leaves at once.
        assert [f.data for f in heard] == [b"\x31" * 160]
        clock.run_ticks(2)  # two ticks of the endpoint's clock: the two other frames, nothing else
        await asyncio.sleep(0.1)
        assert [f.data for f in heard] == [b"\x31" * 160] * 3
        caller.hangup()
        await asyncio.wait_for(callee.wait_ended(), 3)
        assert clock.subscriber_count == 0  # unsubscribed when the call's media closed
        assert caller.rtp.closed and not caller.rtp.started


async def test_audio_sent_from_a_tick_of_the_loop_clock_leaves_in_that_tick() -> None:
    # A playout delivers a frame to the call on a tick of the loop's shared clock (order 0); the
    # call's RTP sender is on the same clock (order 1), so the packet carrying the frame is the one
    # sent in that very tick, not in a tick of a second clock up to 20 ms later.
    clock = AsyncioMediaClock.for_loop()
    async with loopback_call() as (caller, callee):
        assert caller.clock is clock and callee.clock is clock
        assert caller.rtp is not None and callee.rtp is not None
        session, callee_rtp = caller.rtp.session, callee.rtp

        # What the callee's socket gets, with the clock time it arrived at.
        arrived: list[tuple[int, RtpPacket]] = []
        deliver = callee_rtp.datagram_received

        def spy(data: bytes, addr: tuple[Any, ...]) -> None:
            arrived.append((clock.now_ms(), RtpPacket.parse(data)))
            deliver(data, addr)

        callee_rtp.datagram_received = spy  # type: ignore[method-assign]

        # What the caller's sender hands to its socket, by the tick it does so in.
        ticks: list[int] = []
        handed: list[tuple[int, RtpPacket]] = []
        data_to_send = session.data_to_send

        def handed_over() -> list[tuple[bytes, tuple[str, int]]]:
            out = data_to_send()
            handed.extend((ticks[-1], RtpPacket.parse(data)) for data, _ in out)
            return out

        session.data_to_send = handed_over  # type: ignore[method-assign]

        enqueued: list[tuple[int, int]] = []  # (tick, sent_ms seen right after the sender's tick)

        def playout(tick_ms: int) -> None:  # order 0, like a playout
            ticks.append(tick_ms)
            if len(ticks) == 5:
                caller.send_audio(b"\x31" * 160)

        def watcher(tick_ms: int) -> None:  # order 2, like SipLeg._check_sent
            if len(ticks) == 5:
                enqueued.append((tick_ms, caller.sent_ms))

        subscriptions = [clock.subscribe(watcher, order=2), clock.subscribe(playout, order=0)]
        for _ in range(100):
            if any(p.payload == b"\x31" * 160 for _, p in arrived) and len(ticks) > 8:
                break
            await asyncio.sleep(0.02)
        for subscription in subscriptions:
            clock.unsubscribe(subscription)

        tick = ticks[4]
        assert enqueued == [(tick, 20)]  # the frame had left the socket by the end of its tick
        sent = [(t, p) for t, p in handed if p.payload == b"\x31" * 160]
        assert [t for t, _ in sent] == [tick]  # handed to the socket in the tick it was enqueued in
        got = [p for _, p in arrived if p.payload == b"\x31" * 160]
        assert [(p.sequence, p.timestamp, p.marker) for p in got] == [
            (sent[0][1].sequence, sent[0][1].timestamp, True)
        ]
        # The packets before and after it are the previous and the next tick's (one per tick).
        before = [p for t, p in handed if t == tick - 20]
        after = [p for t, p in handed if t == tick + 20]
        assert [p.sequence for p in before] == [(got[0].sequence - 1) & 0xFFFF]
        assert [p.sequence for p in after] == [(got[0].sequence + 1) & 0xFFFF]
        arrival = next(t for t, p in arrived if p.payload == b"\x31" * 160)
        assert arrival >= tick


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


async def test_start_leaves_the_given_config_as_it_was() -> None:
    config = SipConfig(max_calls=3)
    async with SipEndpoint("127.0.0.1", 0, config=config, transports=("udp",)) as ep:
        assert (config.port, config.host) == (5060, "127.0.0.1")  # the defaults, not written to
        assert ep.core is not None and ep.core.config is ep.config
        assert (ep.config.port, ep.config.max_calls) == (ep.port, 3) and ep.port != 5060
