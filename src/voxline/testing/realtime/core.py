"""Sans-I/O core of the fake Realtime server: one session's state machine.

Text or bytes from the client go in (:meth:`RealtimeSessionCore.receive_text` / ``receive_binary``);
server events, close and abort commands come out of ``outbox``; the streaming response is pulled one
event at a time with :meth:`next_response_event` so the I/O layer decides the pace. No sockets, no
asyncio, no clocks: the wall time (for ``expires_at``) is an argument, and every audio timing
(``audio_start_ms``, ``audio_end_ms``, truncation) comes from sample counts.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import math
import random
import re
import string
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from voxline.audio import PCM16_24K, AudioFormat
from voxline.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voxline.audio.resample import Resampler

from ..schema import ClientEventValidator, SchemaProblem
from .engine import (
    FunctionCall,
    ResponseEngine,
    ResponseRequest,
    Say,
    ScriptedResponse,
    SpeechDetector,
    Transcriber,
    TranscriptionRequest,
    speech_like_audio,
)

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "Abort",
    "Close",
    "Outgoing",
    "PendingWork",
    "RawFrame",
    "RealtimeSessionCore",
    "Truncation",
    "error_event",
    "new_id",
]

log = logging.getLogger("voxline.testing.realtime")

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, witty, and friendly AI. Your voice and personality should be warm and engaging."
)
SESSION_LIFETIME_S = 3600
MIN_COMMIT_MS = 100

_ALPHABET = string.ascii_letters + string.digits
_rng = random.Random()


def new_id(prefix: str) -> str:
    """An id shaped like OpenAI's: ``event_C9G8pqbTEddBSIxbBN6Os``."""
    return f"{prefix}_{''.join(_rng.choices(_ALPHABET, k=21))}"


def _obfuscation(text: str) -> str:
    # OpenAI pads deltas with a random string so their sizes leak nothing; shape only.
    return "".join(_rng.choices(_ALPHABET, k=max(2, 16 - len(text) % 16)))


@dataclass(frozen=True, slots=True)
class Close:
    """Close the WebSocket with this code and reason (after sending everything before it)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the TCP connection without a close frame."""


@dataclass(frozen=True, slots=True)
class RawFrame:
    """Send this frame exactly (a fault: binary data, non-JSON text, a hand-made event)."""

    data: str | bytes


Outgoing = dict[str, Any] | Close | Abort | RawFrame


@dataclass(slots=True)
class PendingWork:
    """An awaitable an engine returned; the I/O layer awaits it and calls ``core.resolve(work, result)``."""

    kind: Literal["response", "transcription"]
    key: str
    awaitable: Awaitable[Any]


@dataclass(frozen=True, slots=True)
class Truncation:
    """One ``conversation.item.truncate`` the server handled and what became of it."""

    item_id: str
    content_index: int
    audio_end_ms: int
    audio_ms: int | None
    ok: bool
    error: str | None = None


def error_event(
    code: str | None,
    message: str,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def _turn_detection_defaults(kind: str) -> dict[str, Any]:
    if kind == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


# semantic_vad has no silence setting; these stand in for its eagerness.
_EAGERNESS_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 300}


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any], path: str = "") -> None:
    """Merge a session update: nested session/audio objects merge, every other value is replaced."""
    for key, value in update.items():
        here = f"{path}.{key}" if path else key
        current = base.get(key)
        if here in ("audio", "audio.input", "audio.output") and isinstance(value, Mapping):
            if not isinstance(current, dict):
                current = base[key] = {}
            _deep_merge(current, value, here)
        elif here == "audio.input.turn_detection" and isinstance(value, Mapping):
            kind = value.get("type", "server_vad")
            merged = current if isinstance(current, dict) and current.get("type") == kind else None
            merged = merged if merged is not None else _turn_detection_defaults(str(kind))
            merged.update(copy.deepcopy(dict(value)))
            base[key] = merged
        else:
            base[key] = copy.deepcopy(value)


def _decode_to_pcm(data: bytes, fmt: AudioFormat) -> bytes:
    if fmt.encoding == "pcmu":
        return ulaw_decode(data)
    if fmt.encoding == "pcma":
        return alaw_decode(data)
    return data


def _pcm_to_format(pcm: bytes, rate: int, fmt: AudioFormat) -> bytes:
    """PCM16 mono at ``rate`` -> the session's output format (resampled, G.711-encoded when asked)."""
    if rate != fmt.rate:
        resampler = Resampler(rate, fmt.rate)
        pcm = resampler.process(pcm) + resampler.flush()
    if fmt.encoding == "pcmu":
        return ulaw_encode(pcm)
    if fmt.encoding == "pcma":
        return alaw_encode(pcm)
    return pcm


def _format_name(fmt: AudioFormat) -> str:
    # conversation.item.retrieved still labels audio content with the legacy names (live capture).
    return {"pcmu": "g711_ulaw", "pcma": "g711_alaw"}.get(fmt.encoding, "pcm16")


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


@dataclass(slots=True)
class _Vad:
    speaking: bool = False
    item_id: str | None = None
    start_ms: float = 0.0
    last_speech_end_ms: float = 0.0
    remainder: bytes = b""


@dataclass(slots=True)
class _Run:
    """One response from ``response.created`` to ``response.done``."""

    response: dict[str, Any]
    params: Mapping[str, Any]
    modalities: list[str]
    out_format: AudioFormat
    in_conversation: bool
    plan: ScriptedResponse | None = None
    steps: Iterator[dict[str, Any]] | None = None
    audio_ms: float = 0.0
    released: bool = False
    open_item: dict[str, Any] | None = None
    open_index: int = 0
    open_part: dict[str, Any] | None = None
    said: str = ""
    audio: bytearray = field(default_factory=bytearray)
    done: bool = False


class RealtimeSessionCore:
    """One Realtime session: configuration, conversation, input audio buffer, turn detection, responses.

    ``kind`` is ``"realtime"`` or ``"transcription"`` (``?intent=transcription``). The callbacks let the
    owner mirror what happens (the fake server keeps server-wide lists for tests).
    """

    def __init__(
        self,
        *,
        kind: Literal["realtime", "transcription"],
        model: str | None,
        now: float,
        engine: ResponseEngine,
        detector: SpeechDetector,
        transcriber: Transcriber,
        validator: ClientEventValidator,
        instructions: str = DEFAULT_INSTRUCTIONS,
        pace: float | None = None,
        on_received: Callable[[dict[str, Any]], None] | None = None,
        on_sent: Callable[[dict[str, Any]], None] | None = None,
        on_violation: Callable[[str], None] | None = None,
        on_truncation: Callable[[Truncation], None] | None = None,
    ) -> None:
        self.kind = kind
        self.engine = engine
        self.detector = detector
        self.transcriber = transcriber
        self.validator = validator
        self.pace = pace
        self.id = new_id("sess")
        self.conversation_id = new_id("conv")
        self.session: dict[str, Any] = self._default_session(kind, model, now, instructions)
        self.items: list[dict[str, Any]] = []
        self.item_audio: dict[str, tuple[bytes, AudioFormat]] = {}
        self.input_audio = bytearray()
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.truncations: list[Truncation] = []
        self.internal_errors: list[str] = []
        self.outbox: deque[Outgoing] = deque()
        self.pending: deque[PendingWork] = deque()
        self.closed = False
        self._buffer = bytearray()
        self._buffer_start_ms = 0.0
        self._clock_ms = 0.0
        self._odd_byte = b""
        self._vad = _Vad()
        self._idle_since_ms: float | None = None
        self._pcm24: dict[str, tuple[bytes, bytes]] = {}
        self._run: _Run | None = None
        self._assistant_audio_sent = False
        self._on_received = on_received
        self._on_sent = on_sent
        self._on_violation = on_violation
        self._on_truncation = on_truncation
        self._rate_tokens = 40000

    # -- session -------------------------------------------------------------------------------------------

    @staticmethod
    def _default_session(kind: str, model: str | None, now: float, instructions: str) -> dict[str, Any]:
        audio_input = {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": None,
            "noise_reduction": None,
            "turn_detection": _turn_detection_defaults("server_vad"),
        }
        expires_at = int(now) + SESSION_LIFETIME_S
        if kind == "transcription":
            return {
                "type": "transcription",
                "object": "realtime.transcription_session",
                "id": "",
                "expires_at": expires_at,
                "audio": {"input": audio_input},
                "include": None,
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": "",
            "model": model,
            "output_modalities": ["audio"],
            "instructions": instructions,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": expires_at,
            "audio": {
                "input": audio_input,
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
            },
            "include": None,
        }

    def start(self) -> None:
        """Queue ``session.created``."""
        self.session["id"] = self.id
        self._emit({"type": "session.created", "session": copy.deepcopy(self.session)})

    @property
    def input_format(self) -> AudioFormat:
        return AudioFormat.from_openai(self.session["audio"]["input"]["format"])

    @property
    def output_format(self) -> AudioFormat:
        output = self.session.get("audio", {}).get("output", {})
        return AudioFormat.from_openai(output.get("format", {"type": "audio/pcm", "rate": 24000}))

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        value = self.session["audio"]["input"].get("turn_detection")
        return value if isinstance(value, dict) else None

    @property
    def response_active(self) -> bool:
        return self._run is not None

    @property
    def active_response_id(self) -> str | None:
        return str(self._run.response["id"]) if self._run is not None else None

    @property
    def buffered_ms(self) -> float:
        return self.input_format.duration_ms(len(self._buffer))

    def _stamp(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as sent: ``type`` and a fresh ``event_id`` first; recorded in ``sent``."""
        stamped = {"type": event["type"], "event_id": new_id("event")}
        stamped.update((k, v) for k, v in event.items() if k != "type")
        self.sent.append(stamped)
        if self._on_sent is not None:
            self._on_sent(stamped)
        return stamped

    def _emit(self, event: dict[str, Any]) -> dict[str, Any]:
        stamped = self._stamp(event)
        self.outbox.append(stamped)
        return stamped

    def _violation(self, what: str, problem: SchemaProblem) -> None:
        text = f"{what}: {problem.code}: {problem.message}"
        log.info("client event rejected: %s", text)
        self.violations.append(text)
        if self._on_violation is not None:
            self._on_violation(text)

    def _reject(
        self,
        event: Mapping[str, Any] | None,
        problem: SchemaProblem,
        echo_event_id: bool = True,
        what: str = "<event>",
    ) -> None:
        """Answer a bad client event with OpenAI's error event and record the violation."""
        event_type = event.get("type") if event is not None else None
        client_event_id = event.get("event_id") if event is not None and echo_event_id else None
        self._violation(event_type if isinstance(event_type, str) else what, problem)
        self._emit(
            error_event(
                problem.code,
                problem.message,
                problem.param,
                client_event_id if isinstance(client_event_id, str) else None,
            )
        )

    # -- input -------------------------------------------------------------------------------------------

    def receive_binary(self, data: bytes) -> None:
        self._reject(
            None,
            SchemaProblem(
                "invalid_event", "Expected a text WebSocket message; binary frames are not supported."
            ),
            what="<binary frame>",
        )

    def receive_text(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError as exc:
            problem = SchemaProblem("invalid_json", f"The message could not be parsed as JSON: {exc}.")
            self._reject(None, problem, what="<non-JSON text>")
            return
        self.receive_event(event)

    def receive_event(self, event: Any) -> None:
        """Handle one decoded client event: validate it, then act on it."""
        if isinstance(event, dict):
            self.received.append(event)
            if self._on_received is not None:
                self._on_received(event)
        problems = self.validator.validate(event)
        if problems:
            self._reject(event if isinstance(event, dict) else None, problems[0])
            return
        handler = getattr(self, "_on_" + event["type"].replace(".", "_"))
        try:
            handler(event)
        except Exception:
            # A fault in the fake itself: answer like OpenAI's own server errors and keep the session;
            # tests see it in ``internal_errors`` (and the log), never as a silent hang.
            log.exception("Realtime session core failed on %s", event["type"])
            self.internal_errors.append(f"{event['type']}: {traceback.format_exc(limit=3)}")
            self._emit(
                error_event(
                    None,
                    "The server had an error while processing your request. Sorry about that!",
                    None,
                    event.get("event_id") if isinstance(event.get("event_id"), str) else None,
                    error_type="server_error",
                )
            )

    def _on_session_update(self, event: dict[str, Any]) -> None:
        update: dict[str, Any] = event["session"]
        if update["type"] != self.kind:
            self._reject(
                event,
                SchemaProblem(
                    "invalid_value",
                    f"Invalid value: '{update['type']}'. Supported values are: '{self.kind}'.",
                    "session.type",
                ),
            )
            return
        voice = update.get("audio", {}).get("output", {}).get("voice")
        current_voice = self.session.get("audio", {}).get("output", {}).get("voice")
        if voice is not None and voice != current_voice and self._assistant_audio_sent:
            self._reject(
                event,
                SchemaProblem(
                    "cannot_update_voice",
                    "Cannot update a conversation's voice if assistant audio is present.",
                    "session.audio.output.voice",
                ),
            )
            return
        before = self.input_format
        _deep_merge(self.session, update)
        if self.input_format != before:
            self._odd_byte = b""
            self._vad = _Vad()
        self._emit({"type": "session.updated", "session": copy.deepcopy(self.session)})

    # -- input audio buffer --------------------------------------------------------------------------------

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            self._reject(
                event,
                SchemaProblem("invalid_value", "Invalid 'audio': expected base64-encoded audio.", "audio"),
            )
            return
        if not data:
            return
        fmt = self.input_format
        self.input_audio += data
        self._buffer += data
        pcm = _decode_to_pcm(data, fmt)
        if fmt.encoding == "pcm16":
            # A chunk may split a sample; keep the odd byte for the next one.
            pcm = self._odd_byte + pcm
            cut = len(pcm) - len(pcm) % 2
            pcm, self._odd_byte = pcm[:cut], pcm[cut:]
        self._feed_turn_detection(pcm, fmt.rate)

    def _feed_turn_detection(self, pcm: bytes, rate: int) -> None:
        detection = self.turn_detection
        if detection is None:
            self._clock_ms += len(pcm) / 2 * 1000 / rate
            return
        frame_bytes = self.detector.frame_ms * rate // 1000 * 2
        vad = self._vad
        data = vad.remainder + pcm
        offset = 0
        threshold = float(detection.get("threshold", 0.5))
        if detection["type"] == "semantic_vad":
            silence_ms = float(_EAGERNESS_SILENCE_MS.get(detection.get("eagerness", "auto"), 800))
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
                    and self._run is None
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
        self._emit(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": int(start_ms),
                "audio_end_ms": int(end_ms),
                "item_id": item_id,
            }
        )
        self._commit(item_id, start_ms, end_ms)
        if self.kind == "realtime" and detection.get("create_response", True):
            self._start_run({})

    def _speech_started(self, frame_start_ms: float, padding_ms: float, detection: Mapping[str, Any]) -> None:
        vad = self._vad
        self._idle_since_ms = None
        vad.speaking = True
        vad.item_id = new_id("item")
        vad.start_ms = max(self._buffer_start_ms, frame_start_ms - padding_ms)
        vad.last_speech_end_ms = self._clock_ms
        self._emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": int(vad.start_ms),
                "item_id": vad.item_id,
            }
        )
        if self._run is not None and detection.get("interrupt_response", True):
            self._cancel_run("turn_detected")

    def _speech_stopped(self, end_ms: float, detection: Mapping[str, Any]) -> None:
        vad = self._vad
        item_id = vad.item_id or new_id("item")
        self._emit(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": int(end_ms), "item_id": item_id}
        )
        vad.speaking = False
        vad.item_id = None
        self._commit(item_id, vad.start_ms, end_ms)
        if self.kind == "realtime" and detection.get("create_response", True) and self._run is None:
            self._start_run({})

    def _buffer_offset(self, ms: float) -> int:
        fmt = self.input_format
        step = fmt.bytes_per_sample * fmt.channels
        offset = int((ms - self._buffer_start_ms) * fmt.bytes_per_ms)
        return max(0, min(len(self._buffer), offset - offset % step))

    def _commit(self, item_id: str, start_ms: float | None, end_ms: float | None) -> None:
        """Turn buffered audio into a user item; ``None`` bounds mean the whole buffer."""
        begin = self._buffer_offset(start_ms) if start_ms is not None else 0
        end = self._buffer_offset(end_ms) if end_ms is not None else len(self._buffer)
        audio = bytes(self._buffer[begin:end])
        fmt = self.input_format
        del self._buffer[:end]
        self._buffer_start_ms = end_ms if end_ms is not None else self._clock_ms
        previous = self.items[-1]["id"] if self.items else None
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.items.append(item)
        self.item_audio[item_id] = (audio, fmt)
        self._emit({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        self._emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        self._emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        self._transcribe(item_id, audio, fmt)

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        buffered = self.buffered_ms
        if buffered < MIN_COMMIT_MS:
            self._reject(
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

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self._buffer.clear()
        self._buffer_start_ms = self._clock_ms
        self._vad = _Vad()
        self._emit({"type": "input_audio_buffer.cleared"})

    # -- input transcription -----------------------------------------------------------------------------

    def _transcribe(self, item_id: str, audio: bytes, fmt: AudioFormat) -> None:
        settings = self.session["audio"]["input"].get("transcription")
        if not isinstance(settings, dict):
            return
        request = TranscriptionRequest(item_id, _decode_to_pcm(audio, fmt), fmt.rate, copy.deepcopy(settings))
        result: str | Awaitable[str] | Exception
        try:
            result = self.transcriber.transcribe(request)
        except Exception as exc:
            result = exc
        if isinstance(result, str | Exception):
            self._resolved("transcription", item_id, result)
        else:
            self.pending.append(PendingWork("transcription", item_id, result))

    def _transcribed(self, item_id: str, transcript: str) -> None:
        for item in self.items:
            if item["id"] == item_id and item.get("content"):
                item["content"][0]["transcript"] = transcript
        for token in _tokens(transcript):
            self._emit(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": token,
                    "obfuscation": _obfuscation(token),
                }
            )
        audio, fmt = self.item_audio.get(item_id, (b"", PCM16_24K))
        audio_tokens = max(1, math.ceil(fmt.duration_ms(len(audio)) / 100))
        text_tokens = max(1, math.ceil(len(transcript) / 4)) if transcript else 0
        self._emit(
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

    # -- conversation ---------------------------------------------------------------------------------------

    def _find(self, item_id: str) -> int | None:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        return None

    def _not_found(self, event: dict[str, Any], item_id: str, param: str = "item_id") -> None:
        self._reject(
            event,
            SchemaProblem(
                "item_not_found", f"Item with item_id '{item_id}' not found in the conversation.", param
            ),
        )

    def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        given: dict[str, Any] = copy.deepcopy(event["item"])
        previous_id = event.get("previous_item_id")
        if previous_id is None or previous_id == "":
            position = len(self.items)
        elif previous_id == "root":
            position = 0
        else:
            found = self._find(previous_id)
            if found is None:
                self._not_found(event, previous_id, "previous_item_id")
                return
            position = found + 1
        item_id = given.pop("id", None) or new_id("item")
        if self._find(item_id) is not None:
            self._reject(
                event,
                SchemaProblem(
                    "item_id_already_exists", f"Item with id '{item_id}' already exists.", "item.id"
                ),
            )
            return
        given.pop("object", None)
        audio_parts: list[bytes] = []
        item: dict[str, Any] = {"id": item_id, "type": given.pop("type")}
        if item["type"] == "message":
            item["status"] = "completed"
            item["role"] = given.pop("role")
            content = []
            for index, part in enumerate(given.pop("content", [])):
                part = dict(part)
                if part.get("type") == "input_audio":
                    try:
                        audio_parts.append(base64.b64decode(part.pop("audio", ""), validate=True))
                    except (binascii.Error, ValueError):
                        param = f"item.content[{index}].audio"
                        problem = SchemaProblem(
                            "invalid_value", f"Invalid '{param}': expected base64-encoded audio.", param
                        )
                        self._reject(event, problem)
                        return
                    part.setdefault("transcript", None)
                content.append(part)
            item["content"] = content
        given.pop("status", None)
        item.update(given)
        previous = self.items[position - 1]["id"] if position > 0 else None
        self.items.insert(position, item)
        if audio_parts:
            self.item_audio[item_id] = (b"".join(audio_parts), self.input_format)
        self._emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        self._emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )

    def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        index = self._find(event["item_id"])
        if index is None:
            self._not_found(event, event["item_id"])
            return
        item = copy.deepcopy(self.items[index])
        stored = self.item_audio.get(item["id"])
        if stored is not None:
            audio, fmt = stored
            for part in item.get("content", []):
                if part.get("type") == "output_audio":
                    # The live server still answers with the legacy content shape here.
                    part["type"] = "audio"
                    part["audio"] = base64.b64encode(audio).decode("ascii")
                    part["format"] = _format_name(fmt)
                elif part.get("type") == "input_audio":
                    part["audio"] = base64.b64encode(audio).decode("ascii")
        item["object"] = "realtime.item"
        ordered = {"id": item.pop("id"), "object": item.pop("object")}
        ordered.update(item)
        self._emit({"type": "conversation.item.retrieved", "item": ordered})

    def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        index = self._find(event["item_id"])
        if index is None:
            self._not_found(event, event["item_id"])
            return
        del self.items[index]
        self.item_audio.pop(event["item_id"], None)
        self._pcm24.pop(event["item_id"], None)
        self._emit({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item_id: str = event["item_id"]
        content_index: int = event["content_index"]
        end_ms: int = event["audio_end_ms"]
        index = self._find(item_id)
        if index is None:
            self._record_truncation(Truncation(item_id, content_index, end_ms, None, False, "item_not_found"))
            self._not_found(event, item_id)
            return
        item = self.items[index]
        content = item.get("content") or []
        part = content[content_index] if 0 <= content_index < len(content) else None
        stored = self.item_audio.get(item_id)
        if (
            item.get("role") != "assistant"
            or part is None
            or part.get("type") != "output_audio"
            or stored is None
            or not stored[0]
        ):
            message = "Only model output audio messages can be truncated"
            self._record_truncation(Truncation(item_id, content_index, end_ms, None, False, message))
            self._reject(event, SchemaProblem("unsupported_content_type", message))
            return
        audio, fmt = stored
        audio_ms = fmt.duration_ms(len(audio))
        if end_ms > audio_ms:
            # Live: an error without the client's event_id, then the item is truncated at its real end.
            message = f"Audio content of {int(audio_ms)}ms is already shorter than {end_ms}ms"
            self._record_truncation(Truncation(item_id, content_index, end_ms, int(audio_ms), False, message))
            self._reject(event, SchemaProblem("invalid_value", message, "audio_end_ms"), echo_event_id=False)
            end_ms = int(audio_ms)
        else:
            self._record_truncation(Truncation(item_id, content_index, end_ms, int(audio_ms), True))
        keep = end_ms * fmt.bytes_per_ms
        self.item_audio[item_id] = (audio[:keep], fmt)
        # Truncating drops the transcript: nothing unheard stays in the model's context.
        part["transcript"] = ""
        self._emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": end_ms,
            }
        )

    def _record_truncation(self, truncation: Truncation) -> None:
        self.truncations.append(truncation)
        if self._on_truncation is not None:
            self._on_truncation(truncation)

    # -- responses -----------------------------------------------------------------------------------------

    def _on_response_create(self, event: dict[str, Any]) -> None:
        if self.kind == "transcription":
            self._reject(
                event,
                SchemaProblem(
                    "invalid_value", "Responses are not supported in transcription sessions.", "type"
                ),
            )
            return
        if self._run is not None:
            self._reject(
                event,
                SchemaProblem(
                    "conversation_already_has_active_response",
                    f"Conversation already has an active response in progress: {self._run.response['id']}. "
                    "Wait until the response is finished before creating a new one.",
                ),
            )
            return
        self._start_run(event.get("response") or {})

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self._run is None or (wanted is not None and wanted != self._run.response["id"]):
            self._reject(
                event,
                SchemaProblem("response_cancel_not_active", "Cancellation failed: no active response found"),
            )
            return
        self._cancel_run("client_cancelled")

    def _start_run(self, params: Mapping[str, Any]) -> None:
        session = self.session
        modalities = list(params.get("output_modalities") or session.get("output_modalities") or ["audio"])
        output = dict(session.get("audio", {}).get("output", {}))
        output.update(params.get("audio", {}).get("output", {}))
        out_fmt = AudioFormat.from_openai(output.get("format", {"type": "audio/pcm", "rate": 24000}))
        in_conversation = params.get("conversation", "auto") != "none"
        response = {
            "object": "realtime.response",
            "id": new_id("resp"),
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id if in_conversation else None,
            "output_modalities": modalities,
            "max_output_tokens": params.get("max_output_tokens", session.get("max_output_tokens", "inf")),
            "audio": {"output": {"format": out_fmt.to_openai(), "voice": output.get("voice", "alloy")}},
            "usage": None,
            "metadata": params.get("metadata"),
        }
        run = _Run(response, params, modalities, out_fmt, in_conversation)
        self._run = run
        self._emit({"type": "response.created", "response": copy.deepcopy(response)})
        conversation = params.get("input", self.items)
        input_audio = {}
        for item_id, (audio, fmt) in self.item_audio.items():
            cached = self._pcm24.get(item_id)
            if cached is None or cached[0] is not audio:
                # Converted once per stored audio object (truncation stores a new one).
                cached = self._pcm24[item_id] = (
                    audio,
                    _pcm_to_format(_decode_to_pcm(audio, fmt), fmt.rate, PCM16_24K),
                )
            input_audio[item_id] = cached[1]
        request = ResponseRequest(
            response_id=response["id"],
            conversation=copy.deepcopy(list(conversation)),
            session=copy.deepcopy(session),
            params=copy.deepcopy(dict(params)),
            output_modalities=modalities,
            input_audio=input_audio,
            input_rate=24000,
        )
        result: ScriptedResponse | Awaitable[ScriptedResponse] | Exception
        try:
            result = self.engine.respond(request)
        except Exception as exc:
            result = exc
        if isinstance(result, ScriptedResponse | Exception):
            self._resolved("response", response["id"], result)
        else:
            self.pending.append(PendingWork("response", response["id"], result))

    def _plan(self, run: _Run, plan: ScriptedResponse) -> None:
        run.plan = plan
        run.steps = self._stream(run, plan)

    def resolve(self, work: PendingWork, result: Any) -> None:
        """Hand in what an awaitable from an engine produced (``BaseException`` when it failed)."""
        self._resolved(work.kind, work.key, result)

    def _resolved(self, kind: str, key: str, result: Any) -> None:
        if isinstance(result, BaseException):
            # A plug-in failed: the client gets the protocol's failure event; tests see internal_errors.
            log.error("Realtime session %s engine failed", kind, exc_info=result)
            self.internal_errors.append(f"{kind} engine failed: {result!r}")
        if kind == "transcription":
            if isinstance(result, BaseException):
                self._emit(
                    {
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": key,
                        "content_index": 0,
                        "error": {
                            "type": "transcription_error",
                            "code": "audio_unintelligible",
                            "message": f"The audio could not be transcribed: {result}",
                            "param": None,
                        },
                    }
                )
            elif self._find(key) is not None:
                self._transcribed(key, str(result))
            return
        run = self._run
        if run is None or run.response["id"] != key or run.plan is not None:
            return  # cancelled meanwhile
        if isinstance(result, ScriptedResponse):
            self._plan(run, result)
            return
        details = {
            "type": "failed",
            "error": {
                "type": "server_error",
                "code": "server_error",
                "message": f"The engine failed: {result!r}",
            },
        }
        self._plan(run, ScriptedResponse(outputs=[], status="failed", status_details=details))

    # The I/O layer pulls the response: due time, then the event.

    def next_due_ms(self) -> float | None:
        """When the next response event is due, in ms after the response started; None: nothing to send."""
        run = self._run
        if run is None or run.plan is None or run.steps is None or self.closed:
            return None
        plan = run.plan
        if plan.stall_after_ms is not None and run.audio_ms >= plan.stall_after_ms and not run.released:
            return None
        pace = plan.pace if plan.pace is not None else self.pace
        return plan.delay_ms + (run.audio_ms / pace if pace is not None else 0.0)

    def next_response_event(self) -> dict[str, Any] | None:
        """The next event of the active response, stamped and recorded; None when there is none."""
        if self.next_due_ms() is None:
            return None
        run = self._run
        assert run is not None and run.steps is not None and run.plan is not None
        drop = run.plan.drop_after_ms
        if drop is not None and run.audio_ms >= drop:
            self.closed = True
            self.outbox.append(Abort())
            return None
        event = next(run.steps, None)
        if event is None:
            return None
        stamped = self._stamp(event)
        if event["type"] == "response.done":
            self._finish_run()
        return stamped

    def release(self) -> None:
        """Let a response held by ``stall_after_ms`` go on streaming."""
        if self._run is not None:
            self._run.released = True

    def _finish_run(self) -> None:
        self._run = None
        # The idle timeout counts on the input audio's clock from the end of the response.
        self._idle_since_ms = self._clock_ms
        if self.kind == "realtime":
            self._emit(self._rate_limits())

    def _rate_limits(self) -> dict[str, Any]:
        self._rate_tokens = max(0, self._rate_tokens - 250)
        return {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 40000, "remaining": self._rate_tokens, "reset_seconds": 0.375},
            ],
        }

    def _open_item(
        self, run: _Run, item: dict[str, Any], response_id: str, output_index: int
    ) -> Iterator[dict[str, Any]]:
        """Start an output item: into the response (and the conversation), with OpenAI's two events."""
        run.open_item = item
        run.response["output"].append(item)
        previous = self._insert_assistant_item(run, item)
        yield {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": output_index,
            "item": copy.deepcopy(item),
        }
        if run.in_conversation:
            yield {
                "type": "conversation.item.added",
                "previous_item_id": previous,
                "item": copy.deepcopy(item),
            }

    def _insert_assistant_item(self, run: _Run, item: dict[str, Any]) -> str | None:
        previous = self.items[-1]["id"] if self.items else None
        if run.in_conversation:
            self.items.append(item)
        return previous

    def _stream(self, run: _Run, plan: ScriptedResponse) -> Iterator[dict[str, Any]]:
        response_id = run.response["id"]
        audio_mode = "audio" in run.modalities
        outputs = plan.items() if plan.status != "failed" else []
        for output_index, output in enumerate(outputs):
            run.open_index = output_index
            if isinstance(output, FunctionCall):
                yield from self._stream_function_call(run, output_index, output)
                continue
            item_id = new_id("item")
            item: dict[str, Any] = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            run.said = ""
            run.audio = bytearray()
            yield from self._open_item(run, item, response_id, output_index)
            ids = {
                "response_id": response_id,
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
            }
            run.open_part = (
                {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
            )
            yield {"type": "response.content_part.added", **ids, "part": dict(run.open_part)}
            if audio_mode:
                yield from self._stream_audio(run, plan, output, ids)
            else:
                for token in _tokens(output.text):
                    run.said += token
                    yield {
                        "type": "response.output_text.delta",
                        **ids,
                        "delta": token,
                        "obfuscation": _obfuscation(token),
                    }
            yield from self._close_message(run, ids, "completed")
        run.open_item = None
        yield self._response_done(
            run, plan.status, dict(plan.status_details) if plan.status_details else None
        )

    def _stream_audio(
        self, run: _Run, plan: ScriptedResponse, say: Say, ids: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        transcript = say.transcript if say.transcript is not None else say.text
        pcm = say.audio if say.audio is not None else speech_like_audio(transcript, say.audio_rate)
        encoded = _pcm_to_format(pcm, say.audio_rate, run.out_format)
        fmt = run.out_format
        chunk = max(fmt.bytes_per_sample, plan.chunk_ms * fmt.bytes_per_ms)
        chunks = [encoded[i : i + chunk] for i in range(0, len(encoded), chunk)]
        tokens = _tokens(transcript)
        sent_tokens = 0
        for index, data in enumerate(chunks):
            # The transcript runs one chunk ahead of the audio, as it does live.
            due_tokens = math.ceil(len(tokens) * min(len(chunks), index + 2) / len(chunks))
            while sent_tokens < due_tokens:
                token = tokens[sent_tokens]
                sent_tokens += 1
                run.said += token
                yield {
                    "type": "response.output_audio_transcript.delta",
                    **ids,
                    "delta": token,
                    "obfuscation": _obfuscation(token),
                }
            run.audio += data
            run.audio_ms += fmt.duration_ms(len(data))
            self._assistant_audio_sent = True
            if run.open_item is not None:
                self.item_audio[run.open_item["id"]] = (bytes(run.audio), fmt)
            yield {
                "type": "response.output_audio.delta",
                **ids,
                "delta": base64.b64encode(data).decode("ascii"),
            }
        for token in tokens[sent_tokens:]:
            run.said += token
            yield {
                "type": "response.output_audio_transcript.delta",
                **ids,
                "delta": token,
                "obfuscation": _obfuscation(token),
            }

    def _close_message(self, run: _Run, ids: dict[str, Any], status: str) -> Iterator[dict[str, Any]]:
        """The events that end an open message (normally, or with ``incomplete`` when cancelled)."""
        item = run.open_item
        if item is None:
            return
        part = run.open_part
        if part is not None:
            if part["type"] == "audio":
                yield {"type": "response.output_audio.done", **ids}
                yield {"type": "response.output_audio_transcript.done", **ids, "transcript": run.said}
                yield {
                    "type": "response.content_part.done",
                    **ids,
                    "part": {"type": "audio", "transcript": run.said},
                }
                item["content"] = [{"type": "output_audio", "transcript": run.said}]
            else:
                yield {"type": "response.output_text.done", **ids, "text": run.said}
                yield {
                    "type": "response.content_part.done",
                    **ids,
                    "part": {"type": "text", "text": run.said},
                }
                item["content"] = [{"type": "output_text", "text": run.said}]
            run.open_part = None
        item["status"] = status
        run.open_item = None
        yield from self._close_item(run, item, ids["output_index"])

    def _close_item(self, run: _Run, item: dict[str, Any], output_index: int) -> Iterator[dict[str, Any]]:
        if run.in_conversation:
            index = self._find(item["id"])
            previous = self.items[index - 1]["id"] if index else None
            yield {
                "type": "conversation.item.done",
                "previous_item_id": previous,
                "item": copy.deepcopy(item),
            }
        yield {
            "type": "response.output_item.done",
            "response_id": run.response["id"],
            "output_index": output_index,
            "item": copy.deepcopy(item),
        }

    def _stream_function_call(
        self, run: _Run, output_index: int, call: FunctionCall
    ) -> Iterator[dict[str, Any]]:
        response_id = run.response["id"]
        item: dict[str, Any] = {
            "id": new_id("item"),
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call.call_id or new_id("call")[:21],
            "arguments": "",
        }
        run.open_part = None
        yield from self._open_item(run, item, response_id, output_index)
        ids = {"response_id": response_id, "item_id": item["id"], "output_index": output_index}
        arguments = call.arguments
        for start in range(0, len(arguments), 12):
            delta = arguments[start : start + 12]
            item["arguments"] += delta
            yield {
                "type": "response.function_call_arguments.delta",
                **ids,
                "call_id": item["call_id"],
                "delta": delta,
                "obfuscation": _obfuscation(delta),
            }
        yield {
            "type": "response.function_call_arguments.done",
            **ids,
            "call_id": item["call_id"],
            "name": call.name,
            "arguments": arguments,
        }
        item["status"] = "completed"
        run.open_item = None
        yield from self._close_item(run, item, output_index)

    def _response_done(self, run: _Run, status: str, details: dict[str, Any] | None) -> dict[str, Any]:
        response = run.response
        response["status"] = status
        response["status_details"] = details
        response["usage"] = (
            dict(run.plan.usage) if run.plan is not None and run.plan.usage is not None else self._usage(run)
        )
        run.done = True
        return {"type": "response.done", "response": copy.deepcopy(response)}

    def _usage(self, run: _Run) -> dict[str, Any]:
        instructions = str(self.session.get("instructions", ""))
        text_in = len(instructions) // 4
        audio_in = 0
        for item in self.items:
            for part in item.get("content", []) or []:
                text_in += len(str(part.get("text") or part.get("transcript") or "")) // 4
            stored = self.item_audio.get(item["id"])
            if stored is not None and item.get("role") == "user":
                audio_in += math.ceil(stored[1].duration_ms(len(stored[0])) / 100)
        text_out = 0
        for item in run.response["output"]:
            for part in item.get("content", []) or []:
                text_out += math.ceil(len(str(part.get("text") or part.get("transcript") or "")) / 4)
            text_out += math.ceil(len(str(item.get("arguments", ""))) / 4)
        audio_out = math.ceil(run.audio_ms / 50) if run.audio_ms else 0
        cached = (text_in // 64) * 64
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    def _cancel_run(self, reason: str) -> None:
        """End the active response now: close what is open, then ``response.done`` (cancelled)."""
        run = self._run
        if run is None:
            return
        self._run = None
        run.steps = None
        item = run.open_item
        if item is not None:
            ids: dict[str, Any] = {
                "response_id": run.response["id"],
                "item_id": item["id"],
                "output_index": run.open_index,
            }
            if item["type"] == "message":
                events = list(self._close_message(run, {**ids, "content_index": 0}, "incomplete"))
            else:
                item["status"] = "incomplete"
                events = list(self._close_item(run, item, run.open_index))
            for event in events:
                self._emit(event)
        self._emit(self._response_done(run, "cancelled", {"type": "cancelled", "reason": reason}))
        if self.kind == "realtime":
            self._emit(self._rate_limits())

    # -- faults ---------------------------------------------------------------------------------------------

    def send_raw(self, data: str | bytes) -> None:
        self.outbox.append(RawFrame(data))

    def send_event(self, event: Mapping[str, Any]) -> None:
        """Queue any event dict exactly as given (recorded in ``sent`` like every server event)."""
        event = dict(event)
        self.sent.append(event)
        if self._on_sent is not None:
            self._on_sent(event)
        self.outbox.append(event)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True
        self.outbox.append(Close(code, reason))

    def abort(self) -> None:
        self.closed = True
        self.outbox.append(Abort())
