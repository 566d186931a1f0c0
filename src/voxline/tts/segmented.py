"""Speech from services that take whole texts (OpenAI's ``/v1/audio/speech``, the embedded espeak-ng
voice): the turn's text is cut into sentences as it arrives and rendered one sentence at a time, in
order, so the first sentence plays while the model is still writing the next.

These services give no timestamps. Each sentence's characters are spread evenly over its audio
(``estimated``): provisionally at the speaking rate measured so far while the sentence streams, then
over its real duration once it has been rendered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from voxline._tasks import background
from voxline.audio import AudioFormat
from voxline.media.tts import SpeechSink, TextSpan

__all__ = ["Render", "SegmentedStream", "split_sentences", "spread"]

log = logging.getLogger("voxline.tts.segmented")

# A sentence ends at . ! ? ; or : followed by whitespace (or a newline): enough text to sound right.
_BOUNDARY = re.compile(r"[.!?;:…]+[\"')\]]*\s+|\n+")
DEFAULT_CHARS_PER_S = 15.0  # about 160 words a minute


class Render(Protocol):
    def __call__(self, text: str) -> AsyncIterator[bytes]: ...


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences of ``text`` (each with its trailing whitespace) and the rest."""
    sentences = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        sentences.append(text[start : match.end()])
        start = match.end()
    return sentences, text[start:]


def spread(text: str, offset: int, start_ms: float, end_ms: float) -> list[TextSpan]:
    """One span per word of ``text`` (which starts at character ``offset`` of the turn), the words'
    characters spread evenly over ``[start_ms, end_ms)``."""
    length = len(text.rstrip())
    if length == 0:
        return []
    per_char = max(0.0, end_ms - start_ms) / length
    return [
        TextSpan(
            offset + m.start(),
            offset + m.end(),
            round(start_ms + m.start() * per_char),
            round(start_ms + m.end() * per_char),
        )
        for m in re.finditer(r"\S+", text[:length])
    ]


class SegmentedStream:
    """A :class:`~voxline.media.tts.SpeechStream` over a whole-text ``render(text)`` (an async
    iterator of audio chunks in ``fmt``)."""

    def __init__(
        self,
        sink: SpeechSink,
        render: Callable[[str], AsyncIterator[bytes]],
        fmt: AudioFormat,
        *,
        name: str,
    ) -> None:
        self._sink = sink
        self._render = render
        self._format = fmt
        self._name = name
        self._pending = ""
        self._offset = 0  # turn characters already queued
        self._queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        self._ended = False
        self._cancelled = False
        self._audio_bytes = 0
        self._chars_per_s = DEFAULT_CHARS_PER_S
        self._task = background(self._work(), name=f"voxline-tts-{name}")

    def send_text(self, text: str) -> None:
        if self._ended or self._cancelled or not text:
            return
        sentences, self._pending = split_sentences(self._pending + text)
        for sentence in sentences:
            self._queue_segment(sentence)

    def end(self) -> None:
        if self._ended or self._cancelled:
            return
        self._ended = True
        if self._pending:
            self._queue_segment(self._pending)
            self._pending = ""
        self._queue.put_nowait(None)

    def cancel(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            self._task.cancel()  # closes the request in flight: the service stops rendering

    def _queue_segment(self, text: str) -> None:
        self._queue.put_nowait((self._offset, text))
        self._offset += len(text)

    async def _work(self) -> None:
        fmt = self._format
        try:
            while (segment := await self._queue.get()) is not None:
                offset, text = segment
                if not text.strip():
                    continue
                start_ms = fmt.duration_ms(self._audio_bytes)
                provisional = start_ms + 1000.0 * len(text.rstrip()) / self._chars_per_s
                self._sink.timings(spread(text, offset, start_ms, provisional), estimated=True)
                async for chunk in self._render(text.strip()):
                    if self._cancelled:
                        return
                    self._audio_bytes += len(chunk)
                    self._sink.audio(chunk)
                end_ms = fmt.duration_ms(self._audio_bytes)
                if end_ms > start_ms:
                    self._chars_per_s = len(text.rstrip()) * 1000.0 / (end_ms - start_ms)
                self._sink.timings(spread(text, offset, start_ms, end_ms), estimated=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s speech failed: %s", self._name, exc)
            self._sink.failed(f"{self._name}: {exc}")
            return
        if not self._cancelled:
            self._sink.done()
