"""REFER between two SipEndpoints on loopback, over UDP and TCP: one leg transfers, the other accepts
and reports its progress in NOTIFYs; the transferor's leg gets them as events."""

from __future__ import annotations

import asyncio

import pytest

from voxline.sip import SipCallLeg, SipEndpoint
from voxline.sip.endpoint import LegEvent
from voxline.sip.events import ReferAccepted, ReferEnded, ReferProgress, ReferReceived, Transport


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_refer_accept_and_notifies_between_two_endpoints(transport: Transport) -> None:
    legs: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        legs.append(leg)
        await leg.answer()

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as agent,
        SipEndpoint("127.0.0.1", 0) as phone,
    ):
        suffix = ";transport=tcp" if transport == "tcp" else ""
        caller = await phone.call(f"sip:agent@127.0.0.1:{agent.port}{suffix}", transport=transport)
        asked: list[ReferReceived] = []

        def on_phone_event(event: LegEvent) -> None:
            if isinstance(event, ReferReceived):  # the phone follows the REFER, as baresip does
                asked.append(event)
                caller.accept_refer()
                caller.notify_refer(180)
                caller.notify_refer(486, "Busy Here")

        caller.add_listener(on_phone_event)
        await asyncio.wait_for(caller.wait_connected(), 3)
        while not legs or legs[0].state != "connected":
            await asyncio.sleep(0.01)
        got: list[LegEvent] = []
        ended = asyncio.get_running_loop().create_future()

        def on_agent_event(event: LegEvent) -> None:
            got.append(event)
            if isinstance(event, ReferEnded) and not ended.done():
                ended.set_result(event)

        legs[0].add_listener(on_agent_event)
        legs[0].transfer("sip:human@127.0.0.1:5999", {"X-Queue": "sales"})
        await asyncio.wait_for(ended, 5)
        call_id = legs[0].call_id
        assert [e for e in got if not isinstance(e, ReferAccepted)] == [
            ReferProgress(call_id, 100, "Trying"),
            ReferProgress(call_id, 180, "Ringing"),
            ReferEnded(call_id, 486, "Busy Here"),
        ]
        assert ReferAccepted(call_id) in got
        assert asked[0].refer_to == "sip:human@127.0.0.1:5999"
        assert asked[0].headers.get("X-Queue") == "sales" and asked[0].referred_by
        assert legs[0].state == "connected" and caller.state == "connected"  # a failure keeps the call
