"""One RTP audio stream, sans-I/O: receive with latching, reordering and DTMF; sending on the slots
of the media clock.

Time comes in as ``now_ms`` (integer milliseconds on the media clock's timeline). Audio comes in with
``push_audio`` from a source that is itself paced on that clock (a model's playout, a player); the
first frame of a talkspurt is sent at once and sets the stream's slot phase (``phase_ms``), and
``tick(now_ms)``, called on every tick of that phase after the sources of the same instant, sends one
packet per 20 ms slot: queued audio, a DTMF event, or, with nothing queued, encoded silence
(``send_silence=True``, the default) so NAT bindings stay open and the peer's jitter buffer stays
primed (with ``send_silence=False`` nothing, and the next talkspurt is marked). Timestamps follow the
clock (8 per ms), so a talkspurt that starts between two slots stays true to time. ``played_ms`` is
where the audio really sent ends on its source's timeline: the one position a barge-in needs.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass

from ..audio import FRAME_MS, AudioFormat, Frame, codecs
from ..audio.tone import silence
from .dtmf import DtmfDigit, DtmfReceiver, build_event, event_code
from .jitter import JitterBuffer
from .packet import RtpError, RtpPacket, build_packet, is_rtcp

__all__ = ["RtpSession", "RtpTimeout"]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RtpTimeout:
    """No RTP from the peer for ``idle_ms`` (reported once)."""

    idle_ms: float


RtpEvent = Frame | DtmfDigit | RtpTimeout


def _format_for(payload_type: int) -> AudioFormat:
    codec = codecs.by_payload_type(payload_type)
    if codec is None:
        raise ValueError(f"payload_type must be 0 (PCMU) or 8 (PCMA), got {payload_type}")
    return codec.format


class RtpSession:
    def __init__(
        self,
        *,
        payload_type: int = 0,
        remote_addr: Address | None = None,
        dtmf_payload_type: int | None = 101,
        ssrc: int | None = None,
        inactivity_timeout_ms: float | None = 30_000,
        send_silence: bool = True,
        latch: bool = True,
        jitter_depth: int = 3,
        now_ms: float = 0.0,
    ) -> None:
        self.format = _format_for(payload_type)
        self.payload_type = payload_type
        self.remote_addr = remote_addr
        self.dtmf_payload_type = dtmf_payload_type
        self.ssrc = ssrc if ssrc is not None else secrets.randbits(32)
        self.inactivity_timeout_ms = inactivity_timeout_ms
        self.send_silence = send_silence
        self.latch = latch
        self.sending = True  # False while we must not send (held with inactive / recvonly)
        self.latched: Address | None = None
        self.jitter = JitterBuffer(depth=jitter_depth)
        self.dtmf = DtmfReceiver()
        self._events: list[RtpEvent] = []
        self._out: list[tuple[bytes, Address]] = []
        self._last_rx_ms = now_ms
        self._timed_out = False
        self._rx_ssrc: int | None = None
        self._last_arrival: tuple[int, int, float] | None = None  # (ssrc, timestamp, arrival ms)
        self._jitter = 0.0
        self._base_ts = 0
        self._ts_offset_ms = 0
        self._last_ts_ms = 0
        # sending state
        self._silence = silence(FRAME_MS, self.format)
        self._frame_bytes = self.format.frame_bytes
        self._queue = bytearray()
        self._queued_bytes = 0  # audio bytes ever queued (cleared ones included)
        self._sent_bytes = 0  # of them, sent
        self._ends: deque[tuple[int, int]] = deque()  # (queued bytes where a push ends, its end_ms)
        self._played_ms: int | None = None
        self._partial_waited = False  # a partial frame waited one slot: pad and send it
        self._seq = secrets.randbelow(0x10000)
        self._ts_base = secrets.randbits(32)
        self._ts_origin_ms: int | None = None
        self._phase_ms = 0
        self._last_slot_ms: int = -FRAME_MS  # time of the last slot used
        self._marker = True
        self._talking = False  # the last slot carried audio
        self._dtmf_queue: deque[tuple[int, int]] = deque()  # (code, duration in slots)
        self._dtmf_active: tuple[int, int, int, int] | None = None  # code, ts, slots sent, slots total
        self.stats = {
            "received": 0,
            "invalid": 0,
            "foreign_dropped": 0,
            "rtcp": 0,
            "other_payload": 0,
            "sent": 0,
        }

    # ------------------------------------------------------------------------------------- receive

    def receive(self, data: bytes, addr: Address, now_ms: float) -> None:
        """One datagram from ``addr``. Invalid or foreign packets are counted and dropped."""
        if self.latched is not None and addr != self.latched:
            self.stats["foreign_dropped"] += 1
            return
        if is_rtcp(data):
            self.stats["rtcp"] += 1
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats["invalid"] += 1
            return
        pt = packet.payload_type
        if pt != self.payload_type and pt != self.dtmf_payload_type:
            self.stats["other_payload"] += 1
            return
        if self.latch and self.latched is None:
            # Symmetric RTP: answer to where the peer really sends from, not what its SDP claims.
            self.latched = addr
            self.remote_addr = addr
        self.stats["received"] += 1
        self._last_rx_ms = now_ms
        if pt == self.dtmf_payload_type:
            digit = self.dtmf.receive(packet.timestamp, packet.payload, now_ms)
            if digit is not None:
                self._events.append(digit)
            return
        # Interarrival jitter (RFC 3550 §A.8), in ms; a new stream (SSRC) starts it over.
        last = self._last_arrival
        if last is not None and last[0] == packet.ssrc:
            steps = (packet.timestamp - last[1] + 0x80000000) % 0x100000000 - 0x80000000  # signed, wraps
            d = (now_ms - last[2]) - steps * 1000 / self.format.rate
            self._jitter += ((d if d >= 0 else -d) - self._jitter) / 16
        self._last_arrival = (packet.ssrc, packet.timestamp, now_ms)
        for ready in self.jitter.push(packet, now_ms):
            self._deliver(ready)

    def _deliver(self, packet: RtpPacket) -> None:
        if packet.ssrc != self._rx_ssrc:
            # A new stream (first packet, or the peer restarted): media time goes on from where it was.
            self._ts_offset_ms = 0 if self._rx_ssrc is None else self._last_ts_ms + FRAME_MS
            self._rx_ssrc = packet.ssrc
            self._base_ts = packet.timestamp
        ts_ms = self._ts_offset_ms + ((packet.timestamp - self._base_ts) & 0xFFFFFFFF) // (
            self.format.rate // 1000
        )
        self._last_ts_ms = ts_ms
        self._events.append(Frame(packet.payload, self.format, ts_ms))

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter of the received stream (RFC 3550), in ms."""
        return self._jitter

    def events_received(self) -> list[RtpEvent]:
        events, self._events = self._events, []
        return events

    def set_codec(self, payload_type: int, dtmf_payload_type: int | None = None) -> None:
        """Switch codec (after a re-INVITE); queued audio stays (the caller re-encodes if needed)."""
        self.format = _format_for(payload_type)
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self._silence = silence(FRAME_MS, self.format)

    def set_remote(self, addr: Address) -> None:
        """A new address from signalling: send there and latch again on the next packet."""
        self.remote_addr = addr
        self.latched = None

    # ------------------------------------------------------------------------------------- send

    def set_media(
        self,
        *,
        payload_type: int,
        dtmf_payload_type: int | None,
        remote_addr: Address | None,
        sending: bool,
        inactivity_timeout_ms: float | None,
        now_ms: float,
    ) -> None:
        """Apply what signalling negotiated (an answer, a re-INVITE, hold): codec, where to send
        (kept when already latched), whether to send, the inactivity timeout (restarted)."""
        if payload_type != self.payload_type or dtmf_payload_type != self.dtmf_payload_type:
            self.set_codec(payload_type, dtmf_payload_type)
        if remote_addr is not None and self.latched is None:
            self.remote_addr = remote_addr
        self.sending = sending
        self.inactivity_timeout_ms = inactivity_timeout_ms
        self.reset_inactivity(now_ms)

    @property
    def phase_ms(self) -> int:
        """The phase (ms past a multiple of 20) of this stream's packet slots: tick on it."""
        return self._phase_ms

    @property
    def played_ms(self) -> int | None:
        """Where the audio that has really left ends, on the timeline of its source (the ``end_ms``
        given to ``push_audio``), or None before any: what the caller can have heard."""
        return self._played_ms

    def push_audio(self, audio: bytes, end_ms: int | None, now_ms: int) -> None:
        """Audio to send (in ``self.format``, normally one 20 ms frame; ``end_ms`` is where it ends
        on its source's timeline). A talkspurt's first frame leaves at once, ``now_ms`` becoming the
        stream's slot phase; later frames leave on the ticks, one per slot. Since the source is paced
        on the same clock at the same phase and ticks before the sender, each frame leaves in the
        tick it was produced in: there is one pacer, the source's."""
        if not audio:
            return
        self._queue += audio
        self._queued_bytes += len(audio)
        if end_ms is not None:
            self._ends.append((self._queued_bytes, end_ms))
        if (
            len(self._queue) >= self._frame_bytes
            and not self._dtmf_busy()
            and (not self._talking or now_ms >= self._last_slot_ms + FRAME_MS)
        ):
            self._phase_ms = now_ms % FRAME_MS
            self._send_slot(now_ms)

    def clear_audio(self) -> int:
        """Drop the audio not yet sent (barge-in); returns the milliseconds dropped. The next audio
        starts a talkspurt at once."""
        dropped = len(self._queue) // self.format.bytes_per_ms
        self._queue.clear()
        self._ends.clear()
        self._queued_bytes = self._sent_bytes
        self._partial_waited = False
        self._talking = False
        return dropped

    @property
    def queued_ms(self) -> int:
        return len(self._queue) // self.format.bytes_per_ms

    @property
    def sent_ms(self) -> int:
        """Milliseconds of pushed audio that have left (on this stream's own count)."""
        return self._sent_bytes // self.format.bytes_per_ms

    def send_dtmf(self, digits: str, duration_ms: int = 100, pause_ms: int = 60) -> None:
        """Queue RFC 4733 events for ``digits`` (each ``duration_ms`` long, ``pause_ms`` apart); they
        take the slots they need, audio waits meanwhile."""
        if self.dtmf_payload_type is None:
            raise ValueError("send_dtmf: the peer did not negotiate telephone-event")
        if not 40 <= duration_ms <= 5000:
            raise ValueError(f"duration_ms must be within 40..5000, got {duration_ms}")
        codes = [event_code(d) for d in digits]
        for code in codes:
            self._dtmf_queue.append((code, max(1, duration_ms // FRAME_MS)))
            if pause_ms > 0:
                self._dtmf_queue.append((-1, max(1, pause_ms // FRAME_MS)))

    def tick(self, now_ms: int) -> None:
        """The slot at ``now_ms`` (a tick of the stream's phase): send its packet -- queued audio,
        a DTMF event, or comfort silence -- and run the receive-side timers."""
        self._receive_timers(now_ms)
        if self._last_slot_ms is not None and now_ms < self._last_slot_ms + FRAME_MS:
            return  # the slot was taken by a talkspurt's first frame sent at once
        self._send_slot(now_ms)

    def _dtmf_busy(self) -> bool:
        return self._dtmf_active is not None or bool(self._dtmf_queue)

    def _timestamp(self, now_ms: int) -> int:
        # Timestamps follow the clock: 8 per ms, so a talkspurt re-phased mid-slot stays true to time.
        if self._ts_origin_ms is None:
            self._ts_origin_ms = int(now_ms)
        elapsed = int(now_ms) - self._ts_origin_ms
        return (self._ts_base + elapsed * self.format.rate // 1000) & 0xFFFFFFFF

    def _send_slot(self, now_ms: int) -> None:
        self._last_slot_ms = now_ms
        ts = self._timestamp(now_ms)
        addr = self.remote_addr
        if not self.sending or addr is None:
            self._talking = False
            self._marker = True
            return
        if self._dtmf_busy() and self._send_dtmf_slot(ts, addr):
            return
        q = self._queue
        fb = self._frame_bytes
        if len(q) >= fb or (q and self._partial_waited):
            payload = bytes(q[:fb])
            del q[:fb]
            self._sent_bytes += len(payload)
            if len(payload) < fb:
                payload += self._silence[: fb - len(payload)]
            self._partial_waited = False
            ends = self._ends
            while ends and ends[0][0] <= self._sent_bytes:
                self._played_ms = ends.popleft()[1]
            marker = self._marker or not self._talking
            self._talking = True
            self._emit(self.payload_type, ts, payload, marker, addr)
            return
        # A partial frame waits one slot for the rest of its audio, then goes out padded.
        self._partial_waited = bool(q)
        self._talking = False
        if not self.send_silence:
            self._marker = True
            return
        self._emit(self.payload_type, ts, self._silence, self._marker, addr)

    def _emit(self, pt: int, ts: int, payload: bytes, marker: bool, addr: Address) -> None:
        self._out.append((build_packet(pt, self._seq, ts, self.ssrc, payload, marker), addr))
        self._seq = (self._seq + 1) & 0xFFFF
        self._marker = False
        self.stats["sent"] += 1

    def _send_dtmf_slot(self, ts: int, addr: Address) -> bool:
        """Send this slot's telephone-event packet(s); False when the slot is free for audio."""
        if self._dtmf_active is None:
            code, slots = self._dtmf_queue.popleft()
            self._dtmf_active = (code, ts, 0, slots)
        code, start_ts, sent, total = self._dtmf_active
        sent += 1
        if code < 0:  # the pause between digits: normal audio
            self._dtmf_active = None if sent >= total else (code, start_ts, sent, total)
            return False
        assert self.dtmf_payload_type is not None
        duration = sent * 160
        if sent < total:
            self._dtmf_active = (code, start_ts, sent, total)
            self._emit(self.dtmf_payload_type, start_ts, build_event(code, False, duration), sent == 1, addr)
            return True
        self._dtmf_active = None
        # The end packet three times (RFC 4733 §2.5.1.4), same timestamp and duration.
        for _ in range(3):
            self._emit(self.dtmf_payload_type, start_ts, build_event(code, True, duration), False, addr)
        self._talking = False
        return True

    def data_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------------------------- timers

    def _receive_timers(self, now_ms: float) -> None:
        for ready in self.jitter.poll(now_ms):
            self._deliver(ready)
        digit = self.dtmf.expire(now_ms)
        if digit is not None:
            self._events.append(digit)
        timeout = self.inactivity_timeout_ms
        if timeout is not None and not self._timed_out and now_ms - self._last_rx_ms >= timeout:
            self._timed_out = True
            self._events.append(RtpTimeout(now_ms - self._last_rx_ms))

    def reset_inactivity(self, now_ms: float) -> None:
        """Restart the inactivity timer (e.g. when media resumes after hold)."""
        self._last_rx_ms = now_ms
        self._timed_out = False
