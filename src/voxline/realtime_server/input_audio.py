"""A session's input audio: the buffer (``input_audio_buffer.append``/``commit``/``clear``), turn
detection on the audio's own sample clock, committing turns as user items, and their transcription.

Turn detection (``server_vad``, ``semantic_vad``) asks a :class:`~voxline.realtime_server.engine.
SpeechDetector` about each frame and applies the session's settings around it: ``threshold``,
``prefix_padding_ms``, ``silence_duration_ms`` (semantic_vad: its eagerness), ``idle_timeout_ms``,
and what a turn does to responses (``interrupt_response``: barge-in cancels the active one with
``turn_detected``; ``create_response``: a committed turn starts one). Every timing is a sample count.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from voxline.audio import PCM16_24K, AudioFormat

from .conversation import Conversation
from .engine import SpeechDetector, Transcriber, TranscriptionRequest
from .events import PendingWork, SessionOutput, new_id, obfuscation, tokens
from .formats import decode_to_pcm
from .responses import Responses
from .session import EAGERNESS_SILENCE_MS, SessionConfig
from .validation import SchemaProblem

__all__ = ["MIN_COMMIT_MS", "InputAudio"]

MIN_COMMIT_MS = 100


@dataclass(slots=True)
class _Vad:
    speaking: bool = False
    item_id: str | None = None
    start_ms: float = 0.0
    last_speech_end_ms: float = 0.0
    remainder: bytes = b""


class InputAudio:
    """The input side of one session (see the module docstring).

    ``input_audio`` keeps every byte appended, as received; the buffer holds what is not committed yet.
    """

    def __init__(
        self,
        config: SessionConfig,
        conversation: Conversation,
        responses: Responses,
        out: SessionOutput,
        *,
        detector: SpeechDetector,
        transcriber: Transcriber,
    ) -> None:
        self._config = config
        self._conversation = conversation
        self._responses = responses
        self._out = out
        self.detector = detector
        self.transcriber = transcriber
        self.input_audio = bytearray()
        self._buffer = bytearray()
        self._buffer_start_ms = 0.0
        self._clock_ms = 0.0
        self._odd_byte = b""
        self._vad = _Vad()
        self._idle_since_ms: float | None = None

    @property
    def buffered_ms(self) -> float:
        return self._config.input_format.duration_ms(len(self._buffer))

    def format_changed(self) -> None:
        """The session's input format changed: a split sample or a frame in progress means nothing now."""
        self._odd_byte = b""
        self._vad = _Vad()

    def response_finished(self) -> None:
        """The idle timeout counts on the input audio's clock from the end of the response."""
        self._idle_since_ms = self._clock_ms

    # -- client events ---------------------------------------------------------------------------------------

    def on_append(self, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            self._out.reject(
                event,
                SchemaProblem("invalid_value", "Invalid 'audio': expected base64-encoded audio.", "audio"),
            )
            return
        if not data:
            return
        fmt = self._config.input_format
        self.input_audio += data
        self._buffer += data
        pcm = decode_to_pcm(data, fmt)
        if fmt.encoding == "pcm16":
            # A chunk may split a sample; keep the odd byte for the next one.
            pcm = self._odd_byte + pcm
            cut = len(pcm) - len(pcm) % 2
            pcm, self._odd_byte = pcm[:cut], pcm[cut:]
        self._feed_turn_detection(pcm, fmt.rate)

    def on_commit(self, event: dict[str, Any]) -> None:
        buffered = self.buffered_ms
        if buffered < MIN_COMMIT_MS:
            self._out.reject(
                event,
                SchemaProblem(
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
                ),
            )
            return
        item_id = self._vad.item_id or new_id("item")
        self._vad = _Vad()
        self._commit(item_id, None, None)

    def on_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        self._buffer_start_ms = self._clock_ms
        self._vad = _Vad()
        self._out.emit({"type": "input_audio_buffer.cleared"})

    # -- turn detection --------------------------------------------------------------------------------------

    def _feed_turn_detection(self, pcm: bytes, rate: int) -> None:
        detection = self._config.turn_detection
        if detection is None:
            self._clock_ms += len(pcm) / 2 * 1000 / rate
            return
        frame_bytes = self.detector.frame_ms * rate // 1000 * 2
        vad = self._vad
        data = vad.remainder + pcm
        offset = 0
        threshold = float(detection.get("threshold", 0.5))
        if detection["type"] == "semantic_vad":
            silence_ms = float(EAGERNESS_SILENCE_MS.get(detection.get("eagerness", "auto"), 800))
            padding_ms = 300.0
        else:
            silence_ms = float(detection.get("silence_duration_ms", 200))
            padding_ms = float(detection.get("prefix_padding_ms", 300))
        idle = detection.get("idle_timeout_ms")
        idle_ms = float(idle) if isinstance(idle, int | float) else None
        while len(data) - offset >= frame_bytes:
            frame = data[offset : offset + frame_bytes]
            offset += frame_bytes
            frame_start = self._clock_ms
            self._clock_ms += self.detector.frame_ms
            speech = self.detector.speech_probability(frame, rate) >= threshold
            if not vad.speaking:
                if speech:
                    self._speech_started(frame_start, padding_ms, detection)
                elif (
                    idle_ms is not None
                    and self._idle_since_ms is not None
                    and not self._responses.active
                    and self._clock_ms - self._idle_since_ms >= idle_ms
                ):
                    self._idle_timeout(detection)
            elif speech:
                vad.last_speech_end_ms = self._clock_ms
            elif self._clock_ms - vad.last_speech_end_ms >= silence_ms:
                self._speech_stopped(self._clock_ms, detection)
        vad.remainder = data[offset:]

    def _idle_timeout(self, detection: Mapping[str, Any]) -> None:
        """No speech for ``idle_timeout_ms`` after a response: commit the quiet audio and respond."""
        start_ms = max(self._buffer_start_ms, self._idle_since_ms or 0.0)
        end_ms = self._clock_ms
        self._idle_since_ms = None
        item_id = new_id("item")
        self._out.emit(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": int(start_ms),
                "audio_end_ms": int(end_ms),
                "item_id": item_id,
            }
        )
        self._commit(item_id, start_ms, end_ms)
        if self._config.kind == "realtime" and detection.get("create_response", True):
            self._responses.start({})

    def _speech_started(self, frame_start_ms: float, padding_ms: float, detection: Mapping[str, Any]) -> None:
        vad = self._vad
        self._idle_since_ms = None
        vad.speaking = True
        vad.item_id = new_id("item")
        vad.start_ms = max(self._buffer_start_ms, frame_start_ms - padding_ms)
        vad.last_speech_end_ms = self._clock_ms
        self._out.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": int(vad.start_ms),
                "item_id": vad.item_id,
            }
        )
        if self._responses.active and detection.get("interrupt_response", True):
            self._responses.cancel("turn_detected")

    def _speech_stopped(self, end_ms: float, detection: Mapping[str, Any]) -> None:
        vad = self._vad
        item_id = vad.item_id or new_id("item")
        self._out.emit(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": int(end_ms), "item_id": item_id}
        )
        vad.speaking = False
        vad.item_id = None
        self._commit(item_id, vad.start_ms, end_ms)
        if (
            self._config.kind == "realtime"
            and detection.get("create_response", True)
            and not self._responses.active
        ):
            self._responses.start({})

    # -- committing ------------------------------------------------------------------------------------------

    def _buffer_offset(self, ms: float) -> int:
        fmt = self._config.input_format
        step = fmt.bytes_per_sample * fmt.channels
        offset = int((ms - self._buffer_start_ms) * fmt.bytes_per_ms)
        return max(0, min(len(self._buffer), offset - offset % step))

    def _commit(self, item_id: str, start_ms: float | None, end_ms: float | None) -> None:
        """Turn buffered audio into a user item; ``None`` bounds mean the whole buffer."""
        begin = self._buffer_offset(start_ms) if start_ms is not None else 0
        end = self._buffer_offset(end_ms) if end_ms is not None else len(self._buffer)
        audio = bytes(self._buffer[begin:end])
        fmt = self._config.input_format
        del self._buffer[:end]
        self._buffer_start_ms = end_ms if end_ms is not None else self._clock_ms
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = self._conversation.append(item, (audio, fmt))
        self._out.emit(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        self._conversation.announce(item, previous)
        self._transcribe(item_id, audio, fmt)

    # -- input transcription ---------------------------------------------------------------------------------

    def _transcribe(self, item_id: str, audio: bytes, fmt: AudioFormat) -> None:
        settings = self._config.transcription
        if settings is None:
            return
        request = TranscriptionRequest(item_id, decode_to_pcm(audio, fmt), fmt.rate, copy.deepcopy(settings))
        result: str | Awaitable[str] | Exception
        try:
            result = self.transcriber.transcribe(request)
        except Exception as exc:
            result = exc
        if isinstance(result, str | Exception):
            self.transcribed(item_id, result)
        else:
            self._out.defer(PendingWork("transcription", item_id, result))

    def transcribed(self, item_id: str, result: Any) -> None:
        """What the transcriber produced for ``item_id`` (``BaseException`` when it failed)."""
        if isinstance(result, BaseException):
            self._out.engine_failed("transcription", result)
            self._out.emit(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "transcription_error",
                        "code": "audio_unintelligible",
                        "message": f"The audio could not be transcribed: {result}",
                        "param": None,
                    },
                }
            )
        elif self._conversation.find(item_id) is not None:
            self._emit_transcript(item_id, str(result))

    def _emit_transcript(self, item_id: str, transcript: str) -> None:
        self._conversation.set_transcript(item_id, transcript)
        for token in tokens(transcript):
            self._out.emit(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": token,
                    "obfuscation": obfuscation(token),
                }
            )
        audio, fmt = self._conversation.item_audio.get(item_id, (b"", PCM16_24K))
        audio_tokens = max(1, math.ceil(fmt.duration_ms(len(audio)) / 100))
        text_tokens = max(1, math.ceil(len(transcript) / 4)) if transcript else 0
        self._out.emit(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "tokens",
                    "total_tokens": audio_tokens + text_tokens,
                    "input_tokens": audio_tokens,
                    "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                    "output_tokens": text_tokens,
                },
            }
        )
