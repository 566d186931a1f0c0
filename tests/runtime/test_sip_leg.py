"""``SipLeg`` on the SIP endpoint's media clock: playout reports read the RTP sender right after it ticks."""

from __future__ import annotations

from typing import Any

from voxline.media.clock import VirtualMediaClock
from voxline.runtime.legs import SipLeg

from ..sip.loopback import loopback_call

SPEECH = b"\x31" * 160


class FakeCall:
    """What ``SipLeg`` reports to: the played positions, with the clock time of each report."""

    def __init__(self, clock: VirtualMediaClock) -> None:
        self.clock = clock
        self.played: list[tuple[int, int]] = []

    def _leg_played(self, position_ms: int) -> None:
        self.played.append((self.clock.now_ms(), position_ms))

    def _leg_audio(self, frame: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:  # _leg_connected, _leg_disconnected ...
        return lambda *args: None


async def test_audio_is_acknowledged_in_the_tick_it_leaves_in() -> None:
    clock = VirtualMediaClock()
    async with loopback_call(clock=clock) as (caller, _):
        call = FakeCall(clock)
        leg = SipLeg(caller)
        leg.attach(call)  # type: ignore[arg-type]

        def playout(tick_ms: int) -> None:  # order 0: one frame in each of the ticks 40, 60, 80
            if 40 <= tick_ms <= 80:
                leg.send_audio(SPEECH, end_ms=tick_ms - 20)

        clock.subscribe(playout)
        # A frame delivered between ticks, like the first frame of a talkspurt.
        clock.call_at(130, lambda: leg.send_audio(SPEECH, end_ms=80))
        clock.run_ticks(8)
        # Reporting subscribes with the first frame, from inside tick 40, so it starts on tick 60
        # and finds both frames sent by then; from then on each frame is reported in the tick that
        # sent it (order 2, after the sender's order 1), also the one delivered between ticks.
        assert call.played == [(60, 40), (80, 60), (140, 80)]
        assert caller.sent_ms == 80
        assert clock.subscriber_count == 2  # the playout and the RTP sender: reporting idles
