"""``RtpEndpoint`` on the media clock: real UDP sockets on loopback, a virtual clock for the timing."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Iterator

import pytest

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


async def test_a_talkspurt_leaves_at_once_and_a_paced_source_sends_in_its_own_ticks(
    peer: socket.socket,
) -> None:
    # One pacer: the source (a playout, order 0) delivers in its tick and the sender (order 1)
    # sends in that same instant; the first frame of a talkspurt does not wait for a slot.
    clock = VirtualMediaClock()
    endpoint, _ = await open_endpoint(clock, peer)
    endpoint.start()
    clock.run_ticks(2)
    first = received(peer)
    assert [p.payload for p in first] == [SILENCE, SILENCE]  # silence while nothing plays

    clock.advance(7)  # t = 47: model audio arrives between two slots
    endpoint.push_audio(SPEECH, 20)
    (start,) = received(peer)
    assert start.payload == SPEECH and start.marker and endpoint.session.played_ms == 20
    assert start.timestamp == (first[0].timestamp + (47 - 20) * 8) & 0xFFFFFFFF  # true to time

    sent_at: list[int] = []

    def source(tick_ms: int) -> None:  # the playout: ticking on the phase of the talkspurt
        sent_at.append(tick_ms)
        endpoint.push_audio(SPEECH, 20 + 20 * len(sent_at))

    clock.subscribe(source, phase_ms=7)
    per_tick: list[list[RtpPacket]] = []
    for _ in range(3):
        clock.advance(20)
        per_tick.append(received(peer))
    assert sent_at == [67, 87, 107]
    assert [len(packets) for packets in per_tick] == [1, 1, 1]  # one packet per slot, no silence between
    stamps = [start.timestamp] + [packets[0].timestamp for packets in per_tick]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
    assert endpoint.session.played_ms == 80
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


async def test_after_a_stall_the_clocks_catch_up_ticks_each_send_their_slot(
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

    # A one-second stall: the clock's stall policy (its last max_catch_up ticks) is RTP's too.
    loop.fire_next(lateness=1.0)
    resumed = received(peer)
    assert len(resumed) == clock.max_catch_up
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(resumed))
    assert (resumed[0].timestamp - burst[-1].timestamp) % 160 == 0  # the skipped slots kept real time
    loop.fire_next()
    (nxt,) = received(peer)
    assert nxt.timestamp - resumed[-1].timestamp == 160  # on the grid again
    endpoint.close()
