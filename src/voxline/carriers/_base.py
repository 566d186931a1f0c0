"""What the carrier WebSocket media cores share: results for bad input, counters, re-framing, parsing."""

from __future__ import annotations

import binascii
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..audio import FRAME_MS, AudioFormat, Frame

# WebSocket close codes (RFC 6455 §7.4.1) the I/O layers answer bad input with.
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A message the core cannot accept. The I/O layer closes the socket with ``close_code``."""

    reason: str
    close_code: int = CLOSE_INVALID_PAYLOAD


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed message the core does not act on (unknown event, a message after stop)."""

    event: str
    reason: str


class BadMessage(Exception):
    """Raised inside a core's parser; turned into a ``ProtocolError`` result, never leaves the core."""

    def __init__(self, reason: str, close_code: int = CLOSE_INVALID_PAYLOAD) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


def parse_json(text: str | bytes, where: str = "message") -> Any:
    """``json.loads`` for text from the network: every way it refuses the text is a BadMessage.

    Deep nesting (``[[[[...``) makes the parser raise RecursionError, not ValueError; the stack
    unwinds cleanly, so it is one more kind of invalid JSON (1007).
    """
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, over-long integers
        raise BadMessage(f"{where} is not JSON: {exc}") from None
    except RecursionError:
        raise BadMessage(f"{where} is nested too deeply") from None


def load_object(text: str | bytes) -> dict[str, Any]:
    """The JSON object a text message holds, or BadMessage saying why not."""
    message = parse_json(text)
    if not isinstance(message, dict):
        raise BadMessage(f"not a JSON object but {type(message).__name__}")
    return message


def get_object(parent: dict[str, Any], key: str, where: str, *, required: bool = True) -> dict[str, Any]:
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadMessage(f"{where}.{key} must be an object, got {_kind(value)}")
    return value


def get_str(parent: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = parent.get(key, default)
    if not isinstance(value, str):
        raise BadMessage(f"{where}.{key} must be a string, got {_kind(value)}")
    return value


def get_int(parent: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    """Counters arrive as numbers or, in Twilio's messages, as decimal strings."""
    value = parent.get(key, default)
    if isinstance(value, bool):
        raise BadMessage(f"{where}.{key} must be an integer, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise BadMessage(f"{where}.{key} must be an integer, got {_kind(value)}")


def decode_payload(parent: dict[str, Any], where: str) -> bytes:
    payload = get_str(parent, "payload", where)
    try:
        return binascii.a2b_base64(payload)
    except (binascii.Error, ValueError) as exc:
        raise BadMessage(f"{where}.payload is not base64: {exc}") from None


def encode_payload(data: bytes | memoryview) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def string_parameters(value: Any, where: str) -> dict[str, str]:
    """Custom parameters as str -> str (values that are not strings are kept as their JSON text)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadMessage(f"{where} must be an object, got {_kind(value)}")
    try:
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
    except RecursionError:
        # A value nested just shallower than the parser's limit can still be too deep to encode.
        raise BadMessage(f"{where} is nested too deeply") from None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


class Stats(Counter[str]):
    """Per-stream counters (messages, media, unknown events, protocol errors, marks, ...)."""


class Reframer:
    """Cuts inbound payloads into FRAME_MS frames.

    The usual case, a payload of exactly one frame with nothing held back, passes through as the
    same bytes object (no copy). Other sizes are gathered and cut; a short tail waits for the next
    payload or ``flush()``.
    """

    __slots__ = ("_bytes_per_ms", "_format", "_held_ts", "frame_bytes", "held")

    def __init__(self, fmt: AudioFormat) -> None:
        self._format = fmt
        #: Bytes of one frame; a payload of this size with nothing ``held`` is one frame as it is.
        self.frame_bytes = fmt.frame_bytes
        self._bytes_per_ms = fmt.bytes_per_ms
        #: The tail waiting for more audio (shorter than a frame).
        self.held = bytearray()
        self._held_ts = 0

    def push(self, payload: bytes, timestamp_ms: int) -> list[Frame]:
        size = self.frame_bytes
        if not self.held:
            if len(payload) == size:
                return [Frame(payload, self._format, timestamp_ms)]
            self._held_ts = timestamp_ms
        self.held += payload
        frames: list[Frame] = []
        start = 0
        while len(self.held) - start >= size:
            frames.append(Frame(bytes(self.held[start : start + size]), self._format, self._held_ts))
            start += size
            self._held_ts += FRAME_MS
        del self.held[:start]
        return frames

    def flush(self) -> Frame | None:
        """The held tail (shorter than a frame), if any."""
        if not self.held:
            return None
        # Keep whole samples only: a frame never ends mid-sample.
        whole = len(self.held) - len(self.held) % (self._format.bytes_per_sample * self._format.channels)
        frame = Frame(bytes(self.held[:whole]), self._format, self._held_ts) if whole else None
        self.held.clear()
        return frame
