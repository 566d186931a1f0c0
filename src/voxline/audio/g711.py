"""G.711 μ-law and A-law, bit-exact with ITU-T G.711 (and CPython's former ``audioop``).

Each direction is one numpy lookup table built once at import: decoding indexes a 256-entry int16
table by code, encoding indexes a 65,536-entry uint8 table by the PCM16 sample's bit pattern, so a
20 ms frame costs one ``frombuffer`` and one fancy index. The bytes decoders use the same table as two
256-byte ``bytes.translate`` maps (low and high byte). PCM16 is signed little-endian.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "alaw_decode",
    "alaw_decode_array",
    "alaw_encode",
    "alaw_encode_array",
    "ulaw_decode",
    "ulaw_decode_array",
    "ulaw_encode",
    "ulaw_encode_array",
]

Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

PCM16_DTYPE = np.dtype("<i2")
_U16_DTYPE = np.dtype("<u2")


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF  # codes are transmitted inverted
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55  # even bits are transmitted inverted
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _ulaw_encode_values(x: npt.NDArray[np.int32]) -> UInt8Array:
    x14 = x >> 2  # μ-law works on 14-bit magnitudes
    mask = np.where(x14 < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x14), 8159) + 0x21  # clip, then add the bias (33)
    seg_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_ends, mag, side="left")
    # Annotated: older numpy stubs type np.where as Any.
    code: npt.NDArray[Any] = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0xF)) ^ mask
    return code.astype(np.uint8)


def _alaw_encode_values(x: npt.NDArray[np.int32]) -> UInt8Array:
    v = x >> 3  # A-law works on 13-bit magnitudes
    mask = np.where(v >= 0, 0xD5, 0x55)
    v = np.where(v >= 0, v, -v - 1)
    seg_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(seg_ends, v, side="left")
    aval = (seg << 4) | np.where(seg < 2, (v >> 1) & 0xF, (v >> np.minimum(seg, 15)) & 0xF)
    code: npt.NDArray[Any] = np.where(seg >= 8, 0x7F, aval) ^ mask
    return code.astype(np.uint8)


# Encode tables are indexed by the sample's uint16 bit pattern, so no sign offset is needed per call.
_ALL_PCM16: npt.NDArray[np.int32] = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)

ULAW_DECODE_TABLE: Int16Array = _build_ulaw_decode()
ALAW_DECODE_TABLE: Int16Array = _build_alaw_decode()
ULAW_ENCODE_TABLE: UInt8Array = _ulaw_encode_values(_ALL_PCM16)
ALAW_ENCODE_TABLE: UInt8Array = _alaw_encode_values(_ALL_PCM16)
for _table in (ULAW_DECODE_TABLE, ALAW_DECODE_TABLE, ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE):
    _table.flags.writeable = False
del _ALL_PCM16


def _pcm16_codes(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.uint16]:
    if len(pcm) % 2:
        raise ValueError(f"pcm: PCM16 data must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype=_U16_DTYPE)


def ulaw_decode_array(data: bytes | bytearray | memoryview) -> Int16Array:
    """μ-law bytes -> int16 samples (a new array)."""
    return ULAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode_array(data: bytes | bytearray | memoryview) -> Int16Array:
    """A-law bytes -> int16 samples (a new array)."""
    return ALAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode_array(samples: Int16Array) -> bytes:
    """int16 samples -> μ-law bytes."""
    return ULAW_ENCODE_TABLE[samples.view(np.uint16)].tobytes()


def alaw_encode_array(samples: Int16Array) -> bytes:
    """int16 samples -> A-law bytes."""
    return ALAW_ENCODE_TABLE[samples.view(np.uint16)].tobytes()


def _byte_tables(table: Int16Array) -> tuple[bytes, bytes]:
    """256-byte translate tables of the low and high bytes of each decoded sample."""
    raw = table.astype(PCM16_DTYPE).tobytes()
    return raw[0::2], raw[1::2]


# Decoding to bytes needs no numpy: two C-level translates interleaved into one buffer is cheaper than
# frombuffer + gather + tobytes for a 20 ms frame.
_ULAW_LO, _ULAW_HI = _byte_tables(ULAW_DECODE_TABLE)
_ALAW_LO, _ALAW_HI = _byte_tables(ALAW_DECODE_TABLE)


def _decode_bytes(data: bytes | bytearray | memoryview, lo: bytes, hi: bytes) -> bytes:
    codes = data if isinstance(data, bytes | bytearray) else bytes(data)
    out = bytearray(2 * len(codes))
    out[0::2] = codes.translate(lo)
    out[1::2] = codes.translate(hi)
    return bytes(out)


def ulaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """μ-law bytes -> PCM16 little-endian bytes (two bytes per input byte)."""
    return _decode_bytes(data, _ULAW_LO, _ULAW_HI)


def alaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """A-law bytes -> PCM16 little-endian bytes (two bytes per input byte)."""
    return _decode_bytes(data, _ALAW_LO, _ALAW_HI)


def ulaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """PCM16 little-endian bytes -> μ-law bytes (one byte per sample). ValueError on odd length."""
    return ULAW_ENCODE_TABLE[_pcm16_codes(pcm)].tobytes()


def alaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """PCM16 little-endian bytes -> A-law bytes (one byte per sample). ValueError on odd length."""
    return ALAW_ENCODE_TABLE[_pcm16_codes(pcm)].tobytes()
