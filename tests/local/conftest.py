"""Speech for the offline-backend tests: espeak-ng output, synthesized once per test session."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import require_module, require_tool
from voxline.audio import PCM16_24K, AudioFormat
from voxline.audio.transcode import Transcoder
from voxline.local.tts import Synthesizer

# espeak-ng's own leading/trailing near-silence is trimmed at this level (-44 dBFS) so that the
# "truth" of a speech test is exactly the padding the test adds.
TRIM_LEVEL = 200


@pytest.fixture(scope="session")
def synthesizer() -> Synthesizer:
    require_tool("espeak-ng")
    return Synthesizer(output_rate=24000, cache_size=256)


@pytest.fixture(scope="session")
def speech(synthesizer: Synthesizer) -> Callable[..., bytes]:
    """``speech(text, fmt=PCM16_24K, trim=False)``: espeak-ng audio in ``fmt``, cached."""
    cache: dict[tuple[str, AudioFormat, bool], bytes] = {}

    def make(text: str, fmt: AudioFormat = PCM16_24K, trim: bool = False) -> bytes:
        key = (text, fmt, trim)
        if key not in cache:
            pcm = synthesizer.synthesize(text)
            if trim:
                pcm = trim_silence(pcm)
            transcoder = Transcoder(PCM16_24K, fmt)
            cache[key] = pcm if transcoder.passthrough else transcoder.process(pcm) + transcoder.flush()
        return cache[key]

    return make


def trim_silence(pcm: bytes, level: int = TRIM_LEVEL) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > level)[0]
    if loud.size == 0:
        return b""
    return samples[loud[0] : loud[-1] + 1].tobytes()


@pytest.fixture(scope="session")
def pocketsphinx() -> None:
    require_module("pocketsphinx")


@pytest.fixture(scope="session")
def webrtcvad() -> None:
    require_module("webrtcvad")
