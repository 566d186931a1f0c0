"""espeak-ng synthesis: rates, formats, cache, async, errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_tool
from voxline.audio import PCM16_8K, PCM16_24K, PCMA_8K, PCMU_8K
from voxline.audio.g711 import alaw_decode, ulaw_decode
from voxline.local.tts import EspeakNotFoundError, SynthesisError, Synthesizer, parse_espeak_wav


@pytest.fixture(scope="module")
def espeak() -> str:
    return require_tool("espeak-ng")


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 48000])
def test_output_rate_and_length(espeak: str, synthesizer: Synthesizer, rate: int) -> None:
    reference = synthesizer.synthesize("hello from the shop")  # 24 kHz
    pcm = Synthesizer(output_rate=rate).synthesize("hello from the shop")
    assert len(pcm) % 2 == 0
    # Same speech, other rate: the length scales with the rate (within the resampler's held tail).
    assert len(pcm) / 2 == pytest.approx(len(reference) / 2 * rate / 24000, abs=rate // 1000)
    assert rms(pcm) > 500  # speech, not silence


def test_session_formats(synthesizer: Synthesizer) -> None:
    text = "your order is on its way"
    pcm24 = synthesizer.synthesize(text)
    samples_8k = len(pcm24) // 2 // 3
    ulaw = synthesizer.synthesize_as(text, PCMU_8K)
    alaw = synthesizer.synthesize_as(text, PCMA_8K)
    assert abs(len(ulaw) - samples_8k) <= 8 and abs(len(alaw) - samples_8k) <= 8  # one byte per sample
    assert rms(ulaw_decode(ulaw)) == pytest.approx(rms(alaw_decode(alaw)), rel=0.05)
    assert synthesizer.synthesize_as(text, PCM16_24K) is pcm24  # same format: no conversion, no copy
    assert len(synthesizer.synthesize_as(text, PCM16_8K)) == pytest.approx(2 * samples_8k, abs=16)


def test_speaking_rate_changes_duration(espeak: str) -> None:
    text = "we are open from nine to six"
    slow = Synthesizer(rate_wpm=100, cache_size=0).synthesize(text)
    fast = Synthesizer(rate_wpm=250, cache_size=0).synthesize(text)
    assert len(slow) > 1.6 * len(fast)


def test_lru_cache(espeak: str) -> None:
    tts = Synthesizer(cache_size=2)
    a = tts.synthesize("one")
    assert tts.synthesize("  one ") is a  # whitespace does not matter
    tts.synthesize("two")
    tts.synthesize("one")  # refresh "one"
    tts.synthesize("three")  # evicts "two", the least recently used
    info = tts.cache_info()
    assert (info.hits, info.misses, info.entries, info.max_entries) == (2, 3, 2, 2)
    tts.synthesize("two")
    assert tts.cache_info().misses == 4
    tts.clear_cache()
    assert tts.cache_info().entries == 0
    uncached = Synthesizer(cache_size=0)
    assert uncached.synthesize("one") is not uncached.synthesize("one")


def test_blank_text_is_silence_without_a_process(espeak: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tts = Synthesizer()

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("espeak-ng must not run for blank text")

    monkeypatch.setattr(subprocess, "run", no_process)
    assert tts.synthesize("  \n ") == b""


def test_text_is_never_an_option(espeak: str) -> None:
    # Text goes in on stdin: a leading dash is spoken, not parsed as a command-line option.
    pcm = Synthesizer(cache_size=0).synthesize("--version")
    assert rms(pcm) > 500


async def test_async_matches_sync_and_runs_no_blocking_subprocess(
    espeak: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "thank you for calling"
    expected = Synthesizer(cache_size=0).synthesize(text)
    expected_ulaw = Synthesizer(cache_size=0).synthesize_as(text, PCMU_8K)
    tts = Synthesizer(cache_size=4)

    def blocking(*args: object, **kwargs: object) -> None:
        raise AssertionError("the async path must not call subprocess.run")

    monkeypatch.setattr(subprocess, "run", blocking)
    results = await asyncio.gather(tts.synthesize_async(text), tts.synthesize_async("goodbye"))
    assert results[0] == expected
    assert await tts.synthesize_async(text) is tts._cached(tts._key(text))  # served from the cache
    assert await tts.synthesize_as_async(text, PCMU_8K) == expected_ulaw


def espeak_children() -> list[int]:
    """Our espeak-ng child processes (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if "(espeak-ng" in fields[0] and int(fields[1].split()[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_async_cancellation_kills_espeak(espeak: str) -> None:
    tts = Synthesizer(cache_size=0)
    task = asyncio.create_task(tts.synthesize_async("a long sentence to speak " * 400))
    for _ in range(500):  # wait until espeak-ng is running (bounded; not a timing assertion)
        await asyncio.sleep(0.01)
        if espeak_children():
            break
    assert espeak_children(), "espeak-ng never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert espeak_children() == []


def test_missing_espeak_names_the_package() -> None:
    with pytest.raises(EspeakNotFoundError, match=r"apt-get install espeak-ng"):
        Synthesizer(executable="/nonexistent/espeak-ng")


def test_unknown_voice_is_a_synthesis_error(espeak: str) -> None:
    tts = Synthesizer(voice="xx-nosuchvoice")
    with pytest.raises(SynthesisError, match="xx-nosuchvoice"):
        tts.synthesize("hello")


async def test_unknown_voice_async(espeak: str) -> None:
    with pytest.raises(SynthesisError, match="xx-nosuchvoice"):
        await Synthesizer(voice="xx-nosuchvoice").synthesize_async("hello")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"voice": "--help"}, "voice"),
        ({"voice": "en us"}, "voice"),
        ({"rate_wpm": 10}, "rate_wpm"),
        ({"pitch": 120}, "pitch"),
        ({"word_gap_ms": -1}, "word_gap_ms"),
        ({"output_rate": 44100}, "output_rate"),
        ({"cache_size": -1}, "cache_size"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Synthesizer(**kwargs)  # type: ignore[arg-type]


def test_parse_espeak_wav() -> None:
    header = b"RIFF\xff\xff\xff\x7fWAVEfmt " + (16).to_bytes(4, "little")
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little")
    fmt += (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    stream = header + fmt + b"data\xff\xff\xff\x7f" + b"\x01\x00\x02\x00\x03"
    assert parse_espeak_wav(stream) == b"\x01\x00\x02\x00"  # placeholder sizes; odd byte dropped
    with pytest.raises(SynthesisError, match="WAV"):
        parse_espeak_wav(b"not a wav")
    with pytest.raises(SynthesisError, match="format"):
        parse_espeak_wav(stream.replace((22050).to_bytes(4, "little"), (16000).to_bytes(4, "little")))
