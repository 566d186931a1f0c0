"""RFC 4733 telephone events (DTMF): payload parse/build, a receiver that turns the redundant packet
stream into one digit per key press, and the packet sequence a sender emits for one digit."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

__all__ = ["DIGITS", "DtmfDigit", "DtmfReceiver", "build_event", "event_code", "parse_event"]

DIGITS = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press received as RFC 4733 events."""

    digit: str
    duration_ms: int
    timestamp: int  # RTP timestamp of the event (its start)


def event_code(digit: str) -> int:
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"digit must be one of {DIGITS!r}, got {digit!r}")
    return code


def parse_event(payload: bytes) -> tuple[int, bool, int, int]:
    """(event, end, volume, duration in timestamp units). Raises ValueError when too short."""
    if len(payload) < 4:
        raise ValueError(f"telephone-event payload of {len(payload)} bytes (needs 4)")
    event, flags, duration = _EVENT.unpack_from(payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration


def build_event(code: int, end: bool, duration: int, volume: int = 10) -> bytes:
    return _EVENT.pack(code, (0x80 if end else 0) | (volume & 0x3F), min(duration, 0xFFFF))


class DtmfReceiver:
    """Deduplicates by the event's RTP timestamp: a digit is reported once, at its first end packet
    (the end packet is sent three times), or when a new event starts before the old one ended, or by
    ``expire`` when packets stopped arriving without an end (all end packets lost)."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self._rate = clock_rate
        self._done: deque[int] = deque(maxlen=16)  # timestamps already reported
        self._current: tuple[int, int, int] | None = None  # (timestamp, code, duration)
        self._last_seen_ms = 0.0
        self.ignored = 0

    def receive(self, timestamp: int, payload: bytes, now_ms: float) -> DtmfDigit | None:
        try:
            code, end, _, duration = parse_event(payload)
        except ValueError:
            self.ignored += 1
            return None
        if timestamp in self._done:
            return None  # retransmitted end packet or a late update of a finished event
        if code >= len(DIGITS):
            self.ignored += 1  # flash hook and other non-digit events
            return None
        self._last_seen_ms = now_ms
        previous: DtmfDigit | None = None
        if self._current is not None and self._current[0] != timestamp:
            previous = self._finish()
        if end:
            self._current = None
            self._done.append(timestamp)
            return self._digit(timestamp, code, duration)
        self._current = (timestamp, code, duration)
        return previous

    def expire(self, now_ms: float, after_ms: float = 300.0) -> DtmfDigit | None:
        if self._current is not None and now_ms - self._last_seen_ms >= after_ms:
            return self._finish()
        return None

    def _finish(self) -> DtmfDigit | None:
        if self._current is None:
            return None
        ts, code, duration = self._current
        self._current = None
        self._done.append(ts)
        return self._digit(ts, code, duration)

    def _digit(self, ts: int, code: int, duration: int) -> DtmfDigit:
        return DtmfDigit(DIGITS[code], duration * 1000 // self._rate, ts)
