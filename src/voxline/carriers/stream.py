"""``CarrierStream``: one accepted carrier media stream, as the runtime sees it.

The endpoint hands every accepted stream to the runtime's ``on_stream(stream)`` coroutine. The
stream delivers the caller's audio as 20 ms ``Frame``s (``on_audio`` callback, or ``async for
frame in stream``), DTMF digits (``on_dtmf``), and takes outbound audio with ``send_audio``.

Outbound pacing: the carrier buffers and plays what it receives in real time (Twilio queues
without limit, VoxEngine up to 10 s), so ``send_audio`` writes at once and never paces. The
runtime's playout already delivers 20 ms per tick, which keeps those buffers short and ``clear()``
effective.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from ..audio import FRAME_MS, AudioFormat, Frame
from ._base import Reframer, Stats
from .twilio import Heard

__all__ = ["AckCallback", "CarrierKind", "CarrierStream", "Heard", "OnStream"]

log = logging.getLogger("voxline.carriers")

CarrierKind = Literal["twilio", "voxengine"]
AckCallback = Callable[[int, "int | None"], None]
OnStream = Callable[["CarrierStream"], Awaitable[None]]

_QUEUE_FRAMES = 500  # 10 s of 20 ms frames for a consumer using ``async for``; older frames are dropped


class CarrierStream:
    """One carrier media stream (a Twilio Media Stream, or one tag of a VoxEngine-format socket).

    Read-only facts: ``kind``, ``stream_id``, ``call_id``, ``account_id``, ``tag``,
    ``custom_parameters``, ``media_format`` (the format of audio in both directions), ``remote``
    (the peer's address).

    Callbacks the runtime sets (all optional, all synchronous, called on the event loop):

    - ``on_audio(frame)``: each inbound 20 ms frame. Frames that arrive before a consumer is set
      (``on_audio`` or ``async for``) are kept (up to 10 s) and handed over when it is.
    - ``on_dtmf(digit)``: a DTMF digit (Twilio only; the VoxEngine format has none).
    - ``on_acknowledged(position_ms, source_ms)``: the carrier confirmed playout up to
      ``position_ms`` of the outbound stream; ``source_ms`` is the ``source_ms`` given with that
      audio to ``send_audio`` (None if none was given).
    """

    kind: CarrierKind
    #: Outbound audio this stream takes per piece from a paced source (see ``Playout.batch_ms``).
    playout_batch_ms = FRAME_MS

    def __init__(
        self,
        *,
        stream_id: str,
        media_format: AudioFormat,
        call_id: str | None = None,
        account_id: str | None = None,
        tag: str | None = None,
        custom_parameters: dict[str, str] | None = None,
        remote: str | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.call_id = call_id
        self.account_id = account_id
        self.tag = tag
        self.custom_parameters: dict[str, str] = dict(custom_parameters or {})
        self.media_format = media_format
        self.remote = remote
        self._on_audio: Callable[[Frame], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.on_acknowledged: AckCallback | None = None
        self.stats = Stats()
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed = asyncio.Event()
        self._reframer = Reframer(media_format)
        self._queue: asyncio.Queue[Frame | None] | None = None
        self._early: deque[Frame] | None = deque(maxlen=_QUEUE_FRAMES)
        self._callback_failed: set[str] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        return f"<{type(self).__name__} {self.kind} {self.stream_id} {self.media_format} {state}>"

    # -- what the runtime calls --------------------------------------------------------------------

    @property
    def on_audio(self) -> Callable[[Frame], None] | None:
        return self._on_audio

    @on_audio.setter
    def on_audio(self, callback: Callable[[Frame], None] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"on_audio must be callable or None, not {type(callback).__name__}")
        self._on_audio = callback
        if callback is not None:
            self._hand_over_early()

    def send_audio(self, data: bytes, *, source_ms: int | None = None) -> None:
        """Queue outbound audio in ``media_format``; written at once, never paced (see module doc).

        ``source_ms``: where this audio ends in the sender's own timeline; acknowledgements covering
        it report it back. After the stream closed, audio is dropped (and counted), not an error:
        a playout may still deliver a frame in the same tick the caller hung up.
        """
        raise NotImplementedError

    def clear(self) -> None:
        """Drop all outbound audio the carrier has not played yet (barge-in)."""
        raise NotImplementedError

    @property
    def sent_ms(self) -> int:
        """Outbound audio written so far, in ms (cleared audio included)."""
        raise NotImplementedError

    @property
    def acknowledged_ms(self) -> int | None:
        """Outbound position (same timeline as ``sent_ms``) the carrier confirmed as played, or None
        when the carrier never reports playout (the VoxEngine format)."""
        raise NotImplementedError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """End the stream (hang up this leg). Idempotent."""
        raise NotImplementedError

    @property
    def closed(self) -> asyncio.Event:
        """Set once the stream has ended, from either side."""
        return self._closed

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def frames(self) -> AsyncIterator[Frame]:
        """Inbound frames until the stream ends (use this or ``on_audio``, not both)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._hand_over_early()
            if self._closed.is_set():
                self._queue.put_nowait(None)
        return self._iterate(self._queue)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self.frames()

    def heard_ms(self) -> Heard | None:
        """What the caller has heard of the outbound stream, or None when the carrier never reports
        playout (the VoxEngine format). ``Heard.estimated`` tells an acknowledged position from one
        estimated between acknowledgements (see ``voxline.carriers.twilio``)."""
        return None

    # -- what the carrier session calls (the socket layer's side of the stream) ----------------------

    async def _iterate(self, queue: asyncio.Queue[Frame | None]) -> AsyncIterator[Frame]:
        while (frame := await queue.get()) is not None:
            yield frame
        queue.put_nowait(None)  # the end stays visible to any later iterator

    def deliver_audio(self, payload: bytes, timestamp_ms: int) -> None:
        """Inbound audio from the carrier, cut into 20 ms frames for ``on_audio`` / ``frames()``."""
        reframer = self._reframer
        if len(payload) == reframer.frame_bytes and not reframer.held:
            # The usual case, ~50 a second per call: one whole frame, nothing held back.
            self.stats["frames_in"] += 1
            self._consume(Frame(payload, self.media_format, timestamp_ms))
            return
        for frame in reframer.push(payload, timestamp_ms):
            self._deliver(frame)

    def _hand_over_early(self) -> None:
        early, self._early = self._early, None
        for frame in early or ():
            self._consume(frame)

    def _deliver(self, frame: Frame) -> None:
        self.stats["frames_in"] += 1
        self._consume(frame)

    def _consume(self, frame: Frame) -> None:
        callback = self._on_audio
        if callback is not None:
            try:
                callback(frame)
            except Exception:
                self._callback_error("on_audio")
            return
        queue = self._queue
        if queue is None:
            if self._early is not None:
                if len(self._early) == _QUEUE_FRAMES:
                    self.stats["frames_dropped"] += 1
                self._early.append(frame)
            return
        if queue.qsize() >= _QUEUE_FRAMES:
            queue.get_nowait()
            self.stats["frames_dropped"] += 1
        queue.put_nowait(frame)

    def deliver_dtmf(self, digit: str) -> None:
        """A DTMF digit from the carrier, for ``on_dtmf``."""
        if self.on_dtmf is not None:
            try:
                self.on_dtmf(digit)
            except Exception:
                self._callback_error("on_dtmf")

    def acknowledge(self, position_ms: int, source_ms: int | None) -> None:
        """The carrier confirmed playout up to ``position_ms``, for ``on_acknowledged``."""
        if self.on_acknowledged is not None:
            try:
                self.on_acknowledged(position_ms, source_ms)
            except Exception:
                self._callback_error("on_acknowledged")

    def _callback_error(self, name: str) -> None:
        # Logged once per callback and stream: a callback failing on every frame must not flood.
        self.stats["callback_errors"] += 1
        if name not in self._callback_failed:
            self._callback_failed.add(name)
            log.exception(
                "%s stream %s: %s raised (logged once; the stream goes on)", self.kind, self.stream_id, name
            )

    def finish(self, code: int | None, reason: str) -> None:
        """The stream ended: flush the last partial frame, end the iterator, set ``closed``."""
        if self._closed.is_set():
            return
        tail = self._reframer.flush()
        if tail is not None:
            self._deliver(tail)
        self.close_code = code
        self.close_reason = reason
        self._closed.set()
        if self._queue is not None:
            self._queue.put_nowait(None)
