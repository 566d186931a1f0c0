"""One answered SIP call between two ``SipEndpoint``s on 127.0.0.1, for the tests that need a call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from voxline.media.clock import MediaClock
from voxline.sip import SipCallLeg, SipEndpoint


@asynccontextmanager
async def loopback_call(
    *, clock: MediaClock | None = None, prepare: Callable[[SipCallLeg], None] | None = None
) -> AsyncIterator[tuple[SipCallLeg, SipCallLeg]]:
    """Yield ``(caller, callee)`` once connected. ``clock`` drives the caller's RTP (default: the
    loop's clock); ``prepare(callee)`` runs before the callee answers. The caller hangs up at the end
    unless the test ended the call."""
    callees: list[SipCallLeg] = []

    async def on_call(leg: SipCallLeg) -> None:
        callees.append(leg)
        if prepare is not None:
            prepare(leg)
        await leg.answer()

    async with (
        SipEndpoint("127.0.0.1", 0, on_incoming_call=on_call) as uas,
        SipEndpoint("127.0.0.1", 0, clock=clock) as uac,
    ):
        caller = await uac.call(f"sip:agent@127.0.0.1:{uas.port}")
        await asyncio.wait_for(caller.wait_connected(), 3)
        yield caller, callees[0]
        if caller.state != "ended":
            caller.hangup()
            await asyncio.wait_for(callees[0].wait_ended(), 3)
