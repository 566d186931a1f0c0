"""VoxEngine WebSocket media format, sans-I/O: JSON ``start`` / ``media`` / ``stop`` in both directions.

A media stream is ``start`` (media format, optional ``tag``, optional ``customParameters``), then
``media`` messages (base64 audio, ``chunk`` counting up from 1, ``timestamp`` in samples), then
``stop``. Several streams share one socket, each with its own ``tag``; each tag has its own state
here, inbound and outbound. Every message carries a socket-wide ``sequenceNumber``.

The core has the project's one shape: text in with the time (``receive_text``), events out
(``events_received``), commands in (``start_stream``, ``send_audio``, ``clear``, ``stop_stream``)
and text out (``data_to_send``, or ``next_outgoing`` one at a time), and a next deadline (none).

Encodings (``WebSocketAudioEncoding``): ``PCM8`` = PCM16 at 8 kHz (the default), ``PCM16`` = PCM16
at 16 kHz, ``ULAW`` and ``ALAW`` at 8 kHz. ``OPUS`` is refused (close 1003). The MIME spellings
``audio/x-mulaw`` / ``audio/x-alaw`` are accepted inbound too.

Wire details that the published format leaves open, and the choice made here:

- ``tag`` is read from the event's own object (``start.tag``, ``media.tag``, ``stop.tag``) or, if
  absent there, from the top level; it is written in the event's own object.
- ``customParameters`` arrives as a JSON string (VoxEngine serialises it); an object is accepted
  too. It is written as a JSON string.
- Inbound ``timestamp`` is taken as a sample count (RTP-like, any start value): frame times are
  ``(timestamp - first timestamp) / rate``. Outbound ``timestamp`` is the sample count from 0.
- Outbound audio is not paced: VoxEngine buffers what it receives (up to 10 s, the excess is
  discarded) and plays it in real time. The runtime's playout already delivers 20 ms at a time.
- There is no playout acknowledgement in this format (no marks), so nothing here reports what the
  far end has played.
- ``clear`` is a voxline addition: ``{"event":"clear","sequenceNumber":n,"clear":{"tag":...}}``
  asks the peer to drop the tag's buffered audio (voxline's own test callers honour it). Queued
  outbound media of that tag not yet written is dropped here at once; ``chunk`` and
  ``timestamp`` are given as messages are written, so the dropped audio leaves no gap (a gap
  would read as packet loss to the peer).
- ``stop.mediaInfo`` carries ``bytesSent`` and ``duration`` (seconds) of the outbound stream.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..audio import AudioFormat, codecs
from ._base import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    BadMessage,
    Ignored,
    ProtocolError,
    Stats,
    decode_payload,
    encode_payload,
    get_int,
    get_object,
    get_str,
    load_object,
    parse_json,
    string_parameters,
)

__all__ = [
    "DEFAULT_ENCODING",
    "VoxEngineMediaSocket",
    "WsMediaEvent",
    "WsMediaMedia",
    "WsMediaStart",
    "WsMediaStop",
    "encoding_for_format",
    "format_for_encoding",
]

DEFAULT_ENCODING = "PCM8"


def format_for_encoding(encoding: str, sample_rate: int | None = None) -> AudioFormat:
    """The AudioFormat of a ``WebSocketAudioEncoding`` value; ValueError names a bad one."""
    codec = codecs.by_voxengine(encoding)
    if codec is None:
        raise ValueError(f"encoding {encoding!r} is not supported (PCM8, PCM16, ULAW, ALAW)")
    fmt = codec.format
    if sample_rate is not None and sample_rate != fmt.rate:
        raise ValueError(f"encoding {encoding} is {fmt.rate} Hz, but sampleRate is {sample_rate}")
    return fmt


def encoding_for_format(fmt: AudioFormat) -> str:
    codec = codecs.for_format(fmt)
    name = codec.voxengine if codec is not None else None
    if name is None:
        raise ValueError(f"format {fmt} has no VoxEngine WebSocket encoding (PCM8, PCM16, ULAW, ALAW)")
    return name


@dataclass(frozen=True, slots=True)
class WsMediaStart:
    tag: str | None
    media_format: AudioFormat
    encoding: str
    custom_parameters: dict[str, str]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class WsMediaMedia:
    tag: str | None
    payload: bytes
    chunk: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class WsMediaStop:
    tag: str | None
    media_info: dict[str, Any] | None


WsMediaEvent = WsMediaStart | WsMediaMedia | WsMediaStop | Ignored | ProtocolError


@dataclass(slots=True)
class _Inbound:
    format: AudioFormat
    first_timestamp: int | None = None
    received_bytes: int = 0


@dataclass(slots=True)
class _Outbound:
    format: AudioFormat
    tag_json: str
    sent_bytes: int = 0  # queued, cleared audio included: the position timeline
    chunk: int = 0  # written media messages
    written_bytes: int = 0  # written audio: the wire's timestamp and bytesSent


@dataclass(slots=True)
class _Queued:
    """One outbound message. Media numbering (chunk, timestamp) and stop's mediaInfo are filled in
    when the message is written, so audio dropped by a clear leaves no gap in either."""

    tag: str | None
    event: str
    stream: _Outbound
    body: str  # the start/clear body, or the base64 payload of a media message
    size: int = 0


class VoxEngineMediaSocket:
    """One WebSocket carrying VoxEngine-format media streams (any number of tags), our side.

    ``chunk_ms``: outbound audio is cut into media messages of this many ms; 0 sends each
    ``send_audio`` call as one message. ``max_streams``: inbound streams running at once on the
    socket; a ``start`` beyond it is a protocol error (close 1008).
    """

    def __init__(self, *, chunk_ms: int = 20, max_streams: int = 16) -> None:
        if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or chunk_ms < 0:
            raise ValueError(f"chunk_ms must be an int >= 0, got {chunk_ms!r}")
        if isinstance(max_streams, bool) or not isinstance(max_streams, int) or max_streams < 1:
            raise ValueError(f"max_streams must be an int >= 1, got {max_streams!r}")
        self.chunk_ms = chunk_ms
        self.max_streams = max_streams
        self.stats = Stats()
        self._inbound: dict[str | None, _Inbound] = {}
        self._outbound: dict[str | None, _Outbound] = {}
        self._expected_sequence: int | None = None
        self._sequence = 0
        # The sequence number too is given when a message is written.
        self._outbox: deque[_Queued] = deque()
        self._events: list[WsMediaEvent] = []

    # -- state -------------------------------------------------------------------------------------

    @property
    def inbound_tags(self) -> list[str | None]:
        return list(self._inbound)

    @property
    def outbound_tags(self) -> list[str | None]:
        return list(self._outbound)

    def inbound_format(self, tag: str | None) -> AudioFormat | None:
        stream = self._inbound.get(tag)
        return stream.format if stream else None

    def has_outbound(self, tag: str | None) -> bool:
        return tag in self._outbound

    def sent_ms(self, tag: str | None) -> int:
        stream = self._outbound.get(tag)
        return stream.sent_bytes // stream.format.bytes_per_ms if stream else 0

    # -- inbound -----------------------------------------------------------------------------------

    def receive_text(self, text: str | bytes, now_ms: float | None = None) -> None:
        """Take one text message (the time is accepted for the one core shape; this format has no
        timers); its event goes to ``events_received()``."""
        self._events.append(self.receive(text))

    def events_received(self) -> list[WsMediaEvent]:
        """The events of the messages received since the last call, in order."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """Always None: nothing in this format is timed (no marks, no acknowledgements)."""
        return None

    def tick(self, now_ms: float) -> None:
        """Nothing to do (see ``next_deadline``)."""

    def receive(self, text: str | bytes) -> WsMediaEvent:
        """``receive_text`` for one message, returning its event rather than queueing it."""
        self.stats["messages_in"] += 1
        try:
            return self._receive(load_object(text))
        except BadMessage as exc:
            self.stats["protocol_errors"] += 1
            return ProtocolError(exc.reason, exc.close_code)

    def _receive(self, message: dict[str, Any]) -> WsMediaEvent:
        event = message.get("event")
        if event is None and "customEvent" in message:
            # Text messages of the scenario (WebSocket.send) share the socket; not media.
            self.stats["custom_events"] += 1
            return Ignored(str(message["customEvent"]), "customEvent message")
        if not isinstance(event, str):
            raise BadMessage("message has no string 'event'")
        if "sequenceNumber" in message:
            number = get_int(message, "sequenceNumber", event)
            if self._expected_sequence is not None and number != self._expected_sequence:
                self.stats["sequence_gaps"] += 1
            self._expected_sequence = number + 1
        if event == "media":
            return self._media(message)
        if event == "start":
            return self._start(message)
        if event == "stop":
            body = get_object(message, "stop", event, required=False)
            tag = _tag(message, body, event)
            if self._inbound.pop(tag, None) is None:
                self.stats["ignored_stops"] += 1
                return Ignored(event, f"stop for tag {tag!r} that has not started")
            info = body.get("mediaInfo")
            return WsMediaStop(tag, info if isinstance(info, dict) else None)
        self.stats["unknown_events"] += 1
        return Ignored(event, "unknown event")

    def _start(self, message: dict[str, Any]) -> WsMediaStart:
        body = get_object(message, "start", "start")
        tag = _tag(message, body, "start")
        if tag in self._inbound:
            raise BadMessage(f"second start for tag {tag!r} without a stop", CLOSE_PROTOCOL_ERROR)
        if len(self._inbound) >= self.max_streams:
            raise BadMessage(f"more than {self.max_streams} streams at once", CLOSE_POLICY_VIOLATION)
        media_format = get_object(body, "mediaFormat", "start", required=False)
        encoding = get_str(media_format, "encoding", "start.mediaFormat", DEFAULT_ENCODING)
        rate = media_format.get("sampleRate")
        if rate is not None:
            rate = get_int(media_format, "sampleRate", "start.mediaFormat")
        try:
            fmt = format_for_encoding(encoding, rate)
        except ValueError as exc:
            raise BadMessage(f"start.mediaFormat: {exc}", CLOSE_UNSUPPORTED_DATA) from None
        params = body.get("customParameters", message.get("customParameters"))
        if isinstance(params, str):
            params = parse_json(params, "start.customParameters (a string)") if params else {}
        custom = string_parameters(params, "start.customParameters")
        self._inbound[tag] = _Inbound(fmt)
        self.stats["starts"] += 1
        return WsMediaStart(tag, fmt, encoding, custom, message)

    def _media(self, message: dict[str, Any]) -> WsMediaMedia:
        body = get_object(message, "media", "media")
        tag = _tag(message, body, "media")
        stream = self._inbound.get(tag)
        if stream is None:
            raise BadMessage(f"media before start for tag {tag!r}", CLOSE_PROTOCOL_ERROR)
        payload = decode_payload(body, "media")
        if "timestamp" in body:
            samples = get_int(body, "timestamp", "media")
            if stream.first_timestamp is None:
                stream.first_timestamp = samples
            timestamp_ms = (samples - stream.first_timestamp) * 1000 // stream.format.rate
        else:
            timestamp_ms = stream.received_bytes // stream.format.bytes_per_ms
        stream.received_bytes += len(payload)
        self.stats["media_in"] += 1
        return WsMediaMedia(tag, payload, get_int(body, "chunk", "media", 0), timestamp_ms)

    # -- outbound ----------------------------------------------------------------------------------

    def start_stream(
        self, tag: str | None, fmt: AudioFormat, custom_parameters: dict[str, str] | None = None
    ) -> None:
        """Begin an outbound stream; a stream already running on this tag is stopped first."""
        encoding = encoding_for_format(fmt)
        if tag in self._outbound:
            self.stop_stream(tag)
        tag_json = "" if tag is None else f'"tag":{json.dumps(tag)},'
        body: dict[str, Any] = {"mediaFormat": {"encoding": encoding, "sampleRate": fmt.rate, "channels": 1}}
        if custom_parameters:
            body["customParameters"] = json.dumps(custom_parameters)
        if tag is not None:
            body["tag"] = tag
        stream = self._outbound[tag] = _Outbound(fmt, tag_json)
        self._outbox.append(_Queued(tag, "start", stream, json.dumps(body)))
        self.stats["starts_out"] += 1

    def send_audio(self, tag: str | None, data: bytes) -> None:
        """Queue audio (in the stream's format) on an outbound stream started with ``start_stream``."""
        stream = self._outbound.get(tag)
        if stream is None:
            raise RuntimeError(f"send_audio: no outbound stream with tag {tag!r}; call start_stream first")
        if not data:
            return
        step = self.chunk_ms * stream.format.bytes_per_ms or len(data)
        view = memoryview(data)
        for start in range(0, len(data), step):
            chunk = view[start : start + step]
            stream.sent_bytes += len(chunk)
            self._outbox.append(_Queued(tag, "media", stream, encode_payload(chunk), len(chunk)))
            self.stats["media_out"] += 1

    def stop_stream(self, tag: str | None) -> None:
        stream = self._outbound.pop(tag, None)
        if stream is not None:
            self._outbox.append(_Queued(tag, "stop", stream, ""))

    def clear(self, tag: str | None) -> None:
        """Drop the tag's outbound audio not yet written and ask the peer to drop what it buffered."""
        stream = self._outbound.get(tag)
        if stream is None:
            raise RuntimeError(f"clear: no outbound stream with tag {tag!r}")
        self._outbox = deque(q for q in self._outbox if not (q.tag == tag and q.event == "media"))
        self._outbox.append(_Queued(tag, "clear", stream, "" if tag is None else '"tag":' + json.dumps(tag)))
        self.stats["clears"] += 1

    def next_outgoing(self) -> str | None:
        if not self._outbox:
            return None
        queued = self._outbox.popleft()
        stream = queued.stream
        head = f'{{"event":"{queued.event}","sequenceNumber":{self._sequence},"{queued.event}":'
        if queued.event == "media":
            stream.chunk += 1
            samples = stream.written_bytes // stream.format.bytes_per_sample
            stream.written_bytes += queued.size
            text = (
                f'{head}{{{stream.tag_json}"chunk":{stream.chunk},"timestamp":{samples},'
                f'"payload":"{queued.body}"}}}}'
            )
        elif queued.event == "stop":
            sent = stream.written_bytes
            info = {"bytesSent": sent, "duration": sent / stream.format.bytes_per_ms / 1000}
            text = f'{head}{{{stream.tag_json}"mediaInfo":{json.dumps(info)}}}}}'
        elif queued.event == "clear":
            text = f"{head}{{{queued.body}}}}}"
        else:
            text = f"{head}{queued.body}}}"
        self._sequence += 1
        self.stats["messages_out"] += 1
        return text

    def data_to_send(self) -> list[str]:
        out: list[str] = []
        while (text := self.next_outgoing()) is not None:
            out.append(text)
        return out


def _tag(message: dict[str, Any], body: dict[str, Any], where: str) -> str | None:
    tag = body.get("tag", message.get("tag"))
    if tag is None or tag == "":
        return None
    if not isinstance(tag, str):
        raise BadMessage(f"{where}.tag must be a string, got {type(tag).__name__}")
    return tag
