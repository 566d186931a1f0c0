"""WAV files: read any common PCM/float/G.711 WAV as PCM16, write PCM16.

``read_wav`` walks the RIFF chunks itself (the stdlib ``wave`` module of Python 3.11 reads only 8/16/
24/32-bit integer PCM with the plain format tag), so it also takes IEEE-float, WAVE_FORMAT_EXTENSIBLE
and G.711 files. Whatever it cannot read gets a ``ValueError`` naming the file and the reason.
"""

from __future__ import annotations

import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .g711 import ALAW_DECODE_TABLE, PCM16_DTYPE, ULAW_DECODE_TABLE

__all__ = ["WavAudio", "read_wav", "write_wav"]

_PCM = 0x0001
_FLOAT = 0x0003
_ALAW = 0x0006
_ULAW = 0x0007
_EXTENSIBLE = 0xFFFE
_TAG_NAMES = {_PCM: "PCM", _FLOAT: "IEEE float", _ALAW: "A-law", _ULAW: "mu-law"}
# Streaming writers that cannot seek back leave the data size unset.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Decoded WAV contents: PCM16 little-endian, interleaved when ``channels`` > 1."""

    pcm: bytes
    rate: int
    channels: int

    @property
    def frames(self) -> int:
        """Samples per channel."""
        return len(self.pcm) // (2 * self.channels)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.frames / self.rate


def read_wav(path: str | os.PathLike[str]) -> WavAudio:
    """Read a WAV file as PCM16 (8-bit, 16/24/32-bit int, 32/64-bit float, μ-law and A-law accepted)."""
    raw = Path(path).read_bytes()
    try:
        return _parse(raw)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: {exc}") from None


def write_wav(path: str | os.PathLike[str], pcm: bytes, rate: int, channels: int = 1) -> None:
    """Write PCM16 little-endian (interleaved if ``channels`` > 1) as a plain PCM WAV file."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not 0 < rate <= 0xFFFFFFFF:
        raise ValueError(f"rate must be a positive int (Hz), got {rate!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 0xFFFF:
        raise ValueError(f"channels must be an int in [1, 65535], got {channels!r}")
    if len(pcm) % (2 * channels):
        raise ValueError(f"pcm: {len(pcm)} bytes is not a whole number of {channels}-channel PCM16 frames")
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def _parse(raw: bytes) -> WavAudio:
    if raw[:4] == b"RF64":
        raise ValueError("RF64 (64-bit WAV) is not supported")
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("not a WAV file (no RIFF/WAVE header)")
    fmt: bytes | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        (size,) = struct.unpack_from("<I", raw, pos + 4)
        body = pos + 8
        if chunk_id == b"data" and fmt is not None and size in _UNKNOWN_SIZES:
            size = len(raw) - body
        if body + size > len(raw):
            raise ValueError(
                f"truncated {chunk_id.decode('latin-1')!r} chunk: {size} bytes declared, "
                f"{len(raw) - body} present"
            )
        if chunk_id == b"fmt ":
            fmt = raw[body : body + size]
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("'data' chunk comes before the 'fmt ' chunk")
            data = raw[body : body + size]
            break
        pos = body + size + (size & 1)  # chunks are word-aligned
    if fmt is None:
        raise ValueError("no 'fmt ' chunk")
    if data is None:
        raise ValueError("no 'data' chunk")
    if len(fmt) < 16:
        raise ValueError(f"'fmt ' chunk too short ({len(fmt)} bytes)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise ValueError("WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk too short")
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the sub-format GUID
    if channels < 1:
        raise ValueError("channel count is 0")
    if rate < 1:
        raise ValueError("sample rate is 0")
    width = _sample_width(tag, bits)
    if block_align != width * channels:
        raise ValueError(f"block align {block_align} does not match {channels} channels of {bits}-bit")
    usable = len(data) - len(data) % block_align  # a partial last frame is dropped
    samples = _to_pcm16(data[:usable], tag, width)
    return WavAudio(samples.astype(PCM16_DTYPE, copy=False).tobytes(), rate, channels)


def _sample_width(tag: int, bits: int) -> int:
    if tag == _PCM and bits in (8, 16, 24, 32):
        return bits // 8
    if tag == _FLOAT and bits in (32, 64):
        return bits // 8
    if tag in (_ALAW, _ULAW) and bits == 8:
        return 1
    name = _TAG_NAMES.get(tag, f"format tag 0x{tag:04x}")
    raise ValueError(f"unsupported sample format: {bits}-bit {name}")


def _to_pcm16(data: bytes, tag: int, width: int) -> npt.NDArray[np.int16]:
    if tag == _ULAW:
        return ULAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]
    if tag == _ALAW:
        return ALAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]
    if tag == _FLOAT:
        values = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0)
        # Annotated: older numpy stubs type np.clip as Any.
        clipped: npt.NDArray[np.float64] = np.clip(np.rint(values * 32768.0), -32768, 32767)
        return clipped.astype(np.int16)
    if width == 2:
        pcm16: npt.NDArray[np.int16] = np.frombuffer(data, dtype=PCM16_DTYPE)
        return pcm16
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 3:
        # Place each 24-bit sample in the top three bytes of a little-endian int32.
        padded = np.zeros((len(data) // 3, 4), dtype=np.uint8)
        padded[:, 1:] = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        data = padded.tobytes()
    wide = np.frombuffer(data, dtype="<i4").astype(np.int64)
    # Round to the nearest 16-bit value; the top of the range would round past 32767.
    rounded = np.minimum((wide + (1 << 15)) >> 16, 32767)
    out: npt.NDArray[np.int16] = rounded.astype(np.int16)
    return out
