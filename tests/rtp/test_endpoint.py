"""``RtpEndpoint`` on the media clock: real UDP sockets on loopback, a virtual clock for the timing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from voxline.audio import FRAME_MS
from voxline.media.clock import AsyncioMediaClock, VirtualMediaClock
from voxline.rtp import RtpEndpoint, RtpPacket, RtpSession, RtpTimeout, build_packet
from voxline.rtp.session import RtpEvent

from ..media.helpers import FakeLoop

SILENCE = b"\xff" * 160  # one 20 ms PCMU frame of silence
SPEECH = b"\x31" * 160


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """The far end: a plain blocking UDP socket on loopback."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    yield s
    s.close()


def received(peer: socket.socket) -> list[RtpPacket]:
    """Every packet waiting at ``peer`` (sendto on loopback has delivered it when it returns)."""
    packets = []
    peer.setblocking(False)
    try:
        while True:
            packets.append(RtpPacket.parse(peer.recv(2048)))
    except BlockingIOError:
        pass
    finally:
        peer.settimeout(2.0)
    return packets


async def open_endpoint(
    clock: VirtualMediaClock | AsyncioMediaClock, peer: socket.socket, **session_args: object
) -> tuple[RtpEndpoint, list[RtpEvent]]:
    events: list[RtpEvent] = []
    session = RtpSession(remote_addr=peer.getsockname(), now_ms=clock.now_ms(), **session_args)  # type: ignore[arg-type]
    endpoint = await RtpEndpoint.create(session, "127.0.0.1", 0, events.append, clock=clock)
    return endpoint, events


@pytest.mark.parametrize(("source_order", "ticks_late"), [(0, 0), (2, 1)])
async def test_a_frame_enqueued_by_a_source_in_a_tick_leaves_in_that_tick(
    peer: socket.socket, source_order: int, ticks_late: int
) -> None:
    # The source subscribes AFTER the sender: the order, not who came first, puts it before the
    # sender in the same instant. The control case (a source of order 2, after the sender) is what
    # a second, separate RTP clock amounted to: the frame waits for the sender's next tick.
    clock = VirtualMediaClock()
    endpoint, _ = await open_endpoint(clock, peer)
    endpoint.start()
    clock.run_ticks(2)
    first = received(peer)
    assert [p.payload for p in first] == [SILENCE, SILENCE]  # silence while nothing plays

    enqueued_at: list[int] = []

    def source(tick_ms: int) -> None:
        if not enqueued_at:
            enqueued_at.append(tick_ms)
            endpoint.session.enqueue(SPEECH)

    clock.subscribe(source, order=source_order)
    per_tick: list[list[RtpPacket]] = []
    for _ in range(3):
        clock.run_ticks(1)
        per_tick.append(received(peer))

    assert enqueued_at == [60]  # the third tick: t = 3 * 20 ms
    assert all(len(packets) == 1 for packets in per_tick)  # one packet per tick, nothing in between
    payloads = [packets[0].payload for packets in per_tick]
    expected = [SILENCE] * 3
    expected[ticks_late] = SPEECH
    assert payloads == expected
    speech = per_tick[ticks_late][0]
    # The packet of that tick: one slot after the first packet per tick, timestamps 160 per slot.
    slot = 2 + ticks_late
    assert speech.sequence == (first[0].sequence + slot) & 0xFFFF
    assert speech.timestamp == (first[0].timestamp + slot * 160) & 0xFFFFFFFF
    assert speech.marker  # the start of a talkspurt
    assert endpoint.session.sent_ms == FRAME_MS
    endpoint.close()
    assert clock.subscriber_count == 1  # only the source: close() unsubscribed the sender


async def test_received_datagrams_and_ticks_share_the_clock_timeline(peer: socket.socket) -> None:
    clock = VirtualMediaClock(start_ms=5_000)
    endpoint, events = await open_endpoint(clock, peer, inactivity_timeout_ms=100)
    endpoint.start()
    clock.run_ticks(3)  # t = 5060
    peer.sendto(build_packet(0, 1, 0, 0x1234, SPEECH, True), endpoint.local_addr)
    for _ in range(100):
        if endpoint.session.stats["received"]:
            break
        await asyncio.sleep(0.005)
    assert endpoint.session.stats["received"] == 1  # stamped with clock.now_ms() = 5060
    clock.advance_to(5_140)
    assert not any(isinstance(e, RtpTimeout) for e in events)  # 80 ms since the packet
    clock.advance_to(5_160)
    assert [e for e in events if isinstance(e, RtpTimeout)] == [RtpTimeout(100)]
    endpoint.close()


async def test_start_is_idempotent_and_a_closed_endpoint_does_not_subscribe(peer: socket.socket) -> None:
    clock = VirtualMediaClock()
    endpoint, _ = await open_endpoint(clock, peer)
    endpoint.start()
    endpoint.start()
    assert clock.subscriber_count == 1 and endpoint.started
    clock.run_ticks(1)
    assert len(received(peer)) == 1
    endpoint.stop()
    clock.run_ticks(2)
    assert received(peer) == [] and clock.subscriber_count == 0
    endpoint.close()
    endpoint.start()
    assert clock.subscriber_count == 0 and not endpoint.started


async def test_after_a_stall_at_most_5_slots_go_out_at_once_then_the_schedule_jumps(
    peer: socket.socket,
) -> None:
    loop = FakeLoop()
    clock = AsyncioMediaClock(loop)
    endpoint, _ = await open_endpoint(clock, peer)
    endpoint.start()
    loop.fire_next()  # tick 20
    (first,) = received(peer)

    loop.fire_next(lateness=0.080)  # the loop was 80 ms late: ticks 40..120 run back to back
    burst = received(peer)
    assert [p.sequence - first.sequence for p in burst] == [1, 2, 3, 4, 5]
    assert [p.timestamp - first.timestamp for p in burst] == [160, 320, 480, 640, 800]

    loop.fire_next(lateness=0.100)  # 100 ms late: 6 ticks due (140..240), more than 5 slots
    (jumped,) = received(peer)  # no burst: one packet, timestamps keep real time
    assert jumped.sequence - first.sequence == 6
    assert jumped.timestamp - first.timestamp == 11 * 160  # the slot of tick 240
    assert jumped.marker
    assert endpoint.session.stats["skipped_slots"] == 5

    loop.fire_next(lateness=1.0)  # a one-second stall: the clock runs its last 10 ticks; RTP sends one
    (resumed,) = received(peer)
    assert resumed.timestamp - first.timestamp == 62 * 160  # the slot of tick 1260
    loop.fire_next()
    assert [p.timestamp - first.timestamp for p in received(peer)] == [63 * 160]  # on the grid again
    endpoint.close()
