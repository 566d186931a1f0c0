"""RTP packets, reorder buffer, DTMF and the session core on a virtual clock (no sockets)."""

from __future__ import annotations

import itertools
import struct

import pytest

from voxline.audio import PCMA_8K, PCMU_8K, Frame
from voxline.rtp import DtmfDigit, DtmfReceiver, JitterBuffer, RtpError, RtpPacket, RtpSession, RtpTimeout
from voxline.rtp.dtmf import build_event, parse_event

PEER = ("127.0.0.1", 40000)


def pkt(seq: int, ts: int | None = None, payload: bytes = b"\x11" * 160, pt: int = 0, ssrc: int = 7,
        marker: bool = False) -> bytes:  # fmt: skip
    return RtpPacket(
        pt, seq & 0xFFFF, (ts if ts is not None else seq * 160) & 0xFFFFFFFF, ssrc, payload, marker
    ).to_bytes()


# ------------------------------------------------------------------------------------- packets


def test_packet_round_trip() -> None:
    data = RtpPacket(8, 65535, 2**32 - 1, 0xDEADBEEF, b"abc", True).to_bytes()
    assert data[:2] == b"\x80\x88" and len(data) == 15
    p = RtpPacket.parse(data)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.payload, p.marker) == (
        8, 65535, 2**32 - 1, 0xDEADBEEF, b"abc", True)  # fmt: skip


def test_csrc_extension_and_padding_are_skipped() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 1, 160, 9)
    csrc = struct.pack("!II", 1, 2)
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x00\x00\x00\x00"
    data = header + csrc + ext + b"payload" + b"\x00\x00\x03"
    p = RtpPacket.parse(data)
    assert p.csrc == (1, 2) and p.payload == b"payload"


BAD_PACKETS = [
    b"",
    b"\x80\x00",
    b"\x40" + bytes(11),  # version 1
    struct.pack("!BBHII", 0x82, 0, 1, 1, 1) + b"\x00",  # 2 CSRCs announced, none there
    struct.pack("!BBHII", 0x90, 0, 1, 1, 1) + b"\x00\x00\x00\x09",  # extension longer than the packet
    struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"\x09",  # padding longer than the packet
]


@pytest.mark.parametrize("data", BAD_PACKETS)
def test_invalid_packets_raise_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


# ------------------------------------------------------------------------------------- jitter


def packets(*seqs: int, ssrc: int = 7) -> list[RtpPacket]:
    return [RtpPacket.parse(pkt(s, ssrc=ssrc)) for s in seqs]


def test_reorder_within_window_late_and_duplicates_dropped() -> None:
    jb = JitterBuffer(depth=3, max_wait_ms=60)
    out: list[int] = []
    for i, p in enumerate(packets(10, 12, 11, 13, 13, 9, 15, 14)):
        out += [q.sequence for q in jb.push(p, i * 20.0)]
    assert out == [10, 11, 12, 13, 14, 15]
    assert (jb.duplicates, jb.late, jb.reordered) == (1, 1, 2)


def test_gap_is_skipped_when_depth_exceeded_or_after_max_wait() -> None:
    jb = JitterBuffer(depth=3, max_wait_ms=60)
    out = [q.sequence for q in jb.push(packets(1)[0], 0)]
    for i, p in enumerate(packets(3, 4, 5), start=1):
        out += [q.sequence for q in jb.push(p, i * 20.0)]
    assert out == [1]  # waiting for 2
    out += [q.sequence for q in jb.push(packets(6)[0], 80.0)]
    assert out == [1, 3, 4, 5, 6] and jb.lost == 1
    jb2 = JitterBuffer(depth=3, max_wait_ms=60)
    jb2.push(packets(1)[0], 0)
    jb2.push(packets(3)[0], 20)
    assert jb2.poll(70) == []
    assert [p.sequence for p in jb2.poll(80)] == [3]


def test_reset_on_ssrc_change_and_big_jump_and_wraparound() -> None:
    jb = JitterBuffer()
    out = [q.sequence for p in packets(65534, 65535, 0, 1) for q in jb.push(p, 0)]
    assert out == [65534, 65535, 0, 1]
    assert [q.sequence for q in jb.push(packets(500, ssrc=8)[0], 0)] == [500]
    assert [q.sequence for q in jb.push(packets(30000, ssrc=8)[0], 0)] == [30000]
    assert jb.resets == 2


# ------------------------------------------------------------------------------------- DTMF


def test_dtmf_receiver_dedupes_by_timestamp_and_reports_on_end() -> None:
    rx = DtmfReceiver()
    got = []
    for duration in (160, 320, 480):
        got.append(rx.receive(1000, build_event(5, False, duration), 0))
    for _ in range(3):
        got.append(rx.receive(1000, build_event(5, True, 800), 0))
    digits = [d for d in got if d is not None]
    assert digits == [DtmfDigit("5", 100, 1000)]
    # The next key press with all end packets lost: reported when another event starts, or on expiry.
    assert rx.receive(5000, build_event(11, False, 160), 10) is None
    assert rx.receive(9000, build_event(10, False, 160), 20) == DtmfDigit("#", 20, 5000)
    assert rx.expire(100) is None
    assert rx.expire(400) == DtmfDigit("*", 20, 9000)
    assert rx.receive(1, b"\x00", 0) is None and rx.ignored == 1


# ------------------------------------------------------------------------------------- session: send


def run(session: RtpSession, until_ms: int, step: int = 20, start: int = 0) -> list[RtpPacket]:
    """Tick ``session`` on its slots from ``start`` to ``until_ms``; what it sent."""
    sent: list[RtpPacket] = []
    t = start
    while t <= until_ms:
        session.tick(t)
        sent += [RtpPacket.parse(d) for d, _ in session.data_to_send()]
        t += step
    return sent


def sent_now(session: RtpSession) -> list[RtpPacket]:
    return [RtpPacket.parse(d) for d, _ in session.data_to_send()]


def test_paced_sending_with_silence_sequence_timestamps_and_marker() -> None:
    s = RtpSession(remote_addr=PEER, ssrc=1)
    sent = run(s, 60)  # 4 ticks, nothing queued: encoded silence keeps the stream (and NATs) open
    assert [p.payload for p in sent] == [b"\xff" * 160] * 4
    assert [p.marker for p in sent] == [True, False, False, False]
    # A source paced on the same grid pushes a frame, then the sender ticks, in each instant.
    for t, end in ((80, 20), (100, 40), (120, 50)):
        s.push_audio(b"\x01" * (160 if end != 50 else 80), end, t)
        sent += sent_now(s)
        s.tick(t)
        sent += sent_now(s)
    sent += run(s, 180, start=140)  # the half frame goes out padded after waiting one slot
    seqs = [p.sequence for p in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    stamps = [p.timestamp for p in sent]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))  # on the 20 ms grid
    audio = [p for p in sent if p.payload != b"\xff" * 160]
    assert [p.payload.count(1) for p in audio] == [160, 160, 80]
    assert audio[0].marker and not audio[1].marker  # talkspurt start
    assert s.played_ms == 50 and s.queued_ms == 0


def test_a_talkspurt_starts_at_once_and_the_slots_follow_its_phase() -> None:
    s = RtpSession(remote_addr=PEER, ssrc=1)
    silence_packets = run(s, 100)  # silence on the 0 ms grid
    # Model audio arrives at 107: it leaves at once, not at the 120 ms slot.
    s.push_audio(b"\x01" * 160, 20, 107)
    first = sent_now(s)
    assert len(first) == 1 and first[0].marker and first[0].payload == b"\x01" * 160
    assert s.phase_ms == 7 and s.played_ms == 20
    # The timestamp tells the truth: 7 ms (56 samples) after the last silence packet.
    assert (first[0].timestamp - silence_packets[-1].timestamp) & 0xFFFFFFFF == 56
    s.tick(107)  # the sender's own tick in the same instant: the slot is taken, nothing more
    assert sent_now(s) == []
    s.push_audio(b"\x02" * 160, 40, 127)  # the next frame, at the source's next tick
    s.tick(127)
    nxt = sent_now(s)
    assert [p.payload for p in nxt] == [b"\x02" * 160] and not nxt[0].marker
    assert (nxt[0].timestamp - first[0].timestamp) & 0xFFFFFFFF == 160
    assert s.played_ms == 40


def test_no_silence_mode_sends_nothing_and_marks_next_talkspurt() -> None:
    s = RtpSession(remote_addr=PEER, send_silence=False)
    assert run(s, 100) == []
    s.push_audio(b"\x01" * 160, 20, 120)
    s.push_audio(b"\x01" * 160, 40, 120)  # a second frame in the same slot waits for the next one
    sent = sent_now(s) + run(s, 200, start=140)
    assert len(sent) == 2 and sent[0].marker and not sent[1].marker
    s.push_audio(b"\x01" * 160, 60, 220)
    later = sent_now(s)
    assert len(later) == 1 and later[0].marker
    # Timestamps kept real time through the silence: 100 ms (5 slots) between the two talkspurts.
    assert (later[0].timestamp - sent[0].timestamp) & 0xFFFFFFFF == 5 * 160


def test_late_ticks_each_send_their_own_slot() -> None:
    # After a stall the clock runs the missed ticks back to back with their own times (its
    # max_catch_up is the only stall policy): each sends one packet with its slot's timestamp.
    s = RtpSession(remote_addr=PEER)
    sent = run(s, 100)
    assert len(sent) == 6
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(sent))
    s.tick(100)  # the same tick twice: its slot is already taken
    assert sent_now(s) == []


def test_clear_drops_queued_audio_at_once_and_the_next_audio_starts_a_talkspurt() -> None:
    s = RtpSession(remote_addr=PEER)
    s.push_audio(b"\x01" * 1600, 200, 0)  # 200 ms in one push: one frame now, the rest in slots
    sent = sent_now(s) + run(s, 40, start=20)
    assert len(sent) == 3 and s.queued_ms == 140
    assert s.played_ms is None  # that push's audio has not all left yet
    assert s.clear_audio() == 140
    sent = run(s, 100, start=60)
    assert all(p.payload == b"\xff" * 160 for p in sent)
    s.push_audio(b"\x03" * 160, 220, 113)  # right after a clear: at once, a new talkspurt
    again = sent_now(s)
    assert len(again) == 1 and again[0].marker and s.played_ms == 220


def test_send_dtmf_event_packets_and_three_end_packets() -> None:
    s = RtpSession(remote_addr=PEER, dtmf_payload_type=101)
    s.send_dtmf("7", duration_ms=100, pause_ms=0)
    s.push_audio(b"\x01" * 160, 20, 0)  # audio waits while the digit takes the slots
    assert sent_now(s) == []
    sent = run(s, 200)
    events = [p for p in sent if p.payload_type == 101]
    assert len(events) == 4 + 3
    decoded = [parse_event(p.payload) for p in events]
    assert all(code == 7 for code, _, _, _ in decoded)
    assert [d for _, _, _, d in decoded] == [160, 320, 480, 640, 800, 800, 800]
    assert [end for _, end, _, _ in decoded] == [False] * 4 + [True] * 3
    assert len({p.timestamp for p in events}) == 1 and events[0].marker
    after = [p for p in sent[sent.index(events[-1]) + 1 :]]
    assert after[0].payload == b"\x01" * 160  # queued audio waited for the digit
    with pytest.raises(ValueError, match="digit"):
        s.send_dtmf("x")


def test_pcma_silence_and_bad_payload_type() -> None:
    s = RtpSession(payload_type=8, remote_addr=PEER)
    assert s.format == PCMA_8K
    assert run(s, 0)[0].payload == b"\xd5" * 160
    with pytest.raises(ValueError, match="payload_type"):
        RtpSession(payload_type=18)


def test_set_media_applies_signalling_and_keeps_a_latched_peer() -> None:
    s = RtpSession(remote_addr=PEER)
    s.receive(pkt(1), ("127.0.0.1", 40000), 0)
    s.set_media(
        payload_type=8, dtmf_payload_type=None, remote_addr=("127.0.0.1", 5), sending=False,
        inactivity_timeout_ms=None, now_ms=20,
    )  # fmt: skip
    assert s.format == PCMA_8K and s.dtmf_payload_type is None and s.inactivity_timeout_ms is None
    assert s.remote_addr == ("127.0.0.1", 40000)  # latched: signalling does not move it
    assert run(s, 100, start=40) == []  # held: nothing is sent


# ------------------------------------------------------------------------------------- session: receive


def test_latching_and_foreign_packets_ignored() -> None:
    s = RtpSession(remote_addr=("192.0.2.2", 7078))  # what a peer's SDP wrongly advertised
    s.receive(pkt(1), ("127.0.0.1", 40000), 0)
    assert s.remote_addr == ("127.0.0.1", 40000)
    s.receive(pkt(2, payload=b"\x22" * 160), ("127.0.0.1", 40001), 20)
    s.receive(pkt(3), ("127.0.0.1", 40000), 40)
    s.tick(100)  # seq 2 never came from the latched address: the reorder buffer gives up on it
    frames = s.events_received()
    assert [type(f) for f in frames] == [Frame, Frame]
    assert all(isinstance(f, Frame) and f.data == b"\x11" * 160 and f.format == PCMU_8K for f in frames)
    assert [f.timestamp_ms for f in frames if isinstance(f, Frame)] == [0, 40]
    # The peer restarts its stream (new SSRC, new random timestamps): media time keeps going.
    s.receive(pkt(900, ts=123456, ssrc=8), ("127.0.0.1", 40000), 140)
    s.receive(pkt(901, ts=123456 + 160, ssrc=8), ("127.0.0.1", 40000), 160)
    assert [f.timestamp_ms for f in s.events_received() if isinstance(f, Frame)] == [60, 80]
    assert s.stats["foreign_dropped"] == 1
    assert {addr for _, addr in s.data_to_send()} == {("127.0.0.1", 40000)}


def test_junk_rtcp_and_unknown_payload_types_are_counted_not_latched() -> None:
    s = RtpSession(remote_addr=PEER)
    s.receive(b"junk", ("127.0.0.1", 1), 0)
    s.receive(b"\x81\xc8" + bytes(26), ("127.0.0.1", 2), 0)  # RTCP sender report
    s.receive(pkt(1, pt=13), ("127.0.0.1", 3), 0)  # comfort noise
    assert s.latched is None and s.events_received() == []
    assert (s.stats["invalid"], s.stats["rtcp"], s.stats["other_payload"]) == (1, 1, 1)


def test_dtmf_over_the_session_and_inactivity_timeout() -> None:
    s = RtpSession(remote_addr=PEER, inactivity_timeout_ms=1000)
    for d in (160, 320):
        s.receive(pkt(1, ts=800, pt=101, payload=build_event(9, False, d)), PEER, 0)
    for _ in range(3):
        s.receive(pkt(2, ts=800, pt=101, payload=build_event(9, True, 480)), PEER, 40)
    assert s.events_received() == [DtmfDigit("9", 60, 800)]
    s.tick(1000)
    assert s.events_received() == []
    s.tick(1040)
    s.tick(2000)
    events = s.events_received()
    assert len(events) == 1 and isinstance(events[0], RtpTimeout) and events[0].idle_ms == 1000
