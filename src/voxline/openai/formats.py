"""OpenAI Realtime audio format objects and voxline's :class:`~voxline.audio.AudioFormat`.

GA session formats are objects: ``{"type": "audio/pcm", "rate": 24000}`` (PCM16, 24 kHz only),
``{"type": "audio/pcmu"}`` and ``{"type": "audio/pcma"}`` (G.711, 8 kHz). The legacy (beta) strings
``pcm16``, ``g711_ulaw`` and ``g711_alaw`` are accepted on input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voxline.audio import PCM16_24K, PCMA_8K, PCMU_8K, AudioFormat

__all__ = ["LEGACY_FORMATS", "from_openai", "to_openai"]

LEGACY_FORMATS: dict[str, AudioFormat] = {"pcm16": PCM16_24K, "g711_ulaw": PCMU_8K, "g711_alaw": PCMA_8K}


def from_openai(fmt: Mapping[str, Any] | str) -> AudioFormat:
    """The format of an OpenAI Realtime session format object (GA) or legacy format string."""
    if isinstance(fmt, str):
        if fmt not in LEGACY_FORMATS:
            raise ValueError(f"fmt: unknown OpenAI audio format {fmt!r}")
        return LEGACY_FORMATS[fmt]
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


def to_openai(fmt: AudioFormat) -> dict[str, Any]:
    """The OpenAI Realtime (GA) format object; only mono pcm16 at 24 kHz, pcmu and pcma exist."""
    if fmt.channels == 1:
        if fmt.encoding == "pcmu":
            return {"type": "audio/pcmu"}
        if fmt.encoding == "pcma":
            return {"type": "audio/pcma"}
        if fmt.rate == 24000:
            return {"type": "audio/pcm", "rate": 24000}
    raise ValueError(f"{fmt} has no OpenAI Realtime equivalent (pcm16 24 kHz mono, pcmu, pcma)")
