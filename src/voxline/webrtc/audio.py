"""The audio of one WebRTC call, sans-I/O: Opus's 48 kHz PCM to and from the model's 24 kHz.

Each direction is resampled once, by one streaming ``Resampler`` that lives as long as the call
(its state carries over from frame to frame, so frame edges leave no clicks; it is reset only at a
barge-in, when the audio it holds was cleared anyway).

- ``InboundAudio``: decoded frames of the browser's microphone (48 kHz, mono or interleaved
  stereo) in, 20 ms ``Frame``s of 24 kHz PCM16 out, on a timeline of their own (0, 20, 40, ...).
- ``OutboundAudio``: the call's model audio (24 kHz, ``capture(data, end_ms)``, paced by the
  call's playout on the shared media clock) in, 20 ms frames of 48 kHz PCM16 out, one per tick of
  that clock (silence when there is nothing to say: an RTP stream never pauses). A talkspurt's
  first frame leaves at once and the ticks then follow its phase, as the RTP sender does
  (docs/media.md "One pacer"). A frame is cut from the audio only when the I/O layer's track gives
  it to aiortc's sender (``take()``): ``played_ms`` is where the audio handed over ends on the
  source's timeline, the position barge-in truncation uses.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from ..audio import FRAME_MS, PCM16_24K, AudioFormat, Frame
from ..audio.resample import Resampler
from ..media.clock import ClockSubscription, MediaClock

__all__ = ["OPUS_RATE", "OPUS_SAMPLES", "InboundAudio", "OutboundAudio"]

OPUS_RATE = 48000
OPUS_SAMPLES = OPUS_RATE * FRAME_MS // 1000  # 960 samples a frame
_OPUS_FRAME_BYTES = OPUS_SAMPLES * 2
_SILENCE = bytes(_OPUS_FRAME_BYTES)
_BYTES_PER_MS = _OPUS_FRAME_BYTES // FRAME_MS


def to_mono(data: bytes, channels: int) -> bytes:
    """Interleaved PCM16 of ``channels`` channels as mono (their mean)."""
    if channels == 1:
        return data
    if channels < 1:
        raise ValueError(f"channels must be >= 1, not {channels!r}")
    samples = np.frombuffer(data, dtype="<i2")
    usable = samples.size - samples.size % channels
    mixed = samples[:usable].reshape(-1, channels).astype(np.int32).sum(axis=1) // channels
    out: bytes = mixed.astype("<i2").tobytes()
    return out


class InboundAudio:
    """The caller's audio: 48 kHz frames in, 20 ms frames of ``media_format`` out to ``deliver``."""

    def __init__(self, deliver: Callable[[Frame], None], media_format: AudioFormat = PCM16_24K) -> None:
        self.media_format = media_format
        self._deliver = deliver
        self._resampler = Resampler(OPUS_RATE, media_format.rate)
        self._frame_bytes = media_format.frame_bytes
        self._pending = bytearray()
        self._position_ms = 0
        self.frames_in = 0

    def push(self, data: bytes, channels: int = 1) -> None:
        """One decoded frame (PCM16 at 48 kHz, interleaved when ``channels`` > 1)."""
        self.frames_in += 1
        self._pending += self._resampler.process(to_mono(data, channels))
        fb = self._frame_bytes
        while len(self._pending) >= fb:
            chunk = bytes(self._pending[:fb])
            del self._pending[:fb]
            frame = Frame(chunk, self.media_format, self._position_ms)
            self._position_ms += FRAME_MS
            self._deliver(frame)


class OutboundAudio:
    """Model audio to the outgoing track on the shared clock; see the module docstring.

    Each clock tick makes one frame due and calls ``notify()``; the track takes it with ``take()``
    when aiortc's sender asks (``recv``), so a frame is only ever cut from the audio when it is
    handed over: what was handed is exactly what ``played_ms`` counts. If the sender falls behind,
    due frames are capped (``MAX_DUE``) -- time is skipped, never audio. Before the sender first
    asks (the connection is still being set up) the audio waits, so the caller hears the greeting
    from its first word; at most ``max_ms`` waits, the rest is dropped (``dropped_ms``).
    """

    MAX_DUE = 3

    def __init__(
        self,
        clock: MediaClock,
        notify: Callable[[], None],
        media_format: AudioFormat = PCM16_24K,
        *,
        max_ms: int = 10_000,
    ) -> None:
        self.media_format = media_format
        self.clock = clock
        self._notify = notify
        self._resampler = Resampler(media_format.rate, OPUS_RATE)
        self._max_bytes = max_ms * _BYTES_PER_MS
        self._pcm = bytearray()  # 48 kHz audio not yet handed over
        self._cut = 0  # bytes handed from the head of the stream so far
        # (48 kHz stream byte offset where a captured piece ends, its end on the source's timeline)
        self._marks: deque[tuple[int, int]] = deque()
        self._total = 0  # bytes appended to the stream so far
        self._subscription: ClockSubscription | None = None
        self._started = False
        self._idle = True
        self._due = 0
        self._due_at: int | None = None  # the clock instant that last made a frame due
        self._played: int | None = None
        self._closed = False
        self.frames_out = 0
        self.silence_out = 0
        self.dropped_ms = 0
        #: Called when a talkspurt starts (its first frame is about to leave).
        self.on_talkspurt: Callable[[], None] | None = None
        self._prime()

    def _prime(self) -> None:
        """A fresh resampler holds back its delay: fed that much silence first, the first 20 ms
        captured make a whole 20 ms frame, so a talkspurt's first frame can leave at once."""
        self._resampler.reset()
        lead = math.ceil(self._resampler.delay_ms * self.media_format.rate / 1000)
        self._pcm += self._resampler.process(bytes(2 * lead))
        self._total = lead * 2 * OPUS_RATE // self.media_format.rate

    def start(self) -> None:
        """aiortc's sender asks for frames: start ticking (silence until audio comes)."""
        if self._started or self._closed:
            return
        self._started = True
        if self._pcm:
            self._talkspurt()
        else:
            now = self.clock.media_time_ms()
            self._subscribe(now % self.clock.tick_ms)
            self._due, self._due_at = 1, now

    def close(self) -> None:
        self._closed = True
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None

    # -- what the leg calls --------------------------------------------------------------------------

    def capture(self, data: bytes, end_ms: int) -> None:
        """Model audio (``media_format``) ending at ``end_ms`` on its source's timeline."""
        if self._closed:
            return
        pcm = self._resampler.process(data)
        if len(self._pcm) + len(pcm) > self._max_bytes:
            self.dropped_ms += len(pcm) // _BYTES_PER_MS
            return
        self._pcm += pcm
        # The resampler's output is time-aligned with its input (it holds back its delay), so this
        # piece ends where its input ends, counted at 48 kHz.
        self._total += len(data) * OPUS_RATE // self.media_format.rate
        self._marks.append((self._total, end_ms))
        if self._started and self._idle and len(self._pcm) >= _OPUS_FRAME_BYTES:
            self._talkspurt()

    def clear(self) -> None:
        """Barge-in: nothing captured so far leaves after this."""
        self._pcm.clear()
        self._marks.clear()
        self._cut = 0
        self._prime()
        self._idle = True

    @property
    def played_ms(self) -> int | None:
        """Where the audio handed to the sender so far ends, on the source's timeline (None: none yet)."""
        return self._played

    @property
    def buffered_ms(self) -> int:
        return len(self._pcm) // _BYTES_PER_MS

    @property
    def due(self) -> int:
        return self._due

    # -- what the track calls ------------------------------------------------------------------------

    def take(self) -> tuple[bytes, int | None]:
        """The frame due now (48 kHz PCM16) and where it ends on the source's timeline (None:
        silence); handed over as it is returned."""
        self._due = max(self._due - 1, 0)
        if len(self._pcm) >= _OPUS_FRAME_BYTES or (self._pcm and not self._idle and self._marks):
            # A final partial frame (the stream ran dry mid-frame) goes out padded: nothing is held.
            n = min(len(self._pcm), _OPUS_FRAME_BYTES)
            data = bytes(self._pcm[:n]) + _SILENCE[n:]
            del self._pcm[:n]
            self._cut += n
            end = self._position(self._cut)
            self._idle = False
            self.frames_out += 1
            if end is not None and (self._played is None or end > self._played):
                self._played = end
            return data, end
        self._idle = True
        self.silence_out += 1
        return _SILENCE, None

    # -- the clock -------------------------------------------------------------------------------------

    def _subscribe(self, phase: int) -> None:
        if self._subscription is not None:
            if self._subscription.phase_ms == phase:
                return
            self.clock.unsubscribe(self._subscription)
        self._subscription = self.clock.subscribe(self._tick, phase_ms=phase, order=1)

    def _talkspurt(self) -> None:
        # Its first frame leaves now and the ticks move to this phase (the playout's).
        now = self.clock.media_time_ms()
        self._subscribe(now % self.clock.tick_ms)
        self._idle = False
        if self.on_talkspurt is not None:
            self.on_talkspurt()
        self._make_due(now)

    def _tick(self, tick_ms: int) -> None:
        self._make_due(tick_ms)

    def _make_due(self, now: int) -> None:
        # One frame per instant: a talkspurt the playout starts inside a tick of this phase (the
        # playout ticks first) and this tick would otherwise make two frames due -- 40 ms of media
        # every 20 ms, each second frame a silence that ends the talkspurt, so the next frame starts
        # another. A frame already handed (as silence) at this instant does not count.
        if now == self._due_at and self._due:
            return
        self._due_at = now
        self._due = min(self._due + 1, self.MAX_DUE)
        self._notify()

    def _position(self, offset: int) -> int | None:
        """The source position at stream byte ``offset``: the end of the captured piece holding it,
        less what of that piece lies after it."""
        marks = self._marks
        last: tuple[int, int] | None = None
        while marks and marks[0][0] <= offset:
            last = marks.popleft()
            if last[0] == offset:
                return last[1]
        if not marks:
            return None if last is None else last[1]
        mark_end, mark_ms = marks[0]
        return mark_ms - (mark_end - offset) // _BYTES_PER_MS
