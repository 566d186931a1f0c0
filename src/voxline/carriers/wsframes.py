"""Whole WebSocket frames out of a client's byte stream (RFC 6455 §5.2), sans I/O.

A carrier's media socket carries ~50 small masked text frames a second per call. websockets'
Sans-I/O parser costs ~12 µs a frame in pure Python, the largest item of the Twilio G.711 path's
profile; cutting the stream here and unmasking with one integer XOR costs a few. ``ClientFrames``
only finds frame boundaries: the one case it decodes itself is the common one (a final, masked,
unextended text frame of a message that is not fragmented). Every other frame (control frames,
fragments, binary) is handed back whole, for websockets' protocol to check and handle at a frame
boundary; a header websockets would refuse (unmasked, reserved bits, too long) ends the splitting
and hands back all that is left, so websockets fails the connection with its code (1002, 1009).
"""

from __future__ import annotations

__all__ = ["ClientFrames"]

_TEXT = 0x1
_FAST_HEAD = 0x80 | _TEXT  # FIN, no reserved bits, opcode text
_repeats: dict[int, int] = {}  # words -> the multiplier that repeats a 4-byte mask that many times


def unmask(mask: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``mask`` repeated (§5.3), as one big-integer operation."""
    n = len(data)
    words = (n + 3) >> 2
    repeat = _repeats.get(words)
    if repeat is None:
        repeat = ((1 << (32 * words)) - 1) // 0xFFFFFFFF
        if len(_repeats) < 4096:  # frame sizes of real peers are few; never grow without bound
            _repeats[words] = repeat
    key = int.from_bytes(mask, "little") * repeat
    return (int.from_bytes(data, "little") ^ key).to_bytes(4 * words, "little")[:n]


class ClientFrames:
    """Cuts what a client sends into frames.

    ``feed(data)``, then call ``next(fast)`` until it returns None (the rest is an incomplete
    frame, kept for the next ``feed``) or ``pending`` is False (nothing is left). It returns
    ``(True, text)`` for a fast text frame's unmasked payload (only when ``fast``: the caller knows
    no fragmented message is open), else ``(False, raw)``: one whole frame as sent, or, once a
    header is refused, everything from it on.
    """

    def __init__(self, max_size: int | None) -> None:
        self.max_size = max_size
        self.bypass = False  # a header was refused: from then on all bytes go on raw
        #: Bytes are left that ``next`` has not returned (a frame, or the start of one).
        self.pending = False
        self._buf = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos >= len(self._buf):
            self._buf, self._pos = data, 0
        else:
            self._buf, self._pos = self._buf[self._pos :] + data, 0
        self.pending = len(self._buf) > 0

    def next(self, fast: bool) -> tuple[bool, bytes] | None:
        buf, pos = self._buf, self._pos
        size = len(buf) - pos
        if size <= 0:
            return None
        if self.bypass:
            self._buf, self._pos = b"", 0
            self.pending = False
            return False, buf[pos:] if pos else buf
        if size < 2:
            return None
        head, second = buf[pos], buf[pos + 1]
        length = second & 0x7F
        start = pos + 6  # header + mask of a short frame
        if length == 126:
            start = pos + 8
            if len(buf) < start:
                return None
            length = buf[pos + 2] << 8 | buf[pos + 3]
        elif length == 127:
            start = pos + 14
            if len(buf) < start:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        if not second & 0x80 or head & 0x70 or (self.max_size is not None and length > self.max_size):
            return self._refuse()
        end = start + length
        if len(buf) < end:
            return None
        self._pos = end
        self.pending = end < len(buf)
        if fast and head == _FAST_HEAD:
            return True, unmask(buf[start - 4 : start], buf[start:end])
        return False, buf[pos:end]

    def rest(self) -> bytes:
        """What is left unreturned (an incomplete frame); the splitter is empty afterwards."""
        rest = self._buf[self._pos :]
        self._buf, self._pos = b"", 0
        self.pending = False
        return rest

    def _refuse(self) -> tuple[bool, bytes]:
        """An unmasked frame, reserved bits (no extension is negotiated) or a frame over max_size:
        websockets' protocol refuses it with the right close code, so it gets all from here on."""
        self.bypass = True
        return False, self.rest()
