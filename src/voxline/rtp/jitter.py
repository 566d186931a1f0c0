"""A small reorder buffer for audio RTP: packets come out in sequence order, late and duplicate ones
are dropped, and a gap is skipped once ``depth`` packets wait behind it or the oldest waited
``max_wait_ms``. An SSRC change or a sequence jump beyond ``max_jump`` resets it (a new stream)."""

from __future__ import annotations

from collections import deque

from .packet import RtpPacket

__all__ = ["JitterBuffer"]


def _delta(a: int, b: int) -> int:
    """a - b in 16-bit sequence space, as a signed value in [-32768, 32767]."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class JitterBuffer:
    def __init__(self, depth: int = 3, max_wait_ms: float = 60.0, max_jump: int = 100) -> None:
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.depth = depth
        self.max_wait_ms = max_wait_ms
        self.max_jump = max_jump
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._expected: int | None = None
        self._ssrc: int | None = None
        self._recent: deque[int] = deque(maxlen=64)
        self.late = 0
        self.duplicates = 0
        self.lost = 0
        self.reordered = 0
        self.resets = 0

    def __len__(self) -> int:
        return len(self._held)

    def push(self, packet: RtpPacket, now_ms: float) -> list[RtpPacket]:
        """Add one packet; returns the packets now ready, in order."""
        out: list[RtpPacket] = []
        seq = packet.sequence
        if (
            self._expected is None
            or packet.ssrc != self._ssrc
            or abs(_delta(seq, self._expected)) > self.max_jump
        ):
            if self._expected is not None:
                self.resets += 1
                out = self.flush()
            self._ssrc = packet.ssrc
            self._expected = seq
            self._recent.clear()
        d = _delta(seq, self._expected)
        if d < 0:
            if seq in self._recent:
                self.duplicates += 1
            else:
                self.late += 1
            return out
        if seq in self._held:
            self.duplicates += 1
            return out
        if d > 0:
            self.reordered += 1
        self._held[seq] = (packet, now_ms)
        self._release(out, now_ms)
        return out

    def poll(self, now_ms: float) -> list[RtpPacket]:
        """Packets released because the oldest has waited ``max_wait_ms`` for a missing one."""
        out: list[RtpPacket] = []
        if self._held:
            self._release(out, now_ms)
        return out

    def flush(self) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        if self._expected is None:
            return out
        for seq in sorted(self._held, key=lambda s: _delta(s, self._expected or 0)):
            out.append(self._held[seq][0])
            self._recent.append(seq)
        self._held.clear()
        return out

    def _release(self, out: list[RtpPacket], now_ms: float) -> None:
        assert self._expected is not None
        while self._held:
            entry = self._held.pop(self._expected, None)
            if entry is not None:
                out.append(entry[0])
                self._recent.append(self._expected)
                self._expected = (self._expected + 1) & 0xFFFF
                continue
            # A gap: wait for it unless too many packets queue behind it or the oldest waited too long.
            oldest = min(arrived for _, arrived in self._held.values())
            if len(self._held) <= self.depth and now_ms - oldest < self.max_wait_ms:
                return
            nxt = min(self._held, key=lambda s: _delta(s, self._expected or 0))
            self.lost += _delta(nxt, self._expected)
            self._expected = nxt
