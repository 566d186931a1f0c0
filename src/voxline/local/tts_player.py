"""The embedded espeak-ng voice as a streaming speech provider (offline; the demo's half-cascade).

Sentences are rendered as they complete (:class:`voxline.tts.segmented.SegmentedStream`), each one
espeak-ng process; heard text is estimated within a sentence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from voxline.audio import PCMU_8K, AudioFormat
from voxline.media.tts import SpeechSink
from voxline.tts.segmented import SegmentedStream

from .tts import Synthesizer

__all__ = ["EspeakTTS"]


class EspeakTTS:
    """A :class:`~voxline.media.tts.SpeechProvider` over :class:`~voxline.local.tts.Synthesizer`
    (``voice``, ``rate_wpm``: espeak-ng's), producing ``media_format`` (μ-law 8 kHz by default)."""

    def __init__(
        self,
        voice: str = "en-us",
        rate_wpm: int = 160,
        *,
        media_format: AudioFormat = PCMU_8K,
        synthesizer: Synthesizer | None = None,
    ) -> None:
        if not isinstance(media_format, AudioFormat) or media_format.channels != 1:
            raise ValueError(f"parameter 'media_format' must be a mono AudioFormat, got {media_format!r}")
        self.synthesizer = synthesizer or Synthesizer(voice, rate_wpm)
        self._format = media_format

    @property
    def media_format(self) -> AudioFormat:
        return self._format

    def open_stream(self, sink: SpeechSink) -> SegmentedStream:
        return SegmentedStream(sink, self._render, self._format, name="espeak-ng")

    async def _render(self, text: str) -> AsyncIterator[bytes]:
        yield await self.synthesizer.synthesize_as_async(text, self._format)

    def close(self) -> None:
        pass
