"""Twilio Media Streams, sans-I/O: the server side of a bidirectional ``<Connect><Stream>``.

The project's one core shape: text in with the time (``receive_text(text, now_ms)``), events out
(``events_received()``), commands in (``send_audio``, ``mark``, ``clear``) and text out
(``data_to_send()``, or ``next_outgoing()`` one message at a time for a writer with flow control),
and the next deadline (``next_deadline()`` / ``tick(now_ms)``: the mark after the tail of an
utterance). No sockets, no asyncio, no clock of its own: the I/O layer feeds it the time (ms on
any monotonic scale) and writes what it returns.

Outbound audio is tracked with marks. Every ``mark_interval_ms`` of audio sent is followed by a
mark with a name this core generates; Twilio echoes a mark once the audio queued before it has
played, which advances ``acknowledged_ms`` (a position in the outbound stream, in ms of audio).
``clear()`` drops everything Twilio has not played yet. Twilio echoes the marks of cleared audio
too, so marks sent before a clear are remembered as cleared and their echoes never count as
played. A legitimate echo that crosses our clear on the wire is therefore ignored as well: the
acknowledged position errs on the side of "not heard", never the other way.

Between echoes, ``heard(now_ms)`` estimates what the caller has heard: Twilio plays what it
receives at real time, so the core keeps the sender-side timeline of its audio (each piece starts
when it was sent or when the piece before it ends, whichever is later) and, at every echo, the
lag between that timeline and the echo (the network both ways plus Twilio's own delay). The
estimate is the position on that timeline at ``now_ms - lag``: at least the acknowledged
position, at most the next mark's position and what was sent. The lag includes the way back, so
the estimate stays behind what was really heard (by the echo's own delay), never ahead of it.
Before the first echo there is no lag to go by and ``heard`` answers the acknowledged position.
``clear()`` freezes the estimate where it was: the cleared audio is never heard.
"""

from __future__ import annotations

import binascii
import json
import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..audio import AudioFormat, codecs
from ._base import (
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
    string_parameters,
)

__all__ = [
    "TWILIO_FORMAT",
    "Heard",
    "TwilioConnected",
    "TwilioDtmf",
    "TwilioEvent",
    "TwilioMark",
    "TwilioMedia",
    "TwilioMediaStream",
    "TwilioStart",
    "TwilioState",
    "TwilioStop",
]

TWILIO_CODEC = codecs.PCMU
TWILIO_FORMAT = TWILIO_CODEC.format
"""Media Streams carry μ-law, 8 kHz, mono, base64 without a header, in both directions."""

_MULAW_BYTES_PER_MS = TWILIO_FORMAT.bytes_per_ms
# A media message exactly as Twilio writes it (compact, this key order, ``streamSid`` first or
# last, no escapes): ~50 a second per call, read without building the JSON object. Anything else,
# valid or not, takes json.loads and the full checks, which give the same event for what matches.
_SID = r'"streamSid":"[^"\\\x00-\x1f]*"'
_TWILIO_MEDIA = re.compile(
    r'\{"event":"media","sequenceNumber":"([0-9]{1,9})",(?:'
    + _SID
    + r',)?"media":\{"track":"([a-z_]{1,32})",'
    r'"chunk":"([0-9]{1,9})","timestamp":"([0-9]{1,12})","payload":"([A-Za-z0-9+/]*={0,2})"\}(?:,'
    + _SID
    + r")?\}"
)
# A mark echo as Twilio writes it (~10 a second per call while the model speaks), the same way.
_TWILIO_MARK = re.compile(
    r'\{"event":"mark","sequenceNumber":"([0-9]{1,9})",(?:'
    + _SID
    + r',)?"mark":\{"name":"([^"\\\x00-\x1f]*)"\}(?:,'
    + _SID
    + r")?\}"
)
_CLEARED_MEMORY = 4096  # cleared mark names remembered; echoes come within seconds, this is ample
_PENDING_MEMORY = 4096  # unechoed marks kept (400 s at 100 ms); a peer that never echoes stays bounded


@dataclass(frozen=True, slots=True)
class TwilioConnected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class TwilioStart:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str]
    media_format: AudioFormat
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)  # not frozen: one per 20 ms per call, and frozen construction is slow
class TwilioMedia:
    """One chunk of caller audio: ``payload`` is μ-law, decoded from base64 and not copied again."""

    payload: bytes
    track: str
    chunk: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class TwilioDtmf:
    digit: str
    track: str


@dataclass(frozen=True, slots=True)
class TwilioMark:
    """A mark echoed by Twilio.

    ``acknowledged_ms`` is the outbound position now known to be played, set when the echo is for
    one of our marks (None for a cleared or unknown mark). ``cleared`` is True for the echo of a
    mark whose audio was cleared (not played). ``source_ms`` is the caller-provided source
    position that went with the acknowledged audio.
    """

    name: str
    acknowledged_ms: int | None = None
    source_ms: int | None = None
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class TwilioStop:
    call_sid: str
    account_sid: str


TwilioEvent = (
    TwilioConnected
    | TwilioStart
    | TwilioMedia
    | TwilioDtmf
    | TwilioMark
    | TwilioStop
    | Ignored
    | ProtocolError
)


class TwilioState(Enum):
    NEW = "new"
    CONNECTED = "connected"
    STARTED = "started"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Heard:
    """What the caller has heard of the outbound stream.

    ``position_ms``: on the ``sent_ms`` timeline. ``source_ms``: the same point on the sender's own
    timeline (the ``source_ms`` of ``send_audio``), None when no audio there came with one.
    ``estimated``: False for a position Twilio acknowledged with a mark echo, True for one estimated
    from the time played since (see the module doc).
    """

    position_ms: int
    source_ms: int | None
    estimated: bool


@dataclass(slots=True)
class _Segment:
    """One ``send_audio`` call's audio on the sender-side playback timeline (ms)."""

    start_ms: float  # stream position
    end_ms: float
    sim_start: float  # when it would start playing with no delay on the way
    source_end: int | None


@dataclass(slots=True)
class _PendingMark:
    name: str
    position_ms: int
    source_ms: int | None
    sent: bool = False


class TwilioMediaStream:
    """One Media Streams WebSocket, our side.

    ``chunk_ms``: outbound audio is cut into media messages of at most this many ms (20 ms = 160
    bytes); 0 sends each ``send_audio`` call as one message. ``mark_interval_ms``: a mark follows
    every this many ms of audio (a message that would cross the point is cut there); 0 disables
    automatic marks (``mark`` / ``mark_pending`` still work).
    """

    def __init__(self, *, chunk_ms: int = 20, mark_interval_ms: int = 100, mark_prefix: str = "vx-") -> None:
        if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or chunk_ms < 0:
            raise ValueError(f"chunk_ms must be an int >= 0, got {chunk_ms!r}")
        if (
            isinstance(mark_interval_ms, bool)
            or not isinstance(mark_interval_ms, int)
            or mark_interval_ms < 0
        ):
            raise ValueError(f"mark_interval_ms must be an int >= 0, got {mark_interval_ms!r}")
        self.chunk_ms = chunk_ms
        self.mark_interval_ms = mark_interval_ms
        self._chunk_bytes = chunk_ms * _MULAW_BYTES_PER_MS
        self._mark_prefix = mark_prefix
        self.state = TwilioState.NEW
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.account_sid: str | None = None
        self.tracks: tuple[str, ...] = ()
        self.custom_parameters: dict[str, str] = {}
        self.media_format: AudioFormat = TWILIO_FORMAT
        self.stats = Stats()
        self._expected_sequence: int | None = None
        # Outbound bookkeeping, all positions in bytes of μ-law (8 per ms) until reported.
        self._sent_bytes = 0
        self._marked_bytes = 0
        self._acknowledged_ms = 0
        self._acknowledged_source_ms: int | None = None
        self._last_source_ms: int | None = None
        self._mark_counter = 0
        self._pending: deque[_PendingMark] = deque()
        self._cleared: dict[str, None] = {}  # insertion-ordered set of cleared mark names
        self._outbox: deque[tuple[str, _PendingMark | None]] = deque()
        self._sid_json = ""
        self._events: list[TwilioEvent] = []
        # The heard estimate (module doc): the sender-side timeline of unacknowledged audio, the lag
        # measured at the last echo, and the last certain (or frozen) answer.
        self._segments: deque[_Segment] = deque()
        self._timeline_end: float | None = None
        self._lag_ms: float | None = None
        self._floor = Heard(0, None, False)
        # The tail mark's deadline (next_deadline): audio sent after the last mark waits one interval
        # for more audio; if none came, the tail is marked.
        self._tail_deadline: float | None = None
        self._tail_seen_ms = -1
        self._tail_period_ms = float(max(mark_interval_ms, 20))

    # -- positions ---------------------------------------------------------------------------------

    @property
    def sent_ms(self) -> int:
        """Outbound audio queued for Twilio so far, in ms (audio later cleared included: positions
        stay monotonic across clears)."""
        return self._sent_bytes // _MULAW_BYTES_PER_MS

    @property
    def acknowledged_ms(self) -> int:
        """Outbound position (ms, same timeline as ``sent_ms``) Twilio has confirmed as played."""
        return self._acknowledged_ms

    @property
    def acknowledged_source_ms(self) -> int | None:
        """The ``source_ms`` given with the last audio Twilio confirmed as played."""
        return self._acknowledged_source_ms

    @property
    def unmarked_ms(self) -> int:
        """Audio sent after the last mark: it will not be acknowledged until a mark follows it."""
        return (self._sent_bytes - self._marked_bytes) // _MULAW_BYTES_PER_MS

    @property
    def pending_marks(self) -> int:
        return len(self._pending)

    @property
    def queued_messages(self) -> int:
        """Messages queued here and not yet taken by the writer."""
        return len(self._outbox)

    # -- inbound -----------------------------------------------------------------------------------

    def receive_text(self, text: str | bytes, now_ms: float | None = None) -> None:
        """Take one text message from Twilio, received at ``now_ms``; its event goes to
        ``events_received()``. Without the time, a mark echo does not update the heard estimate."""
        self._events.append(self.receive(text, now_ms))

    def events_received(self) -> list[TwilioEvent]:
        """The events of the messages received since the last call, in order."""
        events, self._events = self._events, []
        return events

    def receive(self, text: str | bytes, now_ms: float | None = None) -> TwilioEvent:
        """``receive_text`` for one message, returning its event rather than queueing it."""
        self.stats["messages_in"] += 1
        if self.state is TwilioState.STARTED and type(text) is str:
            match = _TWILIO_MEDIA.fullmatch(text)
            if match is not None:
                sequence, track, chunk, timestamp, payload = match.groups()
                try:
                    decoded = binascii.a2b_base64(payload)
                except binascii.Error:
                    pass  # bad padding: the full checks say so
                else:
                    self._check_sequence(int(sequence))
                    self.stats["media_in"] += 1
                    return TwilioMedia(decoded, track, int(chunk), int(timestamp))
            else:
                match = _TWILIO_MARK.fullmatch(text)
                if match is not None:
                    sequence, name = match.groups()
                    self._check_sequence(int(sequence))
                    return self._echo(name, now_ms)
        try:
            return self._receive(load_object(text), now_ms)
        except BadMessage as exc:
            self.stats["protocol_errors"] += 1
            return ProtocolError(exc.reason, exc.close_code)

    def _receive(self, message: dict[str, Any], now_ms: float | None) -> TwilioEvent:
        event = message.get("event")
        if not isinstance(event, str):
            raise BadMessage("message has no string 'event'")
        if "sequenceNumber" in message:
            self._check_sequence(get_int(message, "sequenceNumber", event))
        if self.state is TwilioState.STOPPED:
            self.stats["ignored_after_stop"] += 1
            return Ignored(event, "message after stop")
        if event == "media":
            return self._media(message)
        if event == "mark":
            return self._mark(message, now_ms)
        if event == "start":
            return self._start(message)
        if event == "dtmf":
            self._require_started(event)
            dtmf = get_object(message, "dtmf", event)
            digit = get_str(dtmf, "digit", "dtmf")
            if not digit:
                raise BadMessage("dtmf.digit is empty")
            self.stats["dtmf"] += 1
            return TwilioDtmf(digit, get_str(dtmf, "track", "dtmf", "inbound_track"))
        if event == "connected":
            if self.state is TwilioState.NEW:
                self.state = TwilioState.CONNECTED
            return TwilioConnected(
                get_str(message, "protocol", event, ""), get_str(message, "version", event, "")
            )
        if event == "stop":
            self._require_started(event)
            stop = get_object(message, "stop", event, required=False)
            self.state = TwilioState.STOPPED
            return TwilioStop(
                get_str(stop, "callSid", "stop", self.call_sid or ""),
                get_str(stop, "accountSid", "stop", self.account_sid or ""),
            )
        self.stats["unknown_events"] += 1
        return Ignored(event, "unknown event")

    def _check_sequence(self, number: int) -> None:
        # Gaps are counted, not fatal: the sequence is informational and Twilio may skip.
        if self._expected_sequence is not None and number != self._expected_sequence:
            self.stats["sequence_gaps"] += 1
        self._expected_sequence = number + 1

    def _require_started(self, event: str) -> None:
        if self.state is not TwilioState.STARTED:
            raise BadMessage(f"{event} before start", CLOSE_PROTOCOL_ERROR)

    def _start(self, message: dict[str, Any]) -> TwilioStart:
        if self.state is TwilioState.STARTED:
            raise BadMessage("second start on one stream", CLOSE_PROTOCOL_ERROR)
        start = get_object(message, "start", "start")
        sid = start.get("streamSid", message.get("streamSid"))
        if not isinstance(sid, str) or not sid:
            raise BadMessage("start.streamSid must be a non-empty string")
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise BadMessage("start.tracks must be a list of strings")
        fmt = get_object(start, "mediaFormat", "start", required=False)
        encoding = fmt.get("encoding", TWILIO_CODEC.mime)
        rate = fmt.get("sampleRate", TWILIO_CODEC.clock_rate)
        channels = fmt.get("channels", 1)
        if encoding != TWILIO_CODEC.mime or rate != TWILIO_CODEC.clock_rate or channels != 1:
            raise BadMessage(
                f"start.mediaFormat {encoding}/{rate}/{channels} is not {TWILIO_CODEC.mime}/8000/1",
                CLOSE_UNSUPPORTED_DATA,
            )
        self.stream_sid = sid
        self.call_sid = get_str(start, "callSid", "start", "")
        self.account_sid = get_str(start, "accountSid", "start", "")
        self.tracks = tuple(tracks)
        self.custom_parameters = string_parameters(start.get("customParameters"), "start.customParameters")
        self.state = TwilioState.STARTED
        self._sid_json = json.dumps(sid)
        return TwilioStart(
            sid, self.call_sid, self.account_sid, self.tracks, self.custom_parameters, TWILIO_FORMAT, message
        )

    def _media(self, message: dict[str, Any]) -> TwilioMedia:
        self._require_started("media")
        media = message.get("media")
        # The message as Twilio sends it takes the short way; anything else gets the full checks.
        if type(media) is dict:
            payload, track = media.get("payload"), media.get("track", "inbound")
            chunk, timestamp = media.get("chunk", 0), media.get("timestamp", 0)
            if type(payload) is str and type(track) is str and type(chunk) is str and type(timestamp) is str:
                try:
                    decoded = binascii.a2b_base64(payload)
                    self.stats["media_in"] += 1
                    return TwilioMedia(decoded, track, int(chunk), int(timestamp))
                except (binascii.Error, ValueError):
                    pass
        media = get_object(message, "media", "media")
        payload = decode_payload(media, "media")
        self.stats["media_in"] += 1
        return TwilioMedia(
            payload,
            get_str(media, "track", "media", "inbound"),
            get_int(media, "chunk", "media", 0),
            get_int(media, "timestamp", "media", 0),
        )

    def _mark(self, message: dict[str, Any], now_ms: float | None) -> TwilioMark:
        self._require_started("mark")
        return self._echo(get_str(get_object(message, "mark", "mark"), "name", "mark"), now_ms)

    def _echo(self, name: str, now_ms: float | None) -> TwilioMark:
        """The echo of the mark ``name`` (the stream is started)."""
        marks = self._pending
        if marks and marks[0].name == name:
            pending = marks.popleft()  # the usual case: the oldest mark sent
        elif name in self._cleared:
            del self._cleared[name]
            self.stats["marks_cleared"] += 1
            return TwilioMark(name, cleared=True)
        elif not any(p.name == name for p in marks):
            self.stats["marks_unknown"] += 1
            return TwilioMark(name)
        else:
            # Twilio plays in order: an echo means every earlier mark's audio has played as well.
            while True:
                pending = marks.popleft()
                if pending.name == name:
                    break
        self.stats["marks_acknowledged"] += 1
        if pending.position_ms > self._acknowledged_ms:
            self._acknowledged_ms = pending.position_ms
        if pending.source_ms is not None:
            self._acknowledged_source_ms = pending.source_ms
        self._acknowledged(pending.position_ms, pending.source_ms, now_ms)
        return TwilioMark(name, self._acknowledged_ms, pending.source_ms)

    # -- what was heard ----------------------------------------------------------------------------

    def _acknowledged(self, position_ms: int, source_ms: int | None, now_ms: float | None) -> None:
        if position_ms >= self._floor.position_ms:
            # The source position of the last audio acknowledged with one (a mark may have none).
            self._floor = Heard(position_ms, self._acknowledged_source_ms, False)
        segments = self._segments
        if now_ms is not None:
            played_at = self._timeline_at(position_ms)
            if played_at is not None:
                self._lag_ms = max(0.0, now_ms - played_at)
        while segments and segments[0].end_ms <= position_ms:
            segments.popleft()

    def _timeline_at(self, position_ms: float) -> float | None:
        """When ``position_ms`` ended playing on the sender-side timeline."""
        for segment in self._segments:
            if segment.start_ms < position_ms <= segment.end_ms:
                return segment.sim_start + (position_ms - segment.start_ms)
        return None

    def heard(self, now_ms: float) -> Heard:
        """What the caller has heard by ``now_ms`` (the module doc says how it is estimated)."""
        floor = self._floor
        lag = self._lag_ms
        if lag is None or not self._segments:
            return floor
        t = now_ms - lag
        position = float(floor.position_ms)
        for segment in self._segments:
            if t < segment.sim_start:
                break  # not playing yet at t (the player had run dry before it)
            if segment.end_ms <= position:
                continue
            if t < segment.sim_start + (segment.end_ms - segment.start_ms):
                position = max(position, segment.start_ms + (t - segment.sim_start))
                break
            position = segment.end_ms
        # Not beyond the next mark (its echo has not come) nor beyond what was sent.
        cap = float(self.sent_ms)
        for pending in self._pending:
            if pending.position_ms > floor.position_ms:
                cap = min(cap, float(pending.position_ms))
                break
        whole = int(min(position, cap))
        if whole <= floor.position_ms:
            return floor
        source = floor.source_ms
        for segment in self._segments:
            if segment.start_ms < whole <= segment.end_ms:
                if segment.source_end is not None:
                    source = segment.source_end - int(segment.end_ms - whole)
                break
        return Heard(whole, source, True)

    # -- outbound ----------------------------------------------------------------------------------

    def _require_stream(self, command: str) -> None:
        if self.state is not TwilioState.STARTED:
            raise RuntimeError(f"{command}: the Twilio stream is {self.state.value}, not started")

    def send_audio(self, data: bytes, source_ms: int | None = None, now_ms: float | None = None) -> None:
        """Queue μ-law 8 kHz audio for Twilio, cut into ``chunk_ms`` media messages.

        ``source_ms``: optional position in the sender's own timeline where this audio ends; the
        acknowledgement that covers it reports it back (a mark inside this audio reports the
        position of its own byte offset, counted back from ``source_ms``). ``now_ms``: when it is
        sent, for the heard estimate and the tail mark's deadline.
        """
        self._require_stream("send_audio")
        size = len(data)
        if not size:
            return
        if now_ms is not None:
            start_ms = self._sent_bytes / _MULAW_BYTES_PER_MS
            end = self._timeline_end
            begins = now_ms if end is None or end < now_ms else end
            self._segments.append(
                _Segment(start_ms, start_ms + size / _MULAW_BYTES_PER_MS, begins, source_ms)
            )
            if len(self._segments) > _PENDING_MEMORY:
                self._segments.popleft()  # a peer that never echoes stays bounded
            self._timeline_end = begins + size / _MULAW_BYTES_PER_MS
        step = self._chunk_bytes or size
        view = memoryview(data)
        prefix = '{"event":"media","streamSid":' + self._sid_json + ',"media":{"payload":"'
        interval = self.mark_interval_ms * _MULAW_BYTES_PER_MS
        start = 0
        while start < size:
            end = min(start + step, size)
            if interval:
                # A message ends where the next automatic mark goes, so acknowledgements keep the
                # precision of mark_interval_ms however much audio one call sends.
                end = min(end, start + self._marked_bytes + interval - self._sent_bytes)
            chunk = view[start:end]
            self._outbox.append((prefix + encode_payload(chunk) + '"}}', None))
            self._sent_bytes += end - start
            self.stats["media_out"] += 1
            if source_ms is not None:
                self._last_source_ms = source_ms - (size - end) // _MULAW_BYTES_PER_MS
            if interval and self._sent_bytes - self._marked_bytes >= interval:
                self.mark()
            start = end
        if now_ms is not None and interval and self._tail_deadline is None and self.unmarked_ms:
            self._tail_seen_ms = self.sent_ms
            self._tail_deadline = now_ms + self._tail_period_ms

    def next_deadline(self) -> float | None:
        """When ``tick`` has something to do (ms, the scale of ``now_ms``), or None."""
        return self._tail_deadline

    def tick(self, now_ms: float) -> None:
        """Mark the tail of an utterance: audio left unmarked for a whole mark interval with no
        more audio after it would never be acknowledged otherwise."""
        deadline = self._tail_deadline
        if deadline is None or now_ms < deadline:
            return
        self._tail_deadline = None
        if self.state is not TwilioState.STARTED or not self.unmarked_ms:
            return
        if self.sent_ms == self._tail_seen_ms:
            self.mark_pending()
            return
        self._tail_seen_ms = self.sent_ms
        self._tail_deadline = now_ms + self._tail_period_ms

    def mark(self, name: str | None = None) -> str:
        """Send a mark now; its echo acknowledges everything sent before it. Returns its name."""
        self._require_stream("mark")
        if name is None:
            self._mark_counter += 1
            name = f"{self._mark_prefix}{self._mark_counter}"
        pending = _PendingMark(name, self.sent_ms, self._last_source_ms)
        self._pending.append(pending)
        if len(self._pending) > _PENDING_MEMORY:
            self._pending.popleft()  # a later echo acknowledges its audio anyway
            self.stats["marks_forgotten"] += 1
        self._marked_bytes = self._sent_bytes
        body = '{"event":"mark","streamSid":' + self._sid_json + ',"mark":{"name":' + json.dumps(name) + "}}"
        self._outbox.append((body, pending))
        self.stats["marks_out"] += 1
        return name

    def mark_pending(self) -> str | None:
        """Mark the unmarked tail of the outbound audio (end of an utterance), if there is one."""
        if self.state is not TwilioState.STARTED or self._sent_bytes == self._marked_bytes:
            return None
        return self.mark()

    def clear(self, now_ms: float | None = None) -> None:
        """Drop all audio Twilio has not played: unsent messages here and Twilio's buffer. The
        heard estimate stops where it is at ``now_ms`` (without the time: at the acknowledged
        position)."""
        self._require_stream("clear")
        if now_ms is not None:
            self._floor = self.heard(now_ms)
        self._segments.clear()
        self._timeline_end = now_ms
        self._tail_deadline = None
        for _text, pending in self._outbox:
            if pending is not None:
                self._pending.remove(pending)  # never sent, so never echoed
        for pending in self._pending:
            self._cleared[pending.name] = None
        while len(self._cleared) > _CLEARED_MEMORY:
            del self._cleared[next(iter(self._cleared))]
        self._pending.clear()
        self._marked_bytes = self._sent_bytes
        self._last_source_ms = None  # the cleared audio's position must not ride on a later mark
        self._outbox.clear()
        self._outbox.append((json.dumps({"event": "clear", "streamSid": self.stream_sid}), None))
        self.stats["clears"] += 1

    def next_outgoing(self) -> str | None:
        """The next text message to write, or None. Taking messages one at a time lets a ``clear``
        issued while the writer waits on the socket still drop everything not yet written."""
        if not self._outbox:
            return None
        text, pending = self._outbox.popleft()
        if pending is not None:
            pending.sent = True
        self.stats["messages_out"] += 1
        return text

    def data_to_send(self) -> list[str]:
        """Every queued text message, in order."""
        out: list[str] = []
        while (text := self.next_outgoing()) is not None:
            out.append(text)
        return out
