"""Simulated carriers for tests: a Twilio Media Streams caller and a VoxEngine-format caller.

Both are written from the carriers' documented protocols, independently of voxline's own cores, so
they check the server rather than agree with it. They connect to a real WebSocket endpoint, send
the caller's audio paced at 20 ms on a clock (real, or virtual and stepped by the test), and
model the carrier's playback of what the server sends: audio plays in real time from when it
arrives, a Twilio mark is echoed once the audio queued before it has played (plus a configurable
delay and jitter), and a clear drops the unplayed audio (Twilio then echoes the pending marks at
once, as it does). Every server message is checked; anything off the protocol lands in
``errors``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import itertools
import json
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = [
    "CallerClock",
    "PlaybackModel",
    "RealTimeClock",
    "TwilioTestCaller",
    "VirtualClock",
    "VoxEngineStreamSpec",
    "VoxEngineTestCaller",
]

FRAME_MS = 20


class CallerClock(Protocol):
    """Where a test caller takes its time from."""

    def now_ms(self) -> float: ...

    async def sleep_until(self, t_ms: float) -> None: ...


class RealTimeClock:
    """The event loop's monotonic clock, in ms."""

    def now_ms(self) -> float:
        return asyncio.get_running_loop().time() * 1000

    async def sleep_until(self, t_ms: float) -> None:
        delay = t_ms - self.now_ms()
        await asyncio.sleep(max(0.0, delay) / 1000)


class VirtualClock:
    """Time that moves only when the test calls ``advance``; sleepers wake in deadline order."""

    def __init__(self, start_ms: float = 0.0) -> None:
        self._now = start_ms
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> float:
        return self._now

    async def sleep_until(self, t_ms: float) -> None:
        if t_ms <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (t_ms, next(self._seq), future))
        await future

    async def advance(self, ms: float) -> None:
        """Move time forward by ``ms``, waking every sleeper due on the way and letting it run."""
        target = self._now + ms
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, due)
            if not future.done():
                future.set_result(None)
            for _ in range(5):  # let the woken coroutine run up to its next wait
                await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)  # always yield: a test stepping time in a loop must not starve the loop


class PlaybackModel:
    """A carrier's playback buffer, sans-I/O: what has played, and which marks are due.

    Audio plays in real time from when it arrives (or from when the audio before it ends). A mark
    is due ``mark_delay_ms`` (+ up to ``mark_jitter_ms``, seeded) after the audio received before
    it has played; marks are echoed in order.
    """

    def __init__(
        self, bytes_per_ms: int, *, mark_delay_ms: float = 20.0, mark_jitter_ms: float = 0.0, seed: int = 0
    ) -> None:
        self.bytes_per_ms = bytes_per_ms
        self.mark_delay_ms = mark_delay_ms
        self.mark_jitter_ms = mark_jitter_ms
        self._random = random.Random(seed)
        self.received = bytearray()
        self.played = bytearray()
        self.cleared_bytes = 0
        self._audio: deque[tuple[float, bytes]] = deque()
        self._marks: deque[tuple[float, str]] = deque()
        self._play_end = 0.0
        self._last_mark_due = 0.0

    @property
    def idle(self) -> bool:
        return not self._audio and not self._marks

    def buffered_ms(self, now_ms: float) -> float:
        return max(0.0, self._play_end - now_ms)

    def media(self, payload: bytes, now_ms: float) -> None:
        self.received += payload
        start = max(now_ms, self._play_end)
        self._play_end = start + len(payload) / self.bytes_per_ms
        self._audio.append((self._play_end, payload))

    def mark(self, name: str, now_ms: float) -> None:
        due = max(now_ms, self._play_end) + self.mark_delay_ms + self._random.uniform(0, self.mark_jitter_ms)
        due = max(due, self._last_mark_due)
        self._last_mark_due = due
        self._marks.append((due, name))

    def advance(self, now_ms: float) -> list[str]:
        """Play what is due by ``now_ms``; returns the marks to echo now, in order."""
        while self._audio and self._audio[0][0] <= now_ms:
            self.played += self._audio.popleft()[1]
        echoes: list[str] = []
        while self._marks and self._marks[0][0] <= now_ms:
            echoes.append(self._marks.popleft()[1])
        return echoes

    def clear(self, now_ms: float) -> list[str]:
        """Drop unplayed audio; returns the pending marks, all to be echoed at once."""
        echoes = self.advance(now_ms)
        self.cleared_bytes += sum(len(chunk) for _, chunk in self._audio)
        self._audio.clear()
        echoes.extend(name for _, name in self._marks)
        self._marks.clear()
        self._play_end = now_ms
        self._last_mark_due = now_ms
        return echoes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Caller(ABC):
    """Connection, pacing and linger logic shared by both callers."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        clock: CallerClock | None,
        linger_ms: float,
        quiet_ms: float,
        done_when: Callable[[Any], bool] | None = None,
    ) -> None:
        self.url = url
        self.done_when = done_when
        self.headers = dict(headers or {})
        self.clock: CallerClock = clock or RealTimeClock()
        self.linger_ms = linger_ms
        self.quiet_ms = quiet_ms
        self.errors: list[str] = []
        self.messages_sent = 0
        self.messages_received = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._ws: ClientConnection | None = None
        self._last_receive_ms = 0.0
        self._closed_by_server = False

    def _error(self, text: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(text)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps(message))
        self.messages_sent += 1

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.messages_received += 1
                self._last_receive_ms = self.clock.now_ms()
                if isinstance(raw, bytes):
                    self._error("binary frame from server")
                    continue
                try:
                    message = json.loads(raw)
                except ValueError:
                    self._error(f"non-JSON from server: {raw[:80]!r}")
                    continue
                if not isinstance(message, dict):
                    self._error(f"non-object from server: {raw[:80]!r}")
                    continue
                self._on_message(message)
        except ConnectionClosed:
            pass
        finally:
            self._closed_by_server = True

    @abstractmethod
    def _on_message(self, message: dict[str, Any]) -> None: ...

    @abstractmethod
    def _idle(self) -> bool: ...

    @abstractmethod
    def _tick(self, now_ms: float) -> list[dict[str, Any]]:
        """Messages to send at this tick (mark echoes); also advances playback."""

    @abstractmethod
    def _frames(self, index: int, now_ms: float) -> list[dict[str, Any]]:
        """Messages carrying the caller's audio for tick ``index`` (empty when all is sent)."""

    @abstractmethod
    def _opening(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _closing(self) -> list[dict[str, Any]]: ...

    @property
    @abstractmethod
    def _audio_ticks(self) -> int:
        """Ticks that carry the caller's audio."""

    async def run(self) -> None:
        """Connect, stream the audio at real-time pacing, linger for replies, end the stream and
        close the socket (as the carriers do after their ``stop``).

        Raises ``websockets.exceptions.InvalidStatus`` if the server refuses the upgrade.
        """
        async with connect(self.url, additional_headers=self.headers, max_size=None, compression=None) as ws:
            self._ws = ws
            reader = asyncio.get_running_loop().create_task(self._reader(ws))
            try:
                await self._conversation()
            except ConnectionClosed:
                pass
            finally:
                await ws.close()
                await reader
                self.close_code = ws.close_code
                self.close_reason = ws.close_reason or ""

    async def _conversation(self) -> None:
        clock = self.clock
        for message in self._opening():
            await self._send(message)
        t0 = clock.now_ms()
        self._last_receive_ms = t0
        index = 0
        while True:
            await clock.sleep_until(t0 + index * FRAME_MS)
            if self._closed_by_server:
                return
            now = clock.now_ms()
            for message in self._tick(now):
                await self._send(message)
            for message in self._frames(index, now):
                await self._send(message)
            index += 1
            if index <= self._audio_ticks:
                continue
            lingered = now - (t0 + self._audio_ticks * FRAME_MS)
            if lingered >= self.linger_ms:
                break
            if self.done_when is not None:
                if self.done_when(self):
                    break
            elif self._idle() and now - self._last_receive_ms >= self.quiet_ms:
                break
        for message in self._closing():
            await self._send(message)
        # Give the server a moment to answer the end of the stream (VoxEngine-format stops).
        closing_at = clock.now_ms()
        while not self._closed_by_server and not self._finished():
            if clock.now_ms() - closing_at >= self.quiet_ms:
                break
            await clock.sleep_until(clock.now_ms() + FRAME_MS)

    def _finished(self) -> bool:
        """Whether nothing more is expected from the server after the caller's closing messages."""
        return True


class TwilioTestCaller(_Caller):
    """A Twilio Media Streams peer: ``connected``, ``start``, ``media`` every 20 ms, ``dtmf``,
    ``stop``; plays what the server sends and echoes its marks like Twilio.

    ``audio``: the caller's μ-law 8 kHz audio. ``dtmf``: (time in ms from the first frame, digit).
    After the audio, the caller lingers until its playback is idle and the server has been quiet
    for ``quiet_ms`` — or, if given, until ``done_when(caller)`` is true (e.g. ``lambda c:
    len(c.received) == n and c.fully_acknowledged``) — at most ``linger_ms``, then sends ``stop``
    and closes.

    Results: ``received`` (all outbound audio of the server), ``playback.played`` (what was
    "heard"), ``marks_received``, ``marks_echoed``, ``clears``, ``events`` (every server message's
    event in order), ``errors``, ``close_code``.
    """

    def __init__(
        self,
        url: str,
        audio: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        stream_sid: str | None = None,
        call_sid: str | None = None,
        account_sid: str = "AC" + "0" * 32,
        dtmf: Sequence[tuple[int, str]] = (),
        clock: CallerClock | None = None,
        mark_delay_ms: float = 20.0,
        mark_jitter_ms: float = 10.0,
        seed: int = 0,
        linger_ms: float = 3000.0,
        quiet_ms: float = 300.0,
        done_when: Callable[[TwilioTestCaller], bool] | None = None,
        send_connected: bool = True,
    ) -> None:
        super().__init__(
            url, headers=headers, clock=clock, linger_ms=linger_ms, quiet_ms=quiet_ms, done_when=done_when
        )
        self.audio = audio
        rng = random.Random(seed)
        self.stream_sid = stream_sid or "MZ" + "".join(rng.choice("0123456789abcdef") for _ in range(32))
        self.call_sid = call_sid or "CA" + "".join(rng.choice("0123456789abcdef") for _ in range(32))
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self.dtmf = sorted(dtmf)
        self.send_connected = send_connected
        self.playback = PlaybackModel(
            8, mark_delay_ms=mark_delay_ms, mark_jitter_ms=mark_jitter_ms, seed=seed
        )
        self.marks_received: list[str] = []
        self.marks_echoed: list[str] = []
        self.events: list[str] = []  # every server message's event, in arrival order
        self.clears = 0
        self.media_received = 0
        self._media_since_mark = False
        self._sequence = 0
        self._pending_echoes: list[str] = []
        self._dtmf_next = 0

    @property
    def received(self) -> bytearray:
        return self.playback.received

    @property
    def _audio_ticks(self) -> int:
        return -(-len(self.audio) // 160)

    def _next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def _opening(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.send_connected:
            messages.append({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        messages.append(
            {
                "event": "start",
                "sequenceNumber": self._next_sequence(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": self.custom_parameters,
                },
                "streamSid": self.stream_sid,
            }
        )
        return messages

    def _frames(self, index: int, now_ms: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        elapsed = index * FRAME_MS
        while self._dtmf_next < len(self.dtmf) and self.dtmf[self._dtmf_next][0] <= elapsed:
            digit = self.dtmf[self._dtmf_next][1]
            self._dtmf_next += 1
            messages.append(
                {
                    "event": "dtmf",
                    "streamSid": self.stream_sid,
                    "sequenceNumber": self._next_sequence(),
                    "dtmf": {"track": "inbound_track", "digit": digit},
                }
            )
        chunk = self.audio[index * 160 : (index + 1) * 160]
        if chunk:
            messages.append(
                {
                    "event": "media",
                    "sequenceNumber": self._next_sequence(),
                    "media": {
                        "track": "inbound",
                        "chunk": str(index + 1),
                        "timestamp": str(elapsed),
                        "payload": _b64(chunk),
                    },
                    "streamSid": self.stream_sid,
                }
            )
        return messages

    def _closing(self) -> list[dict[str, Any]]:
        return [
            {
                "event": "stop",
                "sequenceNumber": self._next_sequence(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        ]

    def _tick(self, now_ms: float) -> list[dict[str, Any]]:
        names = self._pending_echoes + self.playback.advance(now_ms)
        self._pending_echoes = []
        self.marks_echoed.extend(names)
        return [
            {
                "event": "mark",
                "sequenceNumber": self._next_sequence(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
            for name in names
        ]

    def _idle(self) -> bool:
        return self.playback.idle and not self._pending_echoes

    @property
    def fully_acknowledged(self) -> bool:
        """All audio received so far has played, and a mark after it has been echoed."""
        return self._idle() and not self._media_since_mark

    def _on_message(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        self.events.append(str(event))
        if message.get("streamSid") != self.stream_sid:
            self._error(f"{event}: streamSid {message.get('streamSid')!r} is not {self.stream_sid!r}")
        now = self.clock.now_ms()
        if event == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                self._error("media without media.payload")
                return
            try:
                data = binascii.a2b_base64(payload, strict_mode=True)
            except binascii.Error as exc:
                self._error(f"media.payload is not base64: {exc}")
                return
            self.media_received += 1
            self._media_since_mark = True
            self.playback.media(data, now)
        elif event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                self._error("mark without mark.name")
                return
            self.marks_received.append(name)
            self._media_since_mark = False
            self.playback.mark(name, now)
        elif event == "clear":
            self.clears += 1
            # Twilio empties its buffer and sends back the marks that were waiting.
            self._pending_echoes.extend(self.playback.clear(now))
        else:
            self._error(f"unexpected event from server: {event!r}")


@dataclass
class VoxEngineStreamSpec:
    """One tagged stream a VoxEngine-format caller sends: ``encoding`` is a WebSocketAudioEncoding
    name (PCM8, PCM16, ULAW, ALAW) and ``audio`` is in that encoding."""

    tag: str | None
    audio: bytes
    encoding: str = "ULAW"
    custom_parameters: dict[str, str] | None = None


_RATES = {"PCM8": (8000, 2), "PCM16": (16000, 2), "ULAW": (8000, 1), "ALAW": (8000, 1)}


@dataclass
class _PeerStream:
    """What the server sends on one tag, as the caller tracks it."""

    encoding: str
    playback: PlaybackModel
    start: dict[str, Any]
    chunk: int = 0
    stopped: bool = False


class VoxEngineTestCaller(_Caller):
    """A VoxEngine-format peer with any number of tagged streams on one socket.

    Sends ``start`` (``customParameters`` as a JSON string, as VoxEngine does), ``media`` every
    20 ms per stream (``chunk`` from 1, ``timestamp`` in samples) and, after lingering, ``stop``
    per stream. Tracks the server's streams per tag: ``server_streams[tag]`` has the start message
    and a playback model (``received``, ``played``); ``clears[tag]`` counts clears honoured.
    """

    def __init__(
        self,
        url: str,
        streams: Sequence[VoxEngineStreamSpec],
        *,
        headers: Mapping[str, str] | None = None,
        clock: CallerClock | None = None,
        linger_ms: float = 3000.0,
        quiet_ms: float = 300.0,
        done_when: Callable[[VoxEngineTestCaller], bool] | None = None,
        stop_streams: bool = True,
    ) -> None:
        super().__init__(
            url, headers=headers, clock=clock, linger_ms=linger_ms, quiet_ms=quiet_ms, done_when=done_when
        )
        tags = [spec.tag for spec in streams]
        if len(set(tags)) != len(tags):
            raise ValueError(f"streams: tags must be unique, got {tags!r}")
        for spec in streams:
            if spec.encoding not in _RATES:
                raise ValueError(f"streams: encoding {spec.encoding!r} is not one of {sorted(_RATES)}")
        self.streams = list(streams)
        self.stop_streams = stop_streams
        self.server_streams: dict[str | None, _PeerStream] = {}
        self.clears: dict[str | None, int] = {}
        self._sequence = 0
        self._server_sequence = 0

    def received(self, tag: str | None) -> bytes:
        """All audio the server sent on ``tag`` (empty if it never started that tag)."""
        stream = self.server_streams.get(tag)
        return bytes(stream.playback.received) if stream is not None else b""

    def _frame_bytes(self, encoding: str) -> int:
        rate, width = _RATES[encoding]
        return rate // 1000 * width * FRAME_MS

    @property
    def _audio_ticks(self) -> int:
        return max((-(-len(s.audio) // self._frame_bytes(s.encoding)) for s in self.streams), default=0)

    def _message(self, event: str, body: dict[str, Any]) -> dict[str, Any]:
        message = {"event": event, "sequenceNumber": self._sequence, event: body}
        self._sequence += 1
        return message

    def _opening(self) -> list[dict[str, Any]]:
        messages = []
        for spec in self.streams:
            rate, _ = _RATES[spec.encoding]
            body: dict[str, Any] = {"mediaFormat": {"encoding": spec.encoding, "sampleRate": rate}}
            if spec.tag is not None:
                body["tag"] = spec.tag
            if spec.custom_parameters is not None:
                body["customParameters"] = json.dumps(spec.custom_parameters)
            messages.append(self._message("start", body))
        return messages

    def _frames(self, index: int, now_ms: float) -> list[dict[str, Any]]:
        messages = []
        for spec in self.streams:
            size = self._frame_bytes(spec.encoding)
            chunk = spec.audio[index * size : (index + 1) * size]
            if not chunk:
                continue
            body: dict[str, Any] = {
                "chunk": index + 1,
                "timestamp": index * size // _RATES[spec.encoding][1],
                "payload": _b64(chunk),
            }
            if spec.tag is not None:
                body["tag"] = spec.tag
            messages.append(self._message("media", body))
        return messages

    def _closing(self) -> list[dict[str, Any]]:
        if not self.stop_streams:
            return []
        return [
            self._message("stop", {"tag": spec.tag} if spec.tag is not None else {}) for spec in self.streams
        ]

    def _finished(self) -> bool:
        return all(s.stopped for s in self.server_streams.values())

    def _tick(self, now_ms: float) -> list[dict[str, Any]]:
        for stream in self.server_streams.values():
            stream.playback.advance(now_ms)
        return []

    def _idle(self) -> bool:
        return all(s.playback.idle for s in self.server_streams.values())

    def _on_message(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        sequence = message.get("sequenceNumber")
        if sequence != self._server_sequence:
            self._error(f"{event}: sequenceNumber {sequence!r}, expected {self._server_sequence}")
        self._server_sequence = (sequence if isinstance(sequence, int) else self._server_sequence) + 1
        body = message.get(event) if isinstance(event, str) else None
        if not isinstance(body, dict):
            self._error(f"{event!r} message without its {event!r} object")
            return
        tag = body.get("tag")
        now = self.clock.now_ms()
        stream = self.server_streams.get(tag)
        if event == "start":
            if stream is not None and not stream.stopped:
                self._error(f"start for tag {tag!r} that is already running")
            fmt = body.get("mediaFormat")
            encoding = fmt.get("encoding") if isinstance(fmt, dict) else None
            if not isinstance(fmt, dict) or encoding not in _RATES:
                self._error(f"start for tag {tag!r}: bad mediaFormat {fmt!r}")
                return
            rate, width = _RATES[encoding]
            if fmt.get("sampleRate", rate) != rate:
                self._error(f"start for tag {tag!r}: sampleRate {fmt.get('sampleRate')} for {encoding}")
            previous = stream.playback if stream is not None else None
            playback = previous or PlaybackModel(rate // 1000 * width)
            self.server_streams[tag] = _PeerStream(encoding, playback, body)
        elif event == "media":
            if stream is None or stream.stopped:
                self._error(f"media for tag {tag!r} before start")
                return
            stream.chunk += 1
            if body.get("chunk") != stream.chunk:
                self._error(f"media for tag {tag!r}: chunk {body.get('chunk')!r}, expected {stream.chunk}")
            payload = body.get("payload")
            try:
                data = binascii.a2b_base64(payload, strict_mode=True) if isinstance(payload, str) else None
            except binascii.Error:
                data = None
            if data is None:
                self._error(f"media for tag {tag!r}: payload is not base64")
                return
            stream.playback.media(data, now)
        elif event == "stop":
            if stream is None or stream.stopped:
                self._error(f"stop for tag {tag!r} that has not started")
                return
            stream.stopped = True
        elif event == "clear":
            self.clears[tag] = self.clears.get(tag, 0) + 1
            if stream is not None:
                stream.playback.clear(now)
        else:
            self._error(f"unexpected event from server: {event!r}")
