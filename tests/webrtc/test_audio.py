"""The Opus-side audio of a WebRTC call on a virtual clock: resampled once per direction with its
state kept, frames cut only when handed over, exact positions, barge-in, silence, talkspurts."""

from __future__ import annotations

import numpy as np

from voxline.audio import PCM16_24K, Frame
from voxline.audio.resample import Resampler
from voxline.audio.tone import tone
from voxline.media.clock import VirtualMediaClock
from voxline.webrtc.audio import InboundAudio, OutboundAudio, to_mono
from voxline.webrtc.feed import EventFeed
from voxline.webrtc.sdp import check_offer, keep_candidates

FRAME_24K = 960  # bytes of 20 ms at 24 kHz
FRAME_48K = 1920


def test_inbound_is_resampled_once_with_its_state_kept() -> None:
    pcm48 = tone(440, 1000, 48000, 0.5)
    frames: list[Frame] = []
    inbound = InboundAudio(frames.append)
    for i in range(0, len(pcm48), FRAME_48K):
        inbound.push(pcm48[i : i + FRAME_48K])
    whole = Resampler(48000, 24000).process(pcm48)
    got = b"".join(f.data for f in frames)
    # Frame by frame is bit for bit the whole signal resampled at once: no state lost at frame edges.
    assert got == whole[: len(got)]
    assert len(whole) - len(got) < FRAME_24K
    assert [f.timestamp_ms for f in frames] == [20 * i for i in range(len(frames))]
    assert all(f.format == PCM16_24K and len(f.data) == FRAME_24K for f in frames)


def test_stereo_is_mixed_to_mono() -> None:
    stereo = np.array([100, 300, -200, -400], dtype="<i2").tobytes()
    assert np.frombuffer(to_mono(stereo, 2), "<i2").tolist() == [200, -300]


def take_all(audio: OutboundAudio) -> list[tuple[bytes, int | None]]:
    out = []
    while audio.due:
        out.append(audio.take())
    return out


def test_outbound_waits_for_the_sender_then_hands_out_exact_positions() -> None:
    clock = VirtualMediaClock()
    notified: list[int] = []
    audio = OutboundAudio(clock, lambda: notified.append(clock.now_ms()))
    speech = tone(300, 200, 24000, 0.3)
    for k in range(10):  # the playout delivers 20 ms a tick before the connection is up
        audio.capture(speech[k * FRAME_24K : (k + 1) * FRAME_24K], 20 * (k + 1))
    assert audio.played_ms is None and take_all(audio) == []  # nothing due: the sender has not asked
    audio.start()  # aiortc's sender asks: the first frame is due at once
    handed = []
    for _ in range(12):
        handed += take_all(audio)
        clock.advance(20)
    voiced = [end for _, end in handed if end is not None]
    # Every frame of the 200 ms went out, none dropped; positions within the resampler's delay.
    assert len(voiced) == 10
    for k, end in enumerate(voiced):
        assert 20 * (k + 1) - 2 <= end <= 20 * (k + 1)
    assert audio.played_ms == 200
    assert handed[-1] == (bytes(FRAME_48K), None)  # then silence: the RTP stream never pauses
    audio.close()


def test_a_sender_falling_behind_skips_time_not_audio() -> None:
    clock = VirtualMediaClock()
    audio = OutboundAudio(clock, lambda: None)
    audio.start()
    audio.take()
    speech = tone(300, 400, 24000, 0.3)
    for k in range(20):
        audio.capture(speech[k * FRAME_24K : (k + 1) * FRAME_24K], 20 * (k + 1))
        clock.advance(20)
    assert audio.due == OutboundAudio.MAX_DUE  # capped
    got = take_all(audio)
    assert len(got) == OutboundAudio.MAX_DUE
    assert audio.buffered_ms >= 300  # the rest waits: nothing was cut that was not handed over
    assert audio.played_ms is not None and audio.played_ms <= 20 * OutboundAudio.MAX_DUE
    audio.close()


def test_barge_in_drops_what_was_not_handed_and_a_talkspurt_starts_at_once() -> None:
    clock = VirtualMediaClock()
    talkspurts: list[int] = []
    audio = OutboundAudio(clock, lambda: None)
    audio.on_talkspurt = lambda: talkspurts.append(clock.now_ms())
    audio.start()
    take_all(audio)
    clock.advance(20)
    take_all(audio)
    assert audio.take() == (bytes(FRAME_48K), None)  # idle
    clock.advance(7)  # off the grid
    speech = tone(300, 100, 24000, 0.3)
    audio.capture(speech[:FRAME_24K], 20)
    assert talkspurts == [clock.now_ms()] and audio.due == 1  # the first frame is due now, not at the tick
    data, end = audio.take()
    assert end is not None and data != bytes(FRAME_48K)
    for k in range(1, 5):
        audio.capture(speech[k * FRAME_24K : (k + 1) * FRAME_24K], 20 * (k + 1))
    audio.clear()
    assert audio.buffered_ms == 0
    clock.advance(20)
    assert take_all(audio) == [(bytes(FRAME_48K), None)]
    assert audio.played_ms == end  # what was handed, not what was captured
    audio.close()


def test_a_talkspurt_started_inside_a_tick_of_its_phase_makes_one_frame_due_not_two() -> None:
    # The playout (order 0) delivers on the same tick, before the track's own tick (order 1): the
    # talkspurt and the tick are one instant and make one frame due. Two would send 40 ms of media
    # every 20 ms (a browser's jitter buffer then grows by 20 ms a tick: about a second of the
    # greeting still playing after a barge-in cleared it), every second frame a silence.
    clock = VirtualMediaClock()
    talkspurts: list[int] = []
    audio = OutboundAudio(clock, lambda: None)
    audio.on_talkspurt = lambda: talkspurts.append(clock.now_ms())
    audio.start()  # idle on phase 0, the playout's phase
    assert take_all(audio) == [(bytes(FRAME_48K), None)]
    speech = tone(300, 400, 24000, 0.3)
    delivered = iter(range(20))

    def playout_tick(tick_ms: int) -> None:
        k = next(delivered, None)
        if k is not None:
            audio.capture(speech[k * FRAME_24K : (k + 1) * FRAME_24K], 20 * (k + 1))

    clock.subscribe(playout_tick, order=0)
    handed: list[list[int | None]] = []
    for _ in range(20):
        clock.advance(20)
        handed.append([end for _, end in take_all(audio)])
    assert talkspurts == [20]  # one talkspurt, not one a frame
    assert all(len(frames) == 1 for frames in handed), handed  # one frame a tick
    assert all(frames[0] is not None for frames in handed), handed  # and no silence among them
    assert audio.played_ms == 400
    audio.close()


OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=fingerprint:sha-256 AA:BB",
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
        "a=candidate:2 1 udp 2122260223 192.168.1.5 50001 typ host",
        "a=candidate:3 1 udp 2122260223 abcd-1234.local 50002 typ host",
        "a=candidate:4 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
        "",
    ]
)


def test_offers_are_checked_and_candidates_kept_on_loopback() -> None:
    assert check_offer(OFFER) is None
    assert "v=0" in (check_offer("hello") or "")
    assert "Opus" in (check_offer(OFFER.replace("opus/48000/2", "PCMU/8000")) or "")
    assert "audio" in (check_offer(OFFER.replace("m=audio", "m=video")) or "")
    kept, dropped = keep_candidates(OFFER, ["127.0.0.0/8"])
    assert dropped == 3
    assert [line for line in kept.split("\r\n") if line.startswith("a=candidate")] == [
        "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    ]


def test_feed_replays_its_history_then_ends() -> None:
    feed = EventFeed()
    feed.publish("call.connected")
    got: list[object] = []
    feed.subscribe(got.append)
    feed.publish("speech.started")
    feed.end()
    feed.publish("too.late")
    kinds = [e["type"] if isinstance(e, dict) else e for e in got]
    assert kinds == ["call.connected", "speech.started", None]
