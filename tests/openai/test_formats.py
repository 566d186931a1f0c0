"""OpenAI Realtime format objects <-> AudioFormat (voxline.openai.formats)."""

from __future__ import annotations

from typing import Any

import pytest

from voxline.audio import PCM16_8K, PCM16_16K, PCM16_24K, PCM16_48K, PCMA_8K, PCMU_8K, AudioFormat
from voxline.openai.formats import from_openai, to_openai


def test_openai_format_round_trip() -> None:
    assert from_openai({"type": "audio/pcm", "rate": 24000}) == PCM16_24K
    assert from_openai({"type": "audio/pcm"}) == PCM16_24K
    assert from_openai({"type": "audio/pcmu"}) == PCMU_8K
    assert from_openai({"type": "audio/pcma"}) == PCMA_8K
    assert from_openai("g711_ulaw") == PCMU_8K  # legacy session strings
    assert from_openai("pcm16") == PCM16_24K
    assert to_openai(PCM16_24K) == {"type": "audio/pcm", "rate": 24000}
    assert to_openai(PCMU_8K) == {"type": "audio/pcmu"}
    assert to_openai(PCMA_8K) == {"type": "audio/pcma"}
    for fmt in (PCM16_24K, PCMU_8K, PCMA_8K):
        assert from_openai(to_openai(fmt)) == fmt


@pytest.mark.parametrize(
    "bad", [{"type": "audio/pcm", "rate": 16000}, {"type": "audio/opus"}, {}, "g722", 42]
)
def test_from_openai_rejects_unknown_formats(bad: Any) -> None:
    with pytest.raises(ValueError, match="fmt"):
        from_openai(bad)


@pytest.mark.parametrize("fmt", [PCM16_8K, PCM16_16K, PCM16_48K, AudioFormat("pcm16", 24000, 2)])
def test_to_openai_rejects_formats_openai_lacks(fmt: AudioFormat) -> None:
    with pytest.raises(ValueError, match="OpenAI"):
        to_openai(fmt)
