"""The one codec table: RTP payload types, SDP names, carrier encodings, AudioFormat."""

from __future__ import annotations

from voxline.audio import PCM16_8K, PCM16_16K, PCM16_24K, PCMA_8K, PCMU_8K, codecs
from voxline.carriers.twilio import TWILIO_FORMAT
from voxline.carriers.wsmedia import encoding_for_format, format_for_encoding
from voxline.rtp.session import RtpSession
from voxline.sip.sdp import CODECS as SDP_CODECS


def test_every_wire_name_maps_to_one_format() -> None:
    assert codecs.by_payload_type(0) is codecs.PCMU and codecs.by_payload_type(8) is codecs.PCMA
    assert codecs.by_payload_type(101) is None
    assert codecs.by_sdp_name("pcmu", 8000) is codecs.PCMU  # rtpmap names are case-insensitive
    assert codecs.by_sdp_name("PCMA", 8000) is codecs.PCMA
    assert codecs.by_sdp_name("PCMU", 16000) is None
    assert codecs.by_mime("audio/x-mulaw") is codecs.PCMU
    assert codecs.by_voxengine("ULAW") is codecs.PCMU and codecs.by_voxengine("audio/x-alaw") is codecs.PCMA
    assert codecs.by_voxengine("PCM16").format == PCM16_16K  # type: ignore[union-attr]
    assert codecs.for_format(PCM16_8K) is not None and codecs.for_format(PCM16_24K) is None


def test_the_wires_use_the_table() -> None:
    assert {name: c.payload_type for name, c in SDP_CODECS.items()} == {"PCMU": 0, "PCMA": 8}
    assert SDP_CODECS["PCMA"].format == PCMA_8K
    assert RtpSession(payload_type=8).format == PCMA_8K
    assert TWILIO_FORMAT == PCMU_8K
    for fmt in (PCM16_8K, PCM16_16K, PCMU_8K, PCMA_8K):
        assert format_for_encoding(encoding_for_format(fmt)) == fmt
