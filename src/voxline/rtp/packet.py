"""RTP packets (RFC 3550 §5.1): a 12-byte header, optional CSRC list, extension and padding."""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["RtpError", "RtpPacket", "build_packet", "is_rtcp"]

_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """Bytes that are not a valid RTP packet."""


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        n = len(data)
        if n < 12:
            raise RtpError(f"packet of {n} bytes is shorter than the RTP header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            raise RtpError(f"RTP version {b0 >> 6}, expected 2")
        offset = 12
        cc = b0 & 0x0F
        csrc: tuple[int, ...] = ()
        if cc:
            if n < offset + 4 * cc:
                raise RtpError("truncated CSRC list")
            csrc = struct.unpack_from(f"!{cc}I", data, offset)
            offset += 4 * cc
        if b0 & 0x10:  # header extension: skip it (RFC 3550 §5.3.1)
            if n < offset + 4:
                raise RtpError("truncated header extension")
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
            if n < offset:
                raise RtpError("truncated header extension")
        end = n
        if b0 & 0x20:  # padding: the last byte counts the padding bytes
            pad = data[-1]
            if pad == 0 or offset + pad > n:
                raise RtpError(f"bad padding length {pad}")
            end = n - pad
        return cls(b1 & 0x7F, seq, ts, ssrc, data[offset:end], bool(b1 & 0x80), csrc)

    def to_bytes(self) -> bytes:
        return build_packet(
            self.payload_type, self.sequence, self.timestamp, self.ssrc, self.payload, self.marker
        )


def build_packet(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    return (
        _HEADER.pack(
            0x80, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
        )
        + payload
    )


def is_rtcp(data: bytes) -> bool:
    """RTCP multiplexed on the RTP port (RFC 5761 §4): packet types 192..223 in the second byte."""
    return len(data) >= 2 and 192 <= data[1] <= 223
