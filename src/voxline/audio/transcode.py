"""Format conversion of a stream: decode -> resample -> encode, one Transcoder per direction per stream.

Fast paths, because this runs every 20 ms per call:
- same format: ``process`` returns its input object itself (no copy, no numpy);
- μ-law <-> A-law: one 256-byte ``bytes.translate`` table (no numpy);
- G.711 8 kHz <-> PCM16 24 kHz: a table gather into int16, the polyphase resampler, and a table
  gather back, without intermediate ``bytes``.
"""

from __future__ import annotations

import numpy as np

from . import AudioFormat
from .g711 import (
    ALAW_DECODE_TABLE,
    ALAW_ENCODE_TABLE,
    PCM16_DTYPE,
    ULAW_DECODE_TABLE,
    ULAW_ENCODE_TABLE,
    Int16Array,
    UInt8Array,
)
from .resample import Resampler

__all__ = ["Transcoder"]

_DECODE_TABLES: dict[str, Int16Array] = {"pcmu": ULAW_DECODE_TABLE, "pcma": ALAW_DECODE_TABLE}
_ENCODE_TABLES: dict[str, UInt8Array] = {"pcmu": ULAW_ENCODE_TABLE, "pcma": ALAW_ENCODE_TABLE}
# Code-to-code tables: decode with one law and re-encode with the other (what decode -> encode through
# PCM16 gives; G.711 Tables 3/4 define a slightly different direct mapping).
_TRANSLATE: dict[tuple[str, str], bytes] = {
    ("pcmu", "pcma"): ALAW_ENCODE_TABLE[ULAW_DECODE_TABLE.view(np.uint16)].tobytes(),
    ("pcma", "pcmu"): ULAW_ENCODE_TABLE[ALAW_DECODE_TABLE.view(np.uint16)].tobytes(),
}


class Transcoder:
    """Converts a stream of ``src`` audio into ``dst`` audio; keeps the resampler's state between calls.

    ``process`` takes chunks of whole samples (any length, normally 20 ms) and returns what is ready;
    ``flush`` returns the resampler's held tail at the end of speech; ``reset`` drops it (barge-in).
    """

    __slots__ = (
        "_decode",
        "_encode",
        "_passthrough",
        "_resampler",
        "_sample_bytes",
        "_translate",
        "dst",
        "src",
    )

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        for name, fmt in (("src", src), ("dst", dst)):
            if not isinstance(fmt, AudioFormat):
                raise TypeError(f"{name} must be an AudioFormat, got {fmt!r}")
        if src.channels != dst.channels:
            raise ValueError(f"dst: channel count conversion is not supported ({src} -> {dst})")
        if src.rate != dst.rate and src.channels != 1:
            raise ValueError(f"src: only mono audio can be resampled ({src} -> {dst})")
        self.src = src
        self.dst = dst
        self._passthrough = src == dst
        self._sample_bytes = src.bytes_per_sample * src.channels
        self._translate = _TRANSLATE.get((src.encoding, dst.encoding)) if src.rate == dst.rate else None
        self._decode = _DECODE_TABLES.get(src.encoding)
        self._encode = _ENCODE_TABLES.get(dst.encoding)
        self._resampler = Resampler(src.rate, dst.rate) if src.rate != dst.rate else None

    @property
    def passthrough(self) -> bool:
        """True when nothing is converted: ``process`` returns its input unchanged."""
        return self._passthrough

    @property
    def delay_ms(self) -> float:
        """Audio held back by the resampler (returned by ``flush``)."""
        return 0.0 if self._resampler is None else self._resampler.delay_ms

    def process(self, data: bytes) -> bytes:
        """Convert the next chunk of the stream."""
        if self._passthrough:
            return data
        if len(data) % self._sample_bytes:
            raise ValueError(
                f"data: {len(data)} bytes is not a whole number of {self.src} samples"
                f" ({self._sample_bytes} bytes each)"
            )
        if self._translate is not None:
            return data.translate(self._translate)
        if self._decode is not None:
            samples: Int16Array = self._decode[np.frombuffer(data, dtype=np.uint8)]
        else:
            samples = np.frombuffer(data, dtype=PCM16_DTYPE)
        if self._resampler is not None:
            samples = self._resampler.process_samples(samples)
        return self._encoded(samples)

    def flush(self) -> bytes:
        """End of the stream (e.g. of speech): the held tail, converted; the transcoder starts afresh."""
        if self._resampler is None:
            return b""
        return self._encoded(self._resampler.flush_samples())

    def reset(self) -> None:
        """Drop the held tail without returning it."""
        if self._resampler is not None:
            self._resampler.reset()

    def _encoded(self, samples: Int16Array) -> bytes:
        out: bytes
        if self._encode is not None:
            out = self._encode[samples.view(np.uint16)].tobytes()
        else:
            out = samples.astype(PCM16_DTYPE, copy=False).tobytes()
        return out

    def __repr__(self) -> str:
        return f"Transcoder({self.src} -> {self.dst})"
