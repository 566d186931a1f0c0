"""Sans-I/O core of the OpenAI Realtime (GA) client.

Text frames in -> classified server messages out; commands in -> text frames out. Time comes in as an
argument (seconds on any monotonic scale). No sockets, no asyncio: the I/O layer in ``realtime.py``
feeds this core and writes what it returns. The core also keeps what the client needs to know about
the session: its effective audio formats (from ``session.created``/``session.updated``), whether the
scenario set formats itself, the active response, and the statistics counters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..audio import PCM16_24K, AudioFormat
from .events import REALTIME_AUDIO_DELTA_TYPES, REALTIME_SERVER_TYPES, RealtimeAPIEvents
from .formats import from_openai

# Client event types the GA API accepts, with the method that sends each.
CLIENT_EVENT_TYPES = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        # WebRTC and SIP calls only (OpenAI plays the audio): a sideband client's barge-in.
        "output_audio_buffer.clear",
    }
)


class ErrorClass(Enum):
    """How a server ``error`` affects the session (DESIGN §4)."""

    RECOVERABLE = "recoverable"  # the session goes on; the offending client event was ignored
    FATAL = "fatal"  # OpenAI closes the socket right after


# OpenAI error codes -> what they mean for the session. Unlisted codes are recoverable: OpenAI closes
# the socket itself when an error is fatal, and voxline reacts to that close, not to a guess.
ERROR_CODES: dict[str, ErrorClass] = {
    "invalid_api_key": ErrorClass.FATAL,
    "invalid_model": ErrorClass.FATAL,
    "missing_model": ErrorClass.FATAL,
    "model_not_found": ErrorClass.FATAL,
    "beta_api_shape_disabled": ErrorClass.FATAL,
    "insufficient_quota": ErrorClass.FATAL,
    "session_expired": ErrorClass.FATAL,
    "invalid_event": ErrorClass.RECOVERABLE,
    "invalid_json": ErrorClass.RECOVERABLE,
    "invalid_value": ErrorClass.RECOVERABLE,
    "unknown_parameter": ErrorClass.RECOVERABLE,
    "missing_required_parameter": ErrorClass.RECOVERABLE,
    "integer_below_min_value": ErrorClass.RECOVERABLE,
    "integer_above_max_value": ErrorClass.RECOVERABLE,
    "decimal_below_min_value": ErrorClass.RECOVERABLE,
    "decimal_above_max_value": ErrorClass.RECOVERABLE,
    "conversation_already_has_active_response": ErrorClass.RECOVERABLE,
    "response_cancel_not_active": ErrorClass.RECOVERABLE,
    "input_audio_buffer_commit_empty": ErrorClass.RECOVERABLE,
    "item_truncate_invalid_audio_end_ms": ErrorClass.RECOVERABLE,
    "item_not_found": ErrorClass.RECOVERABLE,
    "audio_unintelligible": ErrorClass.RECOVERABLE,
    "rate_limit_exceeded": ErrorClass.RECOVERABLE,
}


def classify_error(payload: Mapping[str, Any]) -> ErrorClass:
    error = payload.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    if isinstance(code, str):
        return ERROR_CODES.get(code, ErrorClass.RECOVERABLE)
    return ErrorClass.RECOVERABLE


def parse_format(value: Any) -> AudioFormat | None:
    """An OpenAI session format object as an :class:`AudioFormat` (None when absent or unknown)."""
    if not isinstance(value, Mapping):
        return None
    try:
        return from_openai(value)
    except ValueError:
        return None


class MessageKind(Enum):
    EVENT = "event"  # a server event for listeners (constant + payload)
    AUDIO = "audio"  # model audio: becomes media, never a listener event
    INVALID = "invalid"  # not a JSON object with a type: reported as WebSocketError
    SILENT = "silent"  # nothing from the server for the silence timeout while audio went to it


@dataclass(slots=True)
class ServerMessage:
    kind: MessageKind
    name: RealtimeAPIEvents | None = None
    data: Any = None
    audio: bytes = b""
    problem: str = ""


@dataclass(slots=True)
class _Latency:
    samples_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | None]:
        s = sorted(self.samples_ms)
        if not s:
            return {"count": 0, "last_ms": None, "mean_ms": None, "p50_ms": None, "max_ms": None}
        return {
            "count": len(s),
            "last_ms": round(self.samples_ms[-1], 3),
            "mean_ms": round(sum(s) / len(s), 3),
            "p50_ms": round(s[len(s) // 2], 3),
            "max_ms": round(s[-1], 3),
        }


class RealtimeProtocol:
    """State and framing of one Realtime session, independent of any socket.

    The sans-I/O shape of every voxline core: text in with the time (``receive_text``,
    ``receive_binary``), events out (``events_received``: :class:`ServerMessage`), commands in
    (``send``, ``append_audio``) with the text frames to write out (``data_to_send``).
    ``silence_timeout_s``: when the server has sent nothing that long while audio is appended, a
    ``SILENT`` message is produced (once per silence).
    """

    def __init__(self, silence_timeout_s: float | None = None) -> None:
        self.session: dict[str, Any] = {}
        self.silence_timeout_s = silence_timeout_s
        self._out: list[str] = []
        self._events: list[ServerMessage] = []
        self._last_received: float | None = None
        self._silent = False
        self.input_format: AudioFormat = PCM16_24K
        self._input_bytes_per_ms = PCM16_24K.bytes_per_ms  # of input_format, for every append
        self.output_format: AudioFormat = PCM16_24K
        self.formats_set_by_scenario = False
        # session.update events OpenAI has not answered yet: a session.updated that answers an older
        # update must not undo the input format a newer one set.
        self._updates_pending = 0
        self.active_response_id: str | None = None
        # statistics
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.responses = 0
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        self.audio_sent_ms = 0.0
        self.audio_received_ms = 0.0
        self.errors = 0
        self.unknown_events = 0
        self.invalid_frames = 0
        self._latency = _Latency()
        self._latency_start: float | None = None

    # -- outgoing ---------------------------------------------------------------------------------

    def data_to_send(self) -> list[str]:
        """The text frames to write, in order."""
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[ServerMessage]:
        events, self._events = self._events, []
        return events

    def send(
        self, event_type: str, parameters: Mapping[str, Any] | None, now: float, *, by_scenario: bool = True
    ) -> None:
        """Queue one client event: the parameters plus ``type``. ``by_scenario=False`` for
        voxline's own format negotiation, which leaves the scenario free to set formats later.

        Raises TypeError/ValueError naming the parameter when the input can't be a valid event.
        """
        formats_set = self.formats_set_by_scenario
        self._out.append(self._command(event_type, parameters, now))
        if not by_scenario:
            self.formats_set_by_scenario = formats_set

    def _command(self, event_type: str, parameters: Mapping[str, Any] | None, now: float) -> str:
        if event_type not in CLIENT_EVENT_TYPES:
            raise ValueError(f"unknown Realtime client event type {event_type!r}")
        if parameters is None:
            body: dict[str, Any] = {}
        elif isinstance(parameters, Mapping):
            body = dict(parameters)
        else:
            raise TypeError(
                f"parameters must be a dict (the {event_type} event without 'type'), "
                f"not {type(parameters).__name__}"
            )
        given = body.pop("type", event_type)
        if given != event_type:
            raise ValueError(f"parameters 'type' is {given!r}, but this method sends {event_type!r}")
        if event_type == "session.update":
            self._note_session_update(body)
            self._updates_pending += 1
        elif event_type == "response.create":
            self._latency_start = now
        message = {"type": event_type, **body}
        try:
            text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"parameters of {event_type} are not JSON-serialisable: {exc}") from None
        self._count_sent(text)
        return text

    def append_audio(self, audio: bytes, now: float) -> bool:
        """``input_audio_buffer.append`` for audio already in the session's input format. True when
        it also queued an event (the input has been silent past ``silence_timeout_s``)."""
        # ~50 a second per call: the event written out, not built as a dict and dumped.
        text = (
            '{"type":"input_audio_buffer.append","audio":"'
            + binascii.b2a_base64(audio, newline=False).decode("ascii")
            + '"}'
        )
        self.messages_sent += 1
        self.bytes_sent += len(text)
        self.audio_sent_ms += len(audio) / self._input_bytes_per_ms
        self._out.append(text)
        timeout = self.silence_timeout_s
        if timeout is not None and not self._silent:
            last = self._last_received if self._last_received is not None else now
            if self._last_received is None:
                self._last_received = now
            elif now - last >= timeout:
                self._silent = True
                self._events.append(
                    ServerMessage(MessageKind.SILENT, data={"silent_s": round(now - last, 3)})
                )
                return True
        return False

    def _count_sent(self, text: str) -> None:
        self.messages_sent += 1
        self.bytes_sent += len(text)

    def _note_session_update(self, body: Mapping[str, Any]) -> None:
        session = body.get("session")
        if not isinstance(session, Mapping):
            raise TypeError("session_update parameters need a 'session' object")
        audio = session.get("audio")
        if isinstance(audio, Mapping):
            for direction in ("input", "output"):
                part = audio.get(direction)
                if isinstance(part, Mapping) and "format" in part:
                    self.formats_set_by_scenario = True
            # OpenAI applies events in order: appends after this update are read in its input format.
            part = audio.get("input")
            fmt = parse_format(part.get("format")) if isinstance(part, Mapping) else None
            if fmt is not None:
                self.input_format = fmt
                self._input_bytes_per_ms = fmt.bytes_per_ms

    # -- incoming ---------------------------------------------------------------------------------

    def receive_text(self, text: str, now: float) -> None:
        """One text frame from the server; what it means goes to ``events_received``."""
        self._last_received = now
        self._silent = False
        self._events.append(self._parse(text, now))

    def receive_binary(self, data: bytes) -> None:
        self.invalid_frames += 1
        problem = f"binary frame ({len(data)} bytes); OpenAI sends text only"
        self._events.append(ServerMessage(MessageKind.INVALID, problem=problem))

    def _parse(self, text: str, now: float) -> ServerMessage:
        self.messages_received += 1
        self.bytes_received += len(text)
        try:
            data = json.loads(text)
        except ValueError:
            self.invalid_frames += 1
            return ServerMessage(MessageKind.INVALID, problem=f"non-JSON text frame ({len(text)} bytes)")
        event_type = data.get("type") if isinstance(data, dict) else None
        if not isinstance(event_type, str):
            self.invalid_frames += 1
            return ServerMessage(MessageKind.INVALID, problem="JSON frame without a string 'type'")
        if event_type in REALTIME_AUDIO_DELTA_TYPES:
            return self._audio_delta(data, now)
        name = REALTIME_SERVER_TYPES.get(event_type)
        if name is None:
            self.unknown_events += 1
            return ServerMessage(MessageKind.EVENT, RealtimeAPIEvents.Unknown, data)
        self._track(name, data, now)
        return ServerMessage(MessageKind.EVENT, name, data)

    def _audio_delta(self, data: dict[str, Any], now: float) -> ServerMessage:
        delta = data.get("delta")
        try:
            audio = base64.b64decode(delta, validate=True) if isinstance(delta, str) else b""
        except (binascii.Error, ValueError):
            self.invalid_frames += 1
            return ServerMessage(MessageKind.INVALID, problem="audio delta with invalid base64")
        if self._latency_start is not None:
            self._latency.samples_ms.append((now - self._latency_start) * 1000.0)
            self._latency_start = None
        self.audio_received_ms += len(audio) / self.output_format.bytes_per_ms
        return ServerMessage(MessageKind.AUDIO, data=data, audio=audio)

    def _track(self, name: RealtimeAPIEvents, data: dict[str, Any], now: float) -> None:
        if name in (RealtimeAPIEvents.SessionCreated, RealtimeAPIEvents.SessionUpdated):
            if name is RealtimeAPIEvents.SessionUpdated:
                self._updates_pending = max(0, self._updates_pending - 1)
            session = data.get("session")
            if isinstance(session, dict):
                self.session = session
                audio = session.get("audio") if isinstance(session.get("audio"), dict) else {}
                assert isinstance(audio, dict)
                for direction in ("input", "output"):
                    if direction == "input" and self._updates_pending:
                        continue
                    part = audio.get(direction)
                    fmt = parse_format(part.get("format")) if isinstance(part, dict) else None
                    if fmt is not None:
                        setattr(self, f"{direction}_format", fmt)
        elif name is RealtimeAPIEvents.InputAudioBufferSpeechStopped:
            self._latency_start = now
        elif name is RealtimeAPIEvents.ResponseCreated:
            response = data.get("response")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                self.active_response_id = response["id"]
        elif name is RealtimeAPIEvents.ResponseDone:
            self.responses += 1
            self.active_response_id = None
            response = data.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                for key in self.usage:
                    value = usage.get(key)
                    if isinstance(value, int):
                        self.usage[key] += value
        elif name is RealtimeAPIEvents.Error:
            self.errors += 1
            error = data.get("error")
            param = error.get("param") if isinstance(error, dict) else None
            if isinstance(param, str) and param.startswith("session"):
                self._updates_pending = max(0, self._updates_pending - 1)  # a rejected update

    def statistics(self) -> dict[str, Any]:
        return {
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "responses": self.responses,
            "usage": dict(self.usage),
            "audio_sent_ms": round(self.audio_sent_ms, 3),
            "audio_received_ms": round(self.audio_received_ms, 3),
            "errors": self.errors,
            "unknown_events": self.unknown_events,
            "invalid_frames": self.invalid_frames,
            "first_audio_latency": self._latency.summary(),
        }
