"""Transcoder: pass-through identity, G.711 law conversion, decode -> resample -> encode paths."""

from __future__ import annotations

import numpy as np
import pytest

from voxline.audio import PCM16_8K, PCM16_16K, PCM16_24K, PCM16_48K, PCMA_8K, PCMU_8K, AudioFormat
from voxline.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxline.audio.resample import Resampler
from voxline.audio.tone import tone
from voxline.audio.transcode import Transcoder

SPEECHLIKE_8K = tone(440.0, 200, 8000, 0.4)
SPEECHLIKE_24K = tone(440.0, 200, 24000, 0.4)


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("fmt", [PCMU_8K, PCMA_8K, PCM16_24K, AudioFormat("pcm16", 16000, 2)])
def test_passthrough_returns_the_same_object(fmt: AudioFormat) -> None:
    transcoder = Transcoder(fmt, fmt)
    assert transcoder.passthrough
    data = bytes(fmt.frame_bytes)
    assert transcoder.process(data) is data
    assert transcoder.flush() == b"" and transcoder.delay_ms == 0.0


def test_ulaw_alaw_conversion_is_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert Transcoder(PCMU_8K, PCMA_8K).process(codes) == alaw_encode(ulaw_decode(codes))
    assert Transcoder(PCMA_8K, PCMU_8K).process(codes) == ulaw_encode(alaw_decode(codes))
    assert not Transcoder(PCMU_8K, PCMA_8K).passthrough


def test_same_rate_codec_changes() -> None:
    pcm = SPEECHLIKE_8K
    assert Transcoder(PCM16_8K, PCMU_8K).process(pcm) == ulaw_encode(pcm)
    assert Transcoder(PCM16_8K, PCMA_8K).process(pcm) == alaw_encode(pcm)
    assert Transcoder(PCMU_8K, PCM16_8K).process(ulaw_encode(pcm)) == ulaw_decode(ulaw_encode(pcm))
    assert Transcoder(PCMA_8K, PCM16_8K).flush() == b""


@pytest.mark.parametrize(("law", "decode"), [(PCMU_8K, ulaw_decode), (PCMA_8K, alaw_decode)])
def test_g711_to_24k_equals_decode_then_resample(law: AudioFormat, decode: object) -> None:
    assert callable(decode)
    encoded = ulaw_encode(SPEECHLIKE_8K) if law == PCMU_8K else alaw_encode(SPEECHLIKE_8K)
    transcoder = Transcoder(law, PCM16_24K)
    got = b"".join(transcoder.process(f) for f in frames(encoded, 160)) + transcoder.flush()
    reference = Resampler(8000, 24000)
    expected = reference.process(decode(encoded)) + reference.flush()
    assert got == expected
    assert len(got) == 3 * 2 * len(encoded)


@pytest.mark.parametrize(("law", "encode"), [(PCMU_8K, ulaw_encode), (PCMA_8K, alaw_encode)])
def test_24k_to_g711_equals_resample_then_encode(law: AudioFormat, encode: object) -> None:
    assert callable(encode)
    transcoder = Transcoder(PCM16_24K, law)
    parts = [transcoder.process(f) for f in frames(SPEECHLIKE_24K, 960)]
    assert {len(p) for p in parts[1:]} == {160}  # 20 ms of PCM16 24k -> 20 ms of G.711
    got = b"".join(parts) + transcoder.flush()
    reference = Resampler(24000, 8000)
    expected = encode(reference.process(SPEECHLIKE_24K) + reference.flush())
    assert got == expected
    assert len(got) == len(SPEECHLIKE_24K) // 6


def test_round_trip_ulaw_24k_ulaw_keeps_the_signal() -> None:
    up, down = Transcoder(PCMU_8K, PCM16_24K), Transcoder(PCM16_24K, PCMU_8K)
    encoded = ulaw_encode(SPEECHLIKE_8K)
    back = b"".join(down.process(up.process(f)) for f in frames(encoded, 160))
    back += down.process(up.flush()) + down.flush()
    assert len(back) == len(encoded)
    original = np.frombuffer(ulaw_decode(encoded), "<i2").astype(float)
    result = np.frombuffer(ulaw_decode(back), "<i2").astype(float)
    err = (result - original)[40:-40]
    assert 10 * np.log10(np.sum(original[40:-40] ** 2) / np.sum(err**2)) > 30  # two μ-law quantizations


@pytest.mark.parametrize(("src", "dst"), [(PCM16_16K, PCM16_48K), (PCM16_48K, PCMU_8K), (PCMA_8K, PCM16_16K)])
def test_other_conversions_have_the_right_length(src: AudioFormat, dst: AudioFormat) -> None:
    transcoder = Transcoder(src, dst)
    data = bytes(src.frame_bytes * 5)
    out = b"".join(transcoder.process(f) for f in frames(data, src.frame_bytes)) + transcoder.flush()
    assert len(out) == dst.frame_bytes * 5


def test_reset_drops_the_tail() -> None:
    transcoder = Transcoder(PCMU_8K, PCM16_24K)
    transcoder.process(ulaw_encode(SPEECHLIKE_8K[:320]))
    assert transcoder.delay_ms > 0
    transcoder.reset()
    assert transcoder.flush() == b""


def test_bad_input_is_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="data"):
        Transcoder(PCM16_24K, PCMU_8K).process(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="data"):
        Transcoder(AudioFormat("pcm16", 8000, 2), AudioFormat("pcmu", 8000, 2)).process(b"\x00\x01")
    with pytest.raises(ValueError, match="channel"):
        Transcoder(AudioFormat("pcm16", 24000, 2), PCM16_24K)
    with pytest.raises(ValueError, match="mono"):
        Transcoder(AudioFormat("pcm16", 24000, 2), AudioFormat("pcm16", 16000, 2))
    with pytest.raises(TypeError, match="src"):
        Transcoder("pcmu", PCM16_24K)  # type: ignore[arg-type]


class _NoNumpy:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"numpy.{name} used on a path that must not use numpy")


def test_passthrough_and_law_conversion_use_no_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    same, law = Transcoder(PCMU_8K, PCMU_8K), Transcoder(PCMU_8K, PCMA_8K)
    monkeypatch.setattr("voxline.audio.transcode.np", _NoNumpy())
    frame = bytes(range(160))
    assert same.process(frame) is frame
    assert law.process(frame) == alaw_encode(ulaw_decode(frame))
    with pytest.raises(AssertionError, match="numpy"):  # the guard itself works
        Transcoder(PCMU_8K, PCM16_8K).process(frame)
