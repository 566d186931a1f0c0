"""Audio basics: formats, 20 ms frames, G.711, resampling, transcoding, WAV files, test tones.

``AudioFormat`` names what a byte stream holds (encoding, sample rate, channels); ``Frame`` is one
chunk of such bytes (normally 20 ms) with its media timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
