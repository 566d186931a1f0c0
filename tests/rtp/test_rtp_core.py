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


def run(session: RtpSession, until_ms: float, step: float = 20.0, start: float = 0.0) -> list[RtpPacket]:
    sent: list[RtpPacket] = []
    t = start
    while t <= until_ms:
        session.tick(t)
        sent += [RtpPacket.parse(d) for d, _ in session.data_to_send()]
        t += step
    return sent


def test_paced_sending_with_silence_sequence_timestamps_and_marker() -> None:
    s = RtpSession(remote_addr=PEER, ssrc=1)
    sent = run(s, 60)  # 4 ticks, queue empty: encoded silence keeps the stream (and NATs) open
    assert [p.payload for p in sent] == [b"\xff" * 160] * 4
    assert [p.marker for p in sent] == [True, False, False, False]
    s.enqueue(b"\x01" * 400)  # 2.5 frames: the half frame is sent padded once nothing more comes
    sent += run(s, 160, start=80)
    seqs = [p.sequence for p in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    stamps = [p.timestamp for p in sent]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
    audio = [p for p in sent if p.payload != b"\xff" * 160]
    assert [p.payload.count(1) for p in audio] == [160, 160, 80]
    assert audio[0].marker and not audio[1].marker  # talkspurt start
    assert s.sent_ms == 60 and s.queued_ms == 0


def test_no_silence_mode_sends_nothing_and_marks_next_talkspurt() -> None:
    s = RtpSession(remote_addr=PEER, send_silence=False)
    assert run(s, 100) == []
    s.enqueue(b"\x01" * 320)
    sent = run(s, 200, start=120)
    assert len(sent) == 2 and sent[0].marker and not sent[1].marker
    s.enqueue(b"\x01" * 160)
    later = run(s, 400, start=220)
    assert len(later) == 1 and later[0].marker
    # Timestamps kept real time through the silence: 100 ms (5 slots) between the two talkspurts.
    assert (later[0].timestamp - sent[0].timestamp) & 0xFFFFFFFF == 5 * 160


def test_absolute_schedule_catches_up_and_jumps_after_a_stall() -> None:
    s = RtpSession(remote_addr=PEER)
    s.tick(0)
    s.tick(65)  # late tick: slots 20, 40, 60 are due now
    assert len(s.data_to_send()) == 4
    assert s.next_frame_due() == 80
    s.tick(1000)  # a long stall: no burst, the schedule jumps
    assert len(s.data_to_send()) == 1 and s.stats["skipped_slots"] > 0
    s.tick(1005)
    assert s.data_to_send() == []


def test_clear_drops_queued_audio_at_once() -> None:
    s = RtpSession(remote_addr=PEER)
    s.enqueue(b"\x01" * 1600)  # 200 ms
    run(s, 40)
    assert s.sent_ms == 60 and s.queued_ms == 140
    assert s.clear() == 140
    sent = run(s, 100, start=60)
    assert all(p.payload == b"\xff" * 160 for p in sent)
    assert s.sent_ms == 60


def test_send_dtmf_event_packets_and_three_end_packets() -> None:
    s = RtpSession(remote_addr=PEER, dtmf_payload_type=101)
    s.send_dtmf("7", duration_ms=100, pause_ms=0)
    s.enqueue(b"\x01" * 160)
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
