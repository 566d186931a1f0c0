"""Test signals: sine tones (PCM16) and encoded silence in any format."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from . import AudioFormat

__all__ = ["silence", "tone"]

_SILENCE_BYTE = {"pcmu": b"\xff", "pcma": b"\xd5"}


def tone(freq_hz: float, duration_ms: int, rate: int, amplitude: float = 0.3) -> bytes:
    """A mono PCM16 little-endian sine of ``freq_hz`` at ``amplitude`` (fraction of full scale)."""
    if not math.isfinite(freq_hz) or freq_hz < 0:
        raise ValueError(f"freq_hz must be a finite frequency >= 0, got {freq_hz!r}")
    if duration_ms < 0:
        raise ValueError(f"duration_ms must be >= 0, got {duration_ms!r}")
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be within [0, 1], got {amplitude!r}")
    n = rate * duration_ms // 1000
    t = np.arange(n, dtype=np.float64) / rate
    # Annotated: older numpy stubs type ufunc results as Any.
    wave: npt.NDArray[np.float64] = np.rint(np.sin(2.0 * np.pi * freq_hz * t) * (amplitude * 32767.0))
    return wave.astype("<i2").tobytes()


def silence(duration_ms: int, fmt: AudioFormat) -> bytes:
    """``duration_ms`` of encoded silence: 0xFF for pcmu, 0xD5 for pcma, zeros for pcm16."""
    if duration_ms < 0:
        raise ValueError(f"duration_ms must be >= 0, got {duration_ms!r}")
    n = fmt.rate * duration_ms // 1000 * fmt.channels
    if fmt.encoding == "pcm16":
        return bytes(2 * n)
    return _SILENCE_BYTE[fmt.encoding] * n
