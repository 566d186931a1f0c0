"""Audio basics: formats, 20 ms frames, G.711, resampling, transcoding, WAV files, test tones.

``AudioFormat`` names what a byte stream holds (encoding, sample rate, channels); ``Frame`` is one
chunk of such bytes (normally 20 ms) with its media timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FRAME_MS",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_24K",
    "PCM16_48K",
    "PCMA_8K",
    "PCMU_8K",
    "AudioFormat",
    "Encoding",
    "Frame",
]

Encoding = Literal["pcm16", "pcmu", "pcma"]

FRAME_MS = 20
"""The media clock's tick: every audio path moves 20 ms frames."""

_ENCODINGS: tuple[str, ...] = ("pcm16", "pcmu", "pcma")
# Legacy (beta) Realtime session format strings, accepted by from_openai for convenience.
_LEGACY_OPENAI: dict[str, tuple[Encoding, int]] = {
    "pcm16": ("pcm16", 24000),
    "g711_ulaw": ("pcmu", 8000),
    "g711_alaw": ("pcma", 8000),
}


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What a stream of audio bytes holds. PCM16 is signed 16-bit little-endian, interleaved."""

    encoding: Encoding
    rate: int
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in _ENCODINGS:
            raise ValueError(f"encoding must be one of {_ENCODINGS}, got {self.encoding!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, int) or self.rate <= 0:
            raise ValueError(f"rate must be a positive int (Hz), got {self.rate!r}")
        if self.rate % 1000:
            # Whole bytes per millisecond keep frame arithmetic exact.
            raise ValueError(f"rate must be a multiple of 1000 Hz, got {self.rate}")
        if self.encoding != "pcm16" and self.rate != 8000:
            raise ValueError(f"rate of {self.encoding} must be 8000 Hz, got {self.rate}")
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {self.channels!r}")

    @property
    def bytes_per_sample(self) -> int:
        """Bytes of one sample of one channel: 2 for PCM16, 1 for G.711."""
        return 2 if self.encoding == "pcm16" else 1

    @property
    def bytes_per_ms(self) -> int:
        return self.rate // 1000 * self.bytes_per_sample * self.channels

    @property
    def frame_bytes(self) -> int:
        """Bytes in one FRAME_MS (20 ms) frame."""
        return self.bytes_per_ms * FRAME_MS

    def duration_ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_ms

    @classmethod
    def from_openai(cls, fmt: Mapping[str, Any] | str) -> AudioFormat:
        """The format of an OpenAI Realtime session format object (GA) or legacy format string."""
        if isinstance(fmt, str):
            if fmt not in _LEGACY_OPENAI:
                raise ValueError(f"fmt: unknown OpenAI audio format {fmt!r}")
            encoding, rate = _LEGACY_OPENAI[fmt]
            return cls(encoding, rate)
        if not isinstance(fmt, Mapping):
            raise ValueError(f"fmt must be a mapping like {{'type': 'audio/pcm'}}, got {fmt!r}")
        kind = fmt.get("type")
        if kind == "audio/pcm":
            rate = fmt.get("rate", 24000)
            if rate != 24000:
                raise ValueError(f"fmt: audio/pcm supports only rate 24000, got {rate!r}")
            return PCM16_24K
        if kind == "audio/pcmu":
            return PCMU_8K
        if kind == "audio/pcma":
            return PCMA_8K
        raise ValueError(f"fmt: unknown OpenAI audio format type {kind!r}")

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI Realtime (GA) format object; only mono pcm16 at 24 kHz, pcmu and pcma exist."""
        if self.channels == 1:
            if self.encoding == "pcmu":
                return {"type": "audio/pcmu"}
            if self.encoding == "pcma":
                return {"type": "audio/pcma"}
            if self.rate == 24000:
                return {"type": "audio/pcm", "rate": 24000}
        raise ValueError(f"{self} has no OpenAI Realtime equivalent (pcm16 24 kHz mono, pcmu, pcma)")

    def __str__(self) -> str:
        ch = "" if self.channels == 1 else f"x{self.channels}"
        return f"{self.encoding}/{self.rate}{ch}"


PCMU_8K = AudioFormat("pcmu", 8000)
PCMA_8K = AudioFormat("pcma", 8000)
PCM16_8K = AudioFormat("pcm16", 8000)
PCM16_16K = AudioFormat("pcm16", 16000)
PCM16_24K = AudioFormat("pcm16", 24000)
PCM16_48K = AudioFormat("pcm16", 48000)


@dataclass(slots=True)
class Frame:
    """One chunk of audio (normally FRAME_MS long) and its media timestamp.

    ``data`` is the bytes object as received: frames never copy audio.
    """

    data: bytes
    format: AudioFormat
    timestamp_ms: int = 0

    @property
    def duration_ms(self) -> float:
        return self.format.duration_ms(len(self.data))
