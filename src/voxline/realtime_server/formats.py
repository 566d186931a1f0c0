"""Audio in the session's formats: decoding client audio, encoding response audio, legacy names."""

from __future__ import annotations

from voxline.audio import AudioFormat
from voxline.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxline.audio.resample import Resampler

__all__ = ["decode_to_pcm", "legacy_format_name", "pcm_to_format"]


def decode_to_pcm(data: bytes, fmt: AudioFormat) -> bytes:
    """Audio in ``fmt`` -> PCM16 at ``fmt.rate`` (G.711 decoded; PCM16 as it is)."""
    if fmt.encoding == "pcmu":
        return ulaw_decode(data)
    if fmt.encoding == "pcma":
        return alaw_decode(data)
    return data


def pcm_to_format(pcm: bytes, rate: int, fmt: AudioFormat) -> bytes:
    """PCM16 mono at ``rate`` -> the session's output format (resampled, G.711-encoded when asked)."""
    if rate != fmt.rate:
        resampler = Resampler(rate, fmt.rate)
        pcm = resampler.process(pcm) + resampler.flush()
    if fmt.encoding == "pcmu":
        return ulaw_encode(pcm)
    if fmt.encoding == "pcma":
        return alaw_encode(pcm)
    return pcm


def legacy_format_name(fmt: AudioFormat) -> str:
    """``conversation.item.retrieved`` still labels audio content with the legacy names (live capture)."""
    return {"pcmu": "g711_ulaw", "pcma": "g711_alaw"}.get(fmt.encoding, "pcm16")
