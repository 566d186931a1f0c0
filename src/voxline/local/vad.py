"""Voice activity detection for the offline backend: webrtcvad plus the server_vad turn rules.

Sans-I/O: :meth:`VoiceActivityDetector.feed` takes PCM16 bytes (any chunk size) and returns the
speech-start / speech-stop events found in them, each with positions in milliseconds of the audio
fed so far (counted in samples, so they do not drift). No clock, no I/O.

webrtcvad classifies 10/20/30 ms frames at 8 or 16 kHz; 24 and 48 kHz input is resampled to 16 kHz
first. Its aggressiveness (0..3) comes from OpenAI's ``threshold`` (0..1): higher threshold, more
aggressive, fewer false starts on noise.

Turn rules, as OpenAI documents ``server_vad``:

- speech starts when ``onset_ms`` out of the last ``onset_window_ms`` of frames are voiced; the
  speech start is the first voiced frame of that window. ``audio_start_ms`` includes
  ``prefix_padding_ms`` before it (never before 0).
- speech stops after ``silence_duration_ms`` without a voiced frame; ``speech_end_ms`` is the end of
  the last voiced frame, ``audio_end_ms`` includes the silence (as OpenAI's ``audio_end_ms`` does).

Cost: a few microseconds per 10 ms frame (see docs/local-backend.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voxline.audio.resample import Resampler

__all__ = [
    "SpeechStarted",
    "SpeechStopped",
    "VadEvent",
    "VadParams",
    "VoiceActivityDetector",
    "aggressiveness_for_threshold",
]

_INPUT_RATES = (8000, 16000, 24000, 48000)
_FRAME_MS = (10, 20, 30)
# webrtcvad's hangover after a long speech run, in frames of 10/20/30 ms (kOverHangMax2* in its
# vad_core.c): modes 0-1, then modes 2-3.
_HANGOVER_LOW = (14, 7, 5)
_HANGOVER_HIGH = (9, 5, 3)


def aggressiveness_for_threshold(threshold: float) -> int:
    """OpenAI's ``threshold`` 0..1 -> webrtcvad mode 0..3 (0.5, the default, -> 2)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0.0 and 1.0, got {threshold}")
    return min(3, int(threshold * 4))


@dataclass(frozen=True, slots=True)
class VadParams:
    """The ``server_vad`` settings the detector honours (OpenAI's defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    def __post_init__(self) -> None:
        aggressiveness_for_threshold(self.threshold)
        if self.prefix_padding_ms < 0:
            raise ValueError(f"prefix_padding_ms must be >= 0, got {self.prefix_padding_ms}")
        if self.silence_duration_ms <= 0:
            raise ValueError(f"silence_duration_ms must be > 0, got {self.silence_duration_ms}")

    @classmethod
    def from_openai(cls, turn_detection: Mapping[str, Any]) -> VadParams:
        """From a session's ``turn_detection`` object (``{"type": "server_vad", ...}``).

        Missing keys take OpenAI's defaults; other keys (``create_response``, ``idle_timeout_ms``...)
        are the server's business and ignored here. Raises ``ValueError`` naming a bad key.
        """
        kind = turn_detection.get("type", "server_vad")
        if kind != "server_vad":
            raise ValueError(
                f"turn_detection.type {kind!r} is not supported by the local VAD (use 'server_vad')"
            )
        values: dict[str, Any] = {}
        for key, types in (
            ("threshold", (int, float)),
            ("prefix_padding_ms", (int,)),
            ("silence_duration_ms", (int,)),
        ):
            if key not in turn_detection or turn_detection[key] is None:
                continue
            value = turn_detection[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise ValueError(f"turn_detection.{key} must be a number, got {value!r}")
            values[key] = value
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"turn_detection: {exc}") from None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    speech_start_ms: int  # first voiced frame
    audio_start_ms: int  # what OpenAI reports: speech start minus prefix padding
    detected_at_ms: int  # audio position when the detector decided


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    speech_end_ms: int  # end of the last voiced frame
    audio_end_ms: int  # what OpenAI reports: includes the silence duration
    detected_at_ms: int


VadEvent = SpeechStarted | SpeechStopped


class VoiceActivityDetector:
    """Speech start/stop events from a stream of PCM16 mono audio at ``input_rate``."""

    def __init__(
        self,
        input_rate: int = 24000,
        params: VadParams | None = None,
        *,
        frame_ms: int = 10,
        onset_window_ms: int = 100,
        onset_ms: int = 60,
        warmup_ms: int = 100,
    ) -> None:
        if input_rate not in _INPUT_RATES:
            raise ValueError(f"input_rate must be one of {_INPUT_RATES}, got {input_rate}")
        if frame_ms not in _FRAME_MS:
            raise ValueError(f"frame_ms must be one of {_FRAME_MS}, got {frame_ms}")
        if onset_window_ms < frame_ms or onset_window_ms % frame_ms:
            raise ValueError(f"onset_window_ms must be a multiple of frame_ms, got {onset_window_ms}")
        if not frame_ms <= onset_ms <= onset_window_ms:
            raise ValueError(f"onset_ms must be between frame_ms and onset_window_ms, got {onset_ms}")
        if warmup_ms < 0:
            raise ValueError(f"warmup_ms must be >= 0, got {warmup_ms}")
        try:
            import webrtcvad
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "voice activity detection needs webrtcvad: pip install 'voxline[local]'"
            ) from exc
        self.input_rate = input_rate
        self.params = params or VadParams()
        self.frame_ms = frame_ms
        self._rate = 8000 if input_rate == 8000 else 16000
        self._resampler = Resampler(input_rate, self._rate) if input_rate != self._rate else None
        mode = aggressiveness_for_threshold(self.params.threshold)
        self._vad = webrtcvad.Vad(mode)
        # webrtcvad keeps saying "speech" for a few frames after speech ends (its hangover, longer in
        # the less aggressive modes); the end of speech is reported without it.
        hangover_frames = (_HANGOVER_LOW if mode < 2 else _HANGOVER_HIGH)[_FRAME_MS.index(frame_ms)]
        self._hangover_samples = (
            hangover_frames * (input_rate if input_rate == 8000 else 16000) * frame_ms // 1000
        )
        self._frame_samples = self._rate * frame_ms // 1000
        self._frame_bytes = self._frame_samples * 2
        self._window = onset_window_ms // frame_ms
        self._onset_frames = -(-onset_ms // frame_ms)
        self._warmup_frames = -(-warmup_ms // frame_ms)
        self._buffer = bytearray()
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state (positions restart at 0)."""
        self._buffer.clear()
        if self._resampler is not None:
            self._resampler.reset()
        self._samples = 0  # at the detector's internal rate: frames classified so far
        self._fed_bytes = 0
        self._recent: deque[int] = deque(maxlen=self._window)  # start sample of each frame, -1 if unvoiced
        self._voiced_in_window = 0
        self._speaking = False
        self._last_voiced_end = 0
        self._speech_start = 0
        self.frames = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position_ms(self) -> float:
        """Audio fed so far, in ms."""
        return self._fed_bytes / (2 * self.input_rate) * 1000.0

    def _ms(self, samples: int) -> int:
        return round(samples * 1000 / self._rate)

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Classify ``pcm`` (PCM16 at ``input_rate``, any length); the events it completes, in order."""
        if len(pcm) & 1:
            raise ValueError(f"PCM16 chunks have an even number of bytes, got {len(pcm)}")
        self._fed_bytes += len(pcm)
        data = self._resampler.process(pcm) if self._resampler is not None else pcm
        if self._buffer:  # a partial frame is left from the previous call
            data = bytes(self._buffer) + data
            self._buffer.clear()
        events: list[VadEvent] = []
        frame_bytes = self._frame_bytes
        n_frames = len(data) // frame_bytes
        view = memoryview(data)
        for i in range(n_frames):
            event = self._classify(
                self._vad.is_speech(view[i * frame_bytes : (i + 1) * frame_bytes], self._rate)
            )
            if event is not None:
                events.append(event)
        if len(data) > n_frames * frame_bytes:
            self._buffer += view[n_frames * frame_bytes :]
        return events

    def _classify(self, voiced: bool) -> VadEvent | None:
        start = self._samples
        end = start + self._frame_samples
        self._samples = end
        self.frames += 1
        if self.frames <= self._warmup_frames:
            # webrtcvad's noise model starts from defaults: its first decisions on noise say "speech".
            voiced = False
        if self._speaking:
            if voiced:
                self._last_voiced_end = end
                return None
            if self._ms(end - self._last_voiced_end) >= self.params.silence_duration_ms:
                self._speaking = False
                self._recent.clear()
                self._voiced_in_window = 0
                speech_end = self._speech_end()
                return SpeechStopped(speech_end, speech_end + self.params.silence_duration_ms, self._ms(end))
            return None
        if len(self._recent) == self._window and self._recent[0] >= 0:
            self._voiced_in_window -= 1
        self._recent.append(start if voiced else -1)
        if voiced:
            self._voiced_in_window += 1
        if self._voiced_in_window < self._onset_frames:
            return None
        first = next(s for s in self._recent if s >= 0)
        self._speaking = True
        self._speech_start = first
        self._last_voiced_end = end
        speech_start = self._ms(first)
        return SpeechStarted(
            speech_start, max(0, speech_start - self.params.prefix_padding_ms), self._ms(end)
        )

    def _speech_end(self) -> int:
        return self._ms(max(self._speech_start, self._last_voiced_end - self._hangover_samples))

    def flush(self) -> list[VadEvent]:
        """End of input: a final speech-stop if speech was still going on."""
        if not self._speaking:
            return []
        self._speaking = False
        self._recent.clear()
        self._voiced_in_window = 0
        speech_end = self._speech_end()
        end = self._ms(self._samples)
        return [SpeechStopped(speech_end, min(end, speech_end + self.params.silence_duration_ms), end)]
