"""``SipLeg`` on the SIP endpoint's media clock: audio leaves in the tick it is captured in, and
``played_ms`` is the RTP sender's real send position, read whenever the source asks."""

from __future__ import annotations

from voxline.media.clock import VirtualMediaClock
from voxline.runtime.call import Call
from voxline.runtime.legs import SipLeg

from ..sip.loopback import loopback_call

SPEECH = b"\x31" * 160


async def test_played_ms_is_what_has_left_the_socket_tick_by_tick() -> None:
    clock = VirtualMediaClock()
    async with loopback_call(clock=clock) as (caller, _):
        leg = SipLeg(caller)
        Call(leg)  # attaches itself; the test drives the leg's media side directly
        seen: list[tuple[int, int | None]] = []

        def playout(tick_ms: int) -> None:  # order 0: one frame in each of the ticks 40, 60, 80
            if 40 <= tick_ms <= 80:
                leg.capture_frame(SPEECH, tick_ms - 20)

        def watcher(tick_ms: int) -> None:  # order 2: what a barge-in would read after the tick
            seen.append((tick_ms, leg.played_ms()))

        clock.subscribe(playout)
        clock.subscribe(watcher, order=2)
        # A frame captured between ticks, like the first frame of a new talkspurt: it leaves at once.
        clock.call_at(130, lambda: leg.capture_frame(SPEECH, 80))
        clock.call_at(130, lambda: seen.append((130, leg.played_ms())))
        clock.run_ticks(8)
        assert seen[1:4] == [(40, 20), (60, 40), (80, 60)]  # each frame counted in its own tick
        assert (130, 80) in seen  # the talkspurt's first frame: sent, and counted, at once
        assert caller.sent_ms == 80
        leg.clear_buffer()
        assert leg.played_ms() == 80  # a clear keeps what has left
