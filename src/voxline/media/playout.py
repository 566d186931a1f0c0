"""Paced playout of model audio, with the bookkeeping that makes barge-in truncation exact.

``PlayoutBuffer`` is sans-I/O: model audio goes in with ``push(data, item_id)``, 20 ms frames come
out with ``pop_frame()``, ``clear()`` drops everything unplayed at once and says, per assistant item
that the clear cut, how much of it the caller really heard. ``Playout`` hands one frame every 20 ms
to a ``deliver`` callable (normally ``MediaUnit._deliver``): the first frame of a talkspurt at once,
the rest on ticks of a ``MediaClock`` in that moment's phase.

How "heard" is computed (the truncation algorithm)
--------------------------------------------------
Every queued byte has a position on the buffer's *output timeline*: the stream the sinks get, in which
frame ``k`` starts at ``k * 20 ms`` (``Frame.timestamp_ms``). ``push`` records, per run of contiguous
audio of one item, a segment: its output span ``[start, end)`` and the offset of its first byte inside
the item's own audio (the item's timeline, which is what ``conversation.item.truncate``'s
``audio_end_ms`` counts). Padding added to a final partial frame and overflow drops are why the two
timelines differ, and why the segment keeps both.

The *heard position* ``P`` on the output timeline is the position a sink acknowledged
(``acknowledge``; a source asks its sinks, ``MediaUnit.playback_position``, when it clears) when
sinks report playback, otherwise the
emitted (paced) position, which is exact to the frame for a sink that plays what it gets at once.
On ``clear()`` an item is reported iff some of its queued or in-flight audio lies after ``P`` (the
clear cut it), or it is still streaming: the most recently pushed item counts as streaming until
``end_item`` says the model sent all of its audio or a later item starts, since the model has more
of it than was received (``ClearedItem.still_streaming``). ``heard_ms`` is the item offset reached at
``P`` -- the end of its last segment that starts before ``P``, or ``item_offset + (P - start)`` inside
the segment playing at ``P`` -- clamped to ``[0, received_ms]``. So with item A (700 ms) followed by
item B (500 ms) and ``P`` = 900 ms, A is fully heard and not reported, and B is reported with
``heard_ms`` = 200. An item cut before a single sample of it played is reported with ``heard_ms`` = 0:
the caller decides. ``ClearedItem.interrupted`` is the rule for truncating: something was heard, and
not all of the item. Items fully played (and ended) and audio pushed without an ``item_id`` are never
reported. Audio that arrives for a reported item after the clear is discarded (``discarded_ms``): the
model may still be streaming the response that the caller interrupted.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voxline.audio import FRAME_MS, AudioFormat, Frame
from voxline.audio.tone import silence
from voxline.telemetry import TELEMETRY

from .clock import ClockSubscription, MediaClock

__all__ = ["ClearedItem", "Playout", "PlayoutBuffer"]

log = logging.getLogger("voxline.media.playout")

_ItemKey = tuple[str, int]
# Remember this many cut items, to discard their late audio.
_CUT_MEMORY = 256


@dataclass(frozen=True, slots=True)
class ClearedItem:
    """One item whose audio a ``clear()`` cut: the caller heard ``heard_ms`` of ``received_ms``.

    ``still_streaming`` is True for the item whose audio was still arriving (no ``end_item`` for it,
    no later item started): the model has more of it than ``received_ms``, so it was interrupted even
    if everything received so far was heard.
    """

    item_id: str
    content_index: int
    heard_ms: int
    received_ms: int
    still_streaming: bool = False

    @property
    def interrupted(self) -> bool:
        """The caller heard part of the item, not all of it: truncate it at ``heard_ms``."""
        return self.heard_ms > 0 and (self.heard_ms < self.received_ms or self.still_streaming)


class _Segment:
    """A run of one item's audio on the output timeline (byte positions)."""

    __slots__ = ("end", "item_offset", "key", "start")

    def __init__(self, key: _ItemKey | None, start: int, end: int, item_offset: int) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.item_offset = item_offset


class _ItemState:
    __slots__ = ("heard_floor", "received")

    def __init__(self) -> None:
        self.received = 0  # bytes pushed for the item, dropped ones included (the item's timeline)
        self.heard_floor = 0  # item offset reached by its segments already fully heard and forgotten


class PlayoutBuffer:
    """A bounded queue of one stream's audio, popped in 20 ms frames, with per-item heard positions.

    ``max_ms`` bounds what is queued (VoxEngine keeps 10 s); audio beyond it is dropped and counted in
    ``dropped_ms``. ``acknowledged=True`` says that a sink reports what it really played, so heard
    positions come from ``acknowledge`` only (the first ``acknowledge`` call also switches this on).
    """

    def __init__(self, fmt: AudioFormat, max_ms: int = 10_000, *, acknowledged: bool = False) -> None:
        if not isinstance(fmt, AudioFormat):
            raise TypeError(f"fmt must be an AudioFormat, not {type(fmt).__name__}")
        if isinstance(max_ms, bool) or not isinstance(max_ms, int) or max_ms < FRAME_MS:
            raise ValueError(f"max_ms must be an int >= {FRAME_MS}, got {max_ms!r}")
        self.format = fmt
        self.max_ms = max_ms
        self.acknowledged = acknowledged
        self._bpm = fmt.bytes_per_ms
        self._frame_bytes = fmt.frame_bytes
        self._sample_bytes = fmt.bytes_per_sample * fmt.channels
        self._max_bytes = max_ms * self._bpm
        self._silence_frame = silence(FRAME_MS, fmt)
        self._chunks: deque[bytes] = deque()
        self._head_offset = 0
        self._emitted = 0  # output position of the next frame
        self._tail = 0  # output position after the last queued byte
        self._acked = 0
        self._segments: deque[_Segment] = deque()
        self._items: dict[_ItemKey, _ItemState] = {}
        self._cut: dict[_ItemKey, None] = {}
        self._open: _ItemKey | None = None  # the item whose audio may still be arriving
        self._dropped = 0
        self._discarded = 0
        # Set by a Playout: called when audio arrives, so the playout can start ticking.
        self._wakeup: Callable[[], None] | None = None

    # -- input ----------------------------------------------------------------------------------------

    def push(
        self, data: bytes | bytearray | memoryview, item_id: str | None = None, content_index: int = 0
    ) -> None:
        """Queue audio (in ``format``) of assistant item ``item_id`` / ``content_index``."""
        if not isinstance(data, bytes):
            if not isinstance(data, bytearray | memoryview):
                raise TypeError(f"data must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if item_id is not None and not isinstance(item_id, str):
            raise TypeError(f"item_id must be a string or None, not {type(item_id).__name__}")
        n = len(data)
        if n % self._sample_bytes:
            raise ValueError(f"data: {n} bytes is not a whole number of {self.format} samples")
        if not n:
            return
        key = (item_id, content_index) if item_id is not None else None
        item_offset = 0
        if key is not None:
            if key in self._cut:
                self._discarded += n
                return
            state = self._items.get(key)
            if state is None:
                state = self._items[key] = _ItemState()
            # Items play one after another: when a new one starts, the previous one is complete.
            self._open = key
            item_offset = state.received
            state.received += n
        room = self._max_bytes - (self._tail - self._emitted)
        accepted = n if n <= room else max(room, 0)
        if accepted < n:
            self._dropped += n - accepted
            TELEMETRY.audio_dropped((n - accepted) / self._bpm)
            if not accepted:
                return
            data = data[:accepted]
        start = self._tail
        last = self._segments[-1] if self._segments else None
        if (
            last is not None
            and last.key == key
            and last.end == start
            and last.item_offset + (last.end - last.start) == item_offset
        ):
            last.end += accepted
        else:
            self._segments.append(_Segment(key, start, start + accepted, item_offset))
        self._chunks.append(data)
        self._tail = start + accepted
        if self._wakeup is not None:
            self._wakeup()

    def end_item(self, item_id: str, content_index: int = 0) -> None:
        """The model has sent all of the item's audio (``response.output_audio.done``)."""
        if self._open == (item_id, content_index):
            self._open = None

    # -- output ---------------------------------------------------------------------------------------

    def pop_frame(self, frames: int = 1, *, pad: bool = True) -> Frame | None:
        """The next 20 ms frame (a final partial frame padded with silence), or None when empty.

        ``frames`` > 1 takes up to that many frames as one ``Frame``: the first as above, the rest
        only while whole frames are queued (audio still arriving is never padded early). With
        ``pad=False`` a partial frame stays queued (None): it is not due yet, more may follow.
        """
        available = self._tail - self._emitted
        if available <= 0 or (not pad and available < self._frame_bytes):
            return None
        fb = self._frame_bytes
        take = fb * min(frames, available // fb) if available >= fb else fb
        chunks = self._chunks
        head = chunks[0]
        offset = self._head_offset
        if len(head) - offset >= take:
            if offset == 0 and len(head) == take:
                data = head  # a push of exactly this size goes out as the very same bytes object
                chunks.popleft()
            else:
                data = head[offset : offset + take]
                offset += take
                if offset == len(head):
                    chunks.popleft()
                    offset = 0
            self._head_offset = offset
        else:
            data = self._gather(min(take, available))
            if len(data) < fb:
                # The stream ran dry mid-frame: pad, and move the tail past the padding so that
                # audio pushed later starts on the next frame.
                data += self._silence_frame[: fb - len(data)]
                self._tail = self._emitted + fb
        frame = Frame(data, self.format, self._emitted // self._bpm)
        self._emitted += len(data)
        if not self.acknowledged:
            self._forget_heard(self._emitted)
        return frame

    def _gather(self, n: int) -> bytes:
        parts = []
        chunks = self._chunks
        offset = self._head_offset
        while n and chunks:
            head = chunks[0]
            take = min(n, len(head) - offset)
            parts.append(head[offset : offset + take])
            n -= take
            offset += take
            if offset == len(head):
                chunks.popleft()
                offset = 0
        self._head_offset = offset
        return b"".join(parts)

    def _forget_heard(self, position: int) -> None:
        """Drop segments heard completely; keep how far their items got."""
        segments = self._segments
        while segments and segments[0].end <= position:
            seg = segments.popleft()
            if seg.key is not None:
                state = self._items.get(seg.key)
                if state is not None:
                    state.heard_floor = seg.item_offset + (seg.end - seg.start)

    # -- playout reports ------------------------------------------------------------------------------

    def acknowledge(self, position_ms: int) -> None:
        """A sink really played the output stream up to ``position_ms`` (monotonic; lower is ignored)."""
        if isinstance(position_ms, bool) or not isinstance(position_ms, int | float):
            raise TypeError(f"position_ms must be a number, not {type(position_ms).__name__}")
        self.acknowledged = True
        # A sink cannot have played what was never emitted.
        position = min(int(position_ms * self._bpm), self._emitted)
        if position > self._acked:
            self._acked = position
            self._forget_heard(position)

    def _heard_position(self) -> int:
        return min(self._acked, self._emitted) if self.acknowledged else self._emitted

    # -- barge-in -------------------------------------------------------------------------------------

    def clear(self) -> list[ClearedItem]:
        """Drop all unplayed audio now; report each item the clear cut, with what was heard of it."""
        position = self._heard_position()
        reached: dict[_ItemKey, int] = {}
        cut: list[_ItemKey] = []
        for seg in self._segments:
            key = seg.key
            if key is None:
                continue
            if seg.start < position:
                offset = seg.item_offset + (min(position, seg.end) - seg.start)
                if offset > reached.get(key, 0):
                    reached[key] = offset
            if seg.end > position and key not in cut:
                cut.append(key)
        open_key = self._open
        if open_key is not None and open_key not in cut:
            cut.append(open_key)  # heard in full so far, but its audio was still arriving
        self._open = None
        bpm = self._bpm
        cleared = []
        for key in cut:
            state = self._items[key]
            heard = min(max(state.heard_floor, reached.get(key, 0)), state.received)
            streaming = key == open_key
            cleared.append(ClearedItem(key[0], key[1], heard // bpm, state.received // bpm, streaming))
            self._cut[key] = None
        while len(self._cut) > _CUT_MEMORY:
            del self._cut[next(iter(self._cut))]
        self._chunks.clear()
        self._head_offset = 0
        self._segments.clear()
        self._tail = self._emitted
        return cleared

    # -- state ----------------------------------------------------------------------------------------

    def received_ms(self, item_id: str, content_index: int = 0) -> int:
        """Milliseconds of audio pushed for the item (0 for an unknown item)."""
        state = self._items.get((item_id, content_index))
        return state.received // self._bpm if state is not None else 0

    @property
    def emitted_ms(self) -> int:
        """Output position of the next frame: audio popped so far, padding included."""
        return self._emitted // self._bpm

    @property
    def acknowledged_ms(self) -> int:
        return self._acked // self._bpm

    @property
    def heard_ms(self) -> int:
        """The heard position on the output timeline (acknowledged, or emitted)."""
        return self._heard_position() // self._bpm

    @property
    def buffered_ms(self) -> int:
        return (self._tail - self._emitted) // self._bpm

    @property
    def dropped_ms(self) -> int:
        """Audio dropped because the buffer held ``max_ms`` already."""
        return self._dropped // self._bpm

    @property
    def discarded_ms(self) -> int:
        """Audio of already cut items that arrived after the clear and was thrown away."""
        return self._discarded // self._bpm


class Playout:
    """Delivers ``buffer`` to ``deliver`` one 20 ms frame (or one ``batch_ms`` batch) at a time,
    paced by ``clock``.

    A talkspurt -- audio arriving while nothing is playing -- starts at once: its first frame is
    delivered from inside ``push``, and the playout ticks on the clock phase of that moment
    (``MediaClock.subscribe(phase_ms=...)``), so every later frame leaves exactly 20 ms after the one
    before it. Model audio is never held back waiting for a shared 20 ms grid. Each frame counts as
    emitted (and, without an acknowledging sink, heard) when it is delivered, as before.

    ``batch_ms`` (a multiple of 20, default 20) is how much audio one delivery may carry, for a sink
    whose far end buffers and plays at its own pace (Twilio's player): after the first batch (at
    once) it ticks on the shared phase-0 grid, not a phase of its own, and gets the next batch on the
    first tick where it holds less than ``batch_ms - 20`` ms beyond the frame playing, so it always
    has most of a batch in hand (at 100 ms: 60-180 ms; an event-loop stall shorter than that is not
    heard) and gets a fifth of the messages. A batch is as long as the whole frames queued allow; a
    partial frame is padded on the last tick before the sink would run dry. At 20 ms each frame
    leaves when the one before it has played, on the talkspurt's own phase.

    It is subscribed to the clock only while it has audio or is inside the 1 s silence window after a
    stream. ``on_started()`` runs before the first frame of a stream that starts after idle;
    ``on_dry()`` runs when the stream first runs out of audio (what was delivered is all there is
    for now: a sink may flush); ``on_ended(duration_ms)`` runs once the stream has been silent for
    ``silence_ms`` (1 s, like
    VoxEngine's ``WebSocketMediaEnded``), with the milliseconds of audio that stream delivered.
    Audio arriving within the silence window continues the same stream.
    """

    def __init__(
        self,
        buffer: PlayoutBuffer,
        clock: MediaClock,
        deliver: Callable[[Frame], None],
        on_started: Callable[[], None] | None = None,
        on_ended: Callable[[int], None] | None = None,
        *,
        on_dry: Callable[[], None] | None = None,
        silence_ms: int = 1000,
    ) -> None:
        if buffer._wakeup is not None:
            raise ValueError("buffer is already driven by another Playout")
        self.buffer = buffer
        self.clock = clock
        self._deliver = deliver
        self._on_started = on_started
        self._on_ended = on_ended
        self._on_dry = on_dry
        self._dry = True  # no audio since the last on_dry
        self.silence_ms = silence_ms
        self.batch_ms = FRAME_MS
        self._subscription: ClockSubscription | None = None
        self._playing = False
        self._stream_ms = 0
        self._audio_end = clock.now_ms()  # when the last delivered frame finishes playing
        self._closed = False
        buffer._wakeup = self._wake
        if buffer._tail > buffer._emitted:
            self._wake()

    @property
    def playing(self) -> bool:
        """True from the first frame of a stream until ``on_ended``."""
        return self._playing

    @property
    def batch_ms(self) -> int:
        return self._batch_frames * FRAME_MS

    @batch_ms.setter
    def batch_ms(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < FRAME_MS or value % FRAME_MS:
            raise ValueError(f"batch_ms must be a positive multiple of {FRAME_MS}, got {value!r}")
        self._batch_frames = value // FRAME_MS
        self._lead_ms = value - FRAME_MS

    def push(self, data: bytes, item_id: str | None = None, content_index: int = 0) -> None:
        self.buffer.push(data, item_id, content_index)

    def end_item(self, item_id: str, content_index: int = 0) -> None:
        self.buffer.end_item(item_id, content_index)

    def clear(self) -> list[ClearedItem]:
        """``buffer.clear()``: nothing of the cleared audio is delivered after this. The sinks drop
        what they hold too (``MediaUnit.clear_buffer``), so audio pushed next starts at once."""
        self._audio_end = min(self._audio_end, self.clock.now_ms())
        if self._subscription is not None:
            self._subscription.resume_ms = 0  # audio pushed next may go out on the next tick
        return self.buffer.clear()

    def _wake(self) -> None:
        """Audio arrived. If the previous frame has finished playing, a talkspurt starts now."""
        if self._closed:
            return
        self._dry = False
        now = self.clock.media_time_ms()
        if self._subscription is not None and now < self._audio_end:
            return  # a frame is playing: the next tick delivers in time
        # A batch sink buffers ahead (Twilio's player), so after the first batch it needs no phase of
        # its own: the shared grid's ticks serve it, and the clock keeps one timer for all of them.
        phase = now % self.clock.tick_ms if self._batch_frames == 1 else 0
        subscription = self._subscription
        if subscription is None or subscription.phase_ms != phase:
            if subscription is not None:
                self.clock.unsubscribe(subscription)
            self._subscription = self.clock.subscribe(self._on_tick, phase_ms=phase)
        self._on_tick(now)

    def _idle(self) -> None:
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None

    def _on_tick(self, tick_ms: int) -> None:
        if tick_ms < self._audio_end - self._lead_ms:
            return  # the sink holds enough: the frame (or batch) delivered before is still playing
        # While the sink still holds audio past the next tick, a partial frame waits: more may arrive.
        frame = self.buffer.pop_frame(self._batch_frames, pad=tick_ms + FRAME_MS > self._audio_end)
        if frame is not None:
            if not self._playing:
                self._playing = True
                self._stream_ms = 0
                if self._on_started is not None:
                    self._call(self._on_started)
            duration = len(frame.data) // self.buffer._frame_bytes * FRAME_MS
            self._stream_ms += duration
            self._audio_end = max(self._audio_end, tick_ms) + duration  # after what the sink holds
            if self._subscription is not None:
                # No tick has anything to do before the sink runs low: skip them (4 of 5 at 100 ms).
                self._subscription.resume_ms = self._audio_end - self._lead_ms
            try:
                self._deliver(frame)
            except Exception:
                log.exception("playout deliver %r raised", self._deliver)
            buffer = self.buffer
            if buffer._tail <= buffer._emitted and not self._dry:
                self._dry = True  # all delivered: the sinks may flush
                if self._on_dry is not None:
                    self._call(self._on_dry)
            return
        if not self._playing:
            self._idle()
        elif tick_ms >= self._audio_end + self.silence_ms:
            self._playing = False
            self._idle()
            if self._on_ended is not None:
                self._call(self._on_ended, self._stream_ms)

    @staticmethod
    def _call(callback: Callable[..., None], *args: int) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("playout callback %r raised", callback)

    def close(self) -> None:
        """Stop ticking and release the buffer (no ``on_ended`` is sent)."""
        self._closed = True
        self._idle()
        if self.buffer._wakeup == self._wake:
            self.buffer._wakeup = None
