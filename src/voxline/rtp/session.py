"""One RTP audio stream, sans-I/O: receive with latching, reordering and DTMF; paced sending.

Time comes in as ``now_ms`` (milliseconds, any monotonic origin). Sending is driven by ``tick(now_ms)``
from an outside clock (one clock can drive many sessions): every 20 ms slot of the absolute schedule
``start + n*20`` sends one packet. When no audio is queued the session keeps sending encoded silence
(``send_silence=True``, the default) so NAT bindings stay open and the peer's jitter buffer stays
primed; with ``send_silence=False`` it sends nothing and marks the next talkspurt. Timestamps advance
by 160 per 20 ms slot either way.
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
_MAX_CATCH_UP = 5  # slots sent at once after a late tick; beyond that the schedule jumps ahead


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
        self._base_ts = 0
        self._ts_offset_ms = 0
        self._last_ts_ms = 0
        # sending state
        self._silence = silence(FRAME_MS, self.format)
        self._frame_bytes = self.format.frame_bytes
        self._queue = bytearray()
        self._queue_stale = False  # a partial frame waited one whole tick: pad and send it
        self._seq = secrets.randbelow(0x10000)
        self._ts = secrets.randbits(32)
        self._start_ms: float | None = None
        self._slot = 0  # next slot index of the schedule
        self._marker = True
        self._in_talkspurt = False
        self._dtmf_queue: deque[tuple[int, int]] = deque()  # (code, duration in slots)
        self._dtmf_active: tuple[int, int, int, int] | None = None  # code, ts, slots sent, slots total
        self.sent_ms = 0  # queued audio that has left: the real playout position
        self.stats = {
            "received": 0,
            "invalid": 0,
            "foreign_dropped": 0,
            "rtcp": 0,
            "other_payload": 0,
            "sent": 0,
            "skipped_slots": 0,
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

    def enqueue(self, audio: bytes) -> None:
        """Queue encoded audio (in ``self.format``) for paced sending; any length."""
        self._queue += audio
        self._queue_stale = False

    @property
    def queued_ms(self) -> int:
        return len(self._queue) // self.format.bytes_per_ms

    def clear(self) -> int:
        """Drop all queued audio at once (barge-in); returns the milliseconds dropped."""
        dropped = self.queued_ms
        self._queue.clear()
        return dropped

    def send_dtmf(self, digits: str, duration_ms: int = 100, pause_ms: int = 60) -> None:
        """Queue RFC 4733 events for ``digits`` (each ``duration_ms`` long, ``pause_ms`` apart)."""
        if self.dtmf_payload_type is None:
            raise ValueError("send_dtmf: the peer did not negotiate telephone-event")
        if not 40 <= duration_ms <= 5000:
            raise ValueError(f"duration_ms must be within 40..5000, got {duration_ms}")
        codes = [event_code(d) for d in digits]
        for code in codes:
            self._dtmf_queue.append((code, max(1, duration_ms // FRAME_MS)))
            if pause_ms > 0:
                self._dtmf_queue.append((-1, max(1, pause_ms // FRAME_MS)))

    def next_frame_due(self) -> float | None:
        """When the next packet is due (None before the first tick)."""
        if self._start_ms is None:
            return None
        return self._start_ms + self._slot * FRAME_MS

    def tick(self, now_ms: float) -> None:
        """Send every slot that is due at ``now_ms``; also runs the receive-side timers."""
        self._receive_timers(now_ms)
        if self._start_ms is None:
            self._start_ms = now_ms
        due = int((now_ms - self._start_ms) // FRAME_MS) + 1 - self._slot
        if due <= 0:
            return
        if due > _MAX_CATCH_UP:
            # The clock stalled: do not burst; jump the schedule (timestamps keep real time).
            skip = due - 1
            self._slot += skip
            self._ts = (self._ts + skip * 160) & 0xFFFFFFFF
            self.stats["skipped_slots"] += skip
            self._marker = True
            due = 1
        for _ in range(due):
            self._send_slot()
        if len(self._queue) < self._frame_bytes and self._queue:
            self._queue_stale = True

    def _send_slot(self) -> None:
        self._slot += 1
        ts = self._ts
        self._ts = (self._ts + 160) & 0xFFFFFFFF
        addr = self.remote_addr
        if not self.sending or addr is None:
            self._marker = True
            return
        if (self._dtmf_active is not None or self._dtmf_queue) and self._send_dtmf_slot(ts, addr):
            return
        q = self._queue
        fb = self._frame_bytes
        if len(q) >= fb or (q and self._queue_stale):
            payload = bytes(q[:fb])
            del q[:fb]
            if len(payload) < fb:
                payload += self._silence[: fb - len(payload)]
                self._queue_stale = False
            marker = self._marker or not self._in_talkspurt
            self._in_talkspurt = True
            self.sent_ms += FRAME_MS
        else:
            self._in_talkspurt = False
            if not self.send_silence:
                self._marker = True
                return
            payload = self._silence
            marker = self._marker
        self._emit(self.payload_type, ts, payload, marker, addr)

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
        self._in_talkspurt = False
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
