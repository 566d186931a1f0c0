"""The one codec table: what each wire calls an audio format voxline carries.

A :class:`Codec` ties an :class:`~voxline.audio.AudioFormat` to its names on the telephony wires:
the RTP payload type and SDP ``rtpmap`` name (RFC 3551), the MIME type Twilio Media Streams use,
and the VoxEngine WebSocket media encoding. SIP/SDP, RTP and the carrier cores look formats up
here and nowhere else. The OpenAI Realtime format objects are the OpenAI client's business
(:mod:`voxline.openai.formats`).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import PCM16_8K, PCM16_16K, PCMA_8K, PCMU_8K, AudioFormat

__all__ = [
    "CODECS",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "Codec",
    "by_mime",
    "by_payload_type",
    "by_sdp_name",
    "by_voxengine",
    "for_format",
]

TELEPHONE_EVENT = "telephone-event"
"""The SDP name of RFC 4733 DTMF events (a dynamic payload type, 8000 Hz)."""


@dataclass(frozen=True, slots=True)
class Codec:
    """One audio format and its names. A name is None where that wire has no such format."""

    format: AudioFormat
    sdp_name: str | None = None  # rtpmap encoding name, matched case-insensitively
    payload_type: int | None = None  # static RTP payload type (RFC 3551)
    mime: str | None = None  # Twilio's mediaFormat.encoding, and an alias in the VoxEngine format
    voxengine: str | None = None  # the VoxEngine WebSocket media "encoding"

    @property
    def clock_rate(self) -> int:
        return self.format.rate


PCMU = Codec(PCMU_8K, sdp_name="PCMU", payload_type=0, mime="audio/x-mulaw", voxengine="ULAW")
PCMA = Codec(PCMA_8K, sdp_name="PCMA", payload_type=8, mime="audio/x-alaw", voxengine="ALAW")
L16_8K = Codec(PCM16_8K, voxengine="PCM8")
L16_16K = Codec(PCM16_16K, voxengine="PCM16")

CODECS: tuple[Codec, ...] = (PCMU, PCMA, L16_8K, L16_16K)

_BY_PT = {c.payload_type: c for c in CODECS if c.payload_type is not None}
_BY_SDP = {c.sdp_name.upper(): c for c in CODECS if c.sdp_name is not None}
_BY_MIME = {c.mime: c for c in CODECS if c.mime is not None}
_BY_VOXENGINE = {c.voxengine: c for c in CODECS if c.voxengine is not None}
_BY_FORMAT = {c.format: c for c in CODECS}


def by_payload_type(payload_type: int) -> Codec | None:
    """The codec of a static RTP payload type (0: PCMU, 8: PCMA), or None."""
    return _BY_PT.get(payload_type)


def by_sdp_name(name: str, clock_rate: int) -> Codec | None:
    """The codec of an ``a=rtpmap`` encoding name and clock rate, or None."""
    codec = _BY_SDP.get(name.upper())
    return codec if codec is not None and codec.clock_rate == clock_rate else None


def by_mime(mime: str) -> Codec | None:
    return _BY_MIME.get(mime)


def by_voxengine(encoding: str) -> Codec | None:
    """The codec of a VoxEngine WebSocket media encoding; its MIME spellings are accepted too."""
    return _BY_VOXENGINE.get(encoding) or _BY_MIME.get(encoding)


def for_format(fmt: AudioFormat) -> Codec | None:
    return _BY_FORMAT.get(fmt)
