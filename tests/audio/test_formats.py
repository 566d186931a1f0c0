"""AudioFormat, Frame, tone() and silence()."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from voxline.audio import (
    FRAME_MS,
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    PCM16_48K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    Frame,
)
from voxline.audio.g711 import alaw_decode, ulaw_decode
from voxline.audio.tone import silence, tone


def test_constants_and_sizes() -> None:
    assert FRAME_MS == 20
    assert (PCMU_8K.bytes_per_sample, PCMU_8K.bytes_per_ms, PCMU_8K.frame_bytes) == (1, 8, 160)
    assert (PCMA_8K.bytes_per_sample, PCMA_8K.frame_bytes) == (1, 160)
    assert (PCM16_8K.bytes_per_ms, PCM16_8K.frame_bytes) == (16, 320)
    assert PCM16_16K.frame_bytes == 640
    assert (PCM16_24K.bytes_per_sample, PCM16_24K.bytes_per_ms, PCM16_24K.frame_bytes) == (2, 48, 960)
    assert PCM16_48K.frame_bytes == 1920
    assert AudioFormat("pcm16", 48000, channels=2).frame_bytes == 3840
    assert PCM16_24K.duration_ms(960) == 20.0 and PCMU_8K.duration_ms(4) == 0.5


def test_formats_are_frozen_and_hashable_values() -> None:
    assert AudioFormat("pcmu", 8000) == PCMU_8K
    assert len({PCMU_8K, AudioFormat("pcmu", 8000), PCM16_24K}) == 2
    with pytest.raises(AttributeError):
        PCMU_8K.rate = 16000  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "param"),
    [
        (("opus", 48000), "encoding"),
        (("pcm16", 44100), "rate"),
        (("pcm16", 0), "rate"),
        (("pcm16", 24000.0), "rate"),
        (("pcmu", 16000), "rate"),
        (("pcma", 24000), "rate"),
        (("pcm16", 24000, 0), "channels"),
    ],
)
def test_invalid_formats_name_the_parameter(args: tuple[Any, ...], param: str) -> None:
    with pytest.raises(ValueError, match=param):
        AudioFormat(*args)


def test_frame_keeps_the_bytes_object() -> None:
    data = bytes(160)
    frame = Frame(data, PCMU_8K, timestamp_ms=40)
    assert frame.data is data
    assert frame.duration_ms == 20.0 and frame.timestamp_ms == 40
    assert not hasattr(frame, "__dict__")  # slots: cheap per-frame objects


def test_tone_has_the_requested_frequency_amplitude_and_length() -> None:
    pcm = tone(1000.0, 100, 16000, amplitude=0.5)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    assert samples.size == 1600
    assert abs(samples.max() - 0.5 * 32767) <= 1 and abs(samples.min() + 0.5 * 32767) <= 1
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / samples.size == 1000.0


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"freq_hz": -1.0}, "freq_hz"),
        ({"freq_hz": float("nan")}, "freq_hz"),
        ({"amplitude": 1.5}, "amplitude"),
        ({"duration_ms": -20}, "duration_ms"),
        ({"rate": 0}, "rate"),
    ],
)
def test_tone_rejects_bad_arguments(kwargs: dict[str, Any], param: str) -> None:
    args: dict[str, Any] = {"freq_hz": 440.0, "duration_ms": 20, "rate": 8000} | kwargs
    with pytest.raises(ValueError, match=param):
        tone(**args)


def test_silence_is_encoded_silence() -> None:
    assert silence(20, PCMU_8K) == b"\xff" * 160
    assert silence(20, PCMA_8K) == b"\xd5" * 160
    assert silence(20, PCM16_24K) == bytes(960)
    assert silence(10, AudioFormat("pcm16", 16000, 2)) == bytes(640)
    assert set(ulaw_decode(silence(20, PCMU_8K))) == {0}
    assert max(abs(v) for v in np.frombuffer(alaw_decode(silence(20, PCMA_8K)), "<i2")) == 8  # A-law has no 0
    with pytest.raises(ValueError, match="duration_ms"):
        silence(-1, PCMU_8K)
