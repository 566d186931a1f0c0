"""The wire protocols of the streaming speech services, sans-I/O: messages to send as text, messages
received parsed into audio, text spans and the end of a turn.

- ElevenLabs ``/v1/text-to-speech/{voice_id}/stream-input`` (one WebSocket per turn): the first
  message (BOS) is ``{"text": " ", "voice_settings": ..., "xi_api_key": ...}``, then text chunks
  ``{"text": ...}``, then EOS ``{"text": ""}``; the server answers ``{"audio": <base64>,
  "alignment": {"chars", "charStartTimesMs", "charsDurationsMs"}, ...}`` (times relative to that
  chunk's audio) and finally ``{"isFinal": true}``. There is no cancel message on this endpoint:
  closing the socket stops the generation.
- Cartesia ``/tts/websocket`` (one WebSocket, a context per turn): generation requests with
  ``model_id``, ``voice``, ``language``, ``output_format``, ``context_id``, ``transcript`` and
  ``continue``; the turn ends with an empty transcript and ``"continue": false``;
  ``{"context_id", "cancel": true}`` stops it. The server answers ``chunk`` (base64 audio),
  ``timestamps`` (``word_timestamps``: words with start and end in seconds from the context's
  start), ``done`` and ``error``, each with the ``context_id``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voxline.audio import AudioFormat
from voxline.media.tts import TextSpan

__all__ = [
    "CARTESIA_VERSION",
    "CartesiaContext",
    "ElevenLabsTurn",
    "Received",
    "cartesia_output_format",
    "elevenlabs_output_format",
]

CARTESIA_VERSION = "2025-04-16"


@dataclass(slots=True)
class Received:
    """What one server message meant for the turn."""

    audio: bytes = b""
    spans: list[TextSpan] = field(default_factory=list)
    done: bool = False
    error: str | None = None


def elevenlabs_output_format(fmt: AudioFormat) -> str:
    """``ulaw_8000``, ``alaw_8000`` or ``pcm_<rate>`` for ``fmt`` (ElevenLabs' ``output_format``)."""
    if fmt.channels != 1:
        raise ValueError(f"media_format: speech is mono, got {fmt}")
    if fmt.encoding in ("pcmu", "pcma") and fmt.rate == 8000:
        return f"{'ulaw' if fmt.encoding == 'pcmu' else 'alaw'}_8000"
    if fmt.encoding == "pcm16" and fmt.rate in (8000, 16000, 24000, 48000):
        return f"pcm_{fmt.rate}"
    raise ValueError(f"media_format: ElevenLabs cannot stream {fmt}")


def cartesia_output_format(fmt: AudioFormat) -> dict[str, Any]:
    """Cartesia's raw ``output_format`` object for ``fmt``."""
    if fmt.channels != 1:
        raise ValueError(f"media_format: speech is mono, got {fmt}")
    encoding = {"pcm16": "pcm_s16le", "pcmu": "pcm_mulaw", "pcma": "pcm_alaw"}.get(fmt.encoding)
    if encoding is None or fmt.rate not in (8000, 16000, 24000, 48000):
        raise ValueError(f"media_format: Cartesia cannot stream {fmt}")
    return {"container": "raw", "encoding": encoding, "sample_rate": fmt.rate}


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


class ElevenLabsTurn:
    """One ``stream-input`` connection: the messages of a turn and the alignment of its audio.

    Alignment characters are matched to the text sent, in order (a character the server left out,
    such as a doubled space, is skipped); times are relative to each chunk, so they are placed after
    the audio received before it.
    """

    def __init__(
        self,
        fmt: AudioFormat,
        *,
        api_key: str,
        voice_settings: Mapping[str, Any] | None = None,
        generation_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.format = fmt
        self._api_key = api_key
        self._voice_settings = dict(voice_settings or {"stability": 0.5, "similarity_boost": 0.8})
        self._generation_config = dict(generation_config) if generation_config else None
        self.text = ""
        self._aligned = 0  # characters of self.text the alignment has covered
        self._audio_bytes = 0
        self.final = False

    def bos(self) -> str:
        message: dict[str, Any] = {"text": " ", "voice_settings": self._voice_settings}
        if self._generation_config is not None:
            message["generation_config"] = self._generation_config
        message["xi_api_key"] = self._api_key
        return json.dumps(message)

    def text_message(self, text: str) -> str:
        self.text += text
        return json.dumps({"text": text})

    @staticmethod
    def eos() -> str:
        return json.dumps({"text": ""})

    def receive(self, message: str) -> Received:
        """Parse one server message. Raises ValueError for one that is not the protocol's."""
        data = json.loads(message)
        if not isinstance(data, dict):
            raise ValueError("an ElevenLabs message is a JSON object")
        if "error" in data or (data.get("message") and "audio" not in data):
            return Received(error=str(data.get("error") or data.get("message")), done=True)
        received = Received()
        start_ms = self.format.duration_ms(self._audio_bytes)
        audio = data.get("audio")
        if audio is not None:
            received.audio = _b64(audio, "audio")
            self._audio_bytes += len(received.audio)
        alignment = data.get("alignment")
        if isinstance(alignment, dict):
            received.spans = self._spans(alignment, start_ms)
        if data.get("isFinal") is True:
            self.final = received.done = True
        return received

    def _spans(self, alignment: Mapping[str, Any], start_ms: float) -> list[TextSpan]:
        chars = alignment.get("chars")
        starts = alignment.get("charStartTimesMs")
        durations = alignment.get("charsDurationsMs")
        if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(durations, list)):
            raise ValueError("alignment needs chars, charStartTimesMs and charsDurationsMs lists")
        spans = []
        for char, start, duration in zip(chars, starts, durations, strict=False):
            index = self.text.find(char, self._aligned) if isinstance(char, str) and char else -1
            if index < 0 or index > self._aligned + 3:
                continue  # not a character we sent (normalised away, or the BOS space)
            self._aligned = index + 1
            begin = round(start_ms + float(start))
            spans.append(TextSpan(index, index + 1, begin, begin + round(float(duration))))
        return spans


class CartesiaContext:
    """One Cartesia context (a turn) on a shared connection: its requests and its word timestamps."""

    def __init__(
        self,
        context_id: str,
        fmt: AudioFormat,
        *,
        model_id: str,
        voice_id: str,
        language: str | None,
        timestamps: bool = True,
    ) -> None:
        self.context_id = context_id
        self.format = fmt
        self._base: dict[str, Any] = {
            "model_id": model_id,
            "voice": {"mode": "id", "id": voice_id},
            "output_format": cartesia_output_format(fmt),
            "context_id": context_id,
            "add_timestamps": timestamps,
        }
        if language:
            self._base["language"] = language
        self.text = ""
        self._matched = 0
        self.ended = False

    def request(self, transcript: str, *, more: bool = True) -> str:
        """A generation request: ``transcript`` continues the context (``more=False``: the last)."""
        self.text += transcript
        self.ended = not more
        return json.dumps({**self._base, "transcript": transcript, "continue": more})

    def cancel(self) -> str:
        return json.dumps({"context_id": self.context_id, "cancel": True})

    def receive(self, data: Mapping[str, Any]) -> Received:
        kind = data.get("type")
        if kind == "chunk":
            return Received(audio=_b64(data.get("data"), "data"))
        if kind == "timestamps":
            return Received(spans=self._spans(data.get("word_timestamps")))
        if kind == "done":
            return Received(done=True)
        if kind == "error":
            return Received(error=str(data.get("error") or data.get("message") or data), done=True)
        return Received()  # flush_done, phoneme_timestamps: nothing for the player

    def _spans(self, words: Any) -> list[TextSpan]:
        if not isinstance(words, dict):
            raise ValueError("timestamps without word_timestamps")
        spans = []
        for word, start, end in zip(
            words.get("words") or [], words.get("start") or [], words.get("end") or [], strict=False
        ):
            if not isinstance(word, str) or not word:
                continue
            index = self.text.find(word, self._matched)
            if index < 0:
                continue
            self._matched = index + len(word)
            spans.append(
                TextSpan(index, index + len(word), round(float(start) * 1000), round(float(end) * 1000))
            )
        return spans
