"""``LoopbackCall``: a call-like media unit with no network, for tests and examples.

It speaks: the caller's voice (a WAV file or PCM16) leaves it paced on the media clock in its
``media_format`` (PCMU_8K by default, like a G.711 phone call), followed by silence as a real phone
line sends (``send_silence``). It listens: every frame sent to it is kept in ``received`` with the
time it arrived, and "played" like a carrier plays it, into ``played``.

The playout model, which is also the ground truth the truncation tests compare against: frames play
back to back, each starting on the first tick (or arrival) at which it is ready -- arrival +
``playout_delay_ms`` + a random 0..``jitter_ms`` -- and the previous one has finished. When a source
clears (barge-in, ``clear_buffer``) its frames not yet started are dropped and the one playing is cut
at that instant. With ``acknowledge=True`` the call reports playback (``playback_position``): the end
of the last of the source's frames that has finished playing, like a carrier echoing marks.
"""

from __future__ import annotations

import os
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from voxline.audio import FRAME_MS, PCMU_8K, AudioFormat, Frame
from voxline.audio.tone import silence
from voxline.audio.wav import read_wav
from voxline.events import CallEvents
from voxline.eventtarget import Event

from . import FormatAdapter, MediaUnit
from .clock import ClockSubscription, MediaClock
from .player import encode_pcm16, mono_pcm16

__all__ = ["LoopbackCall", "PlayedFrame", "ReceivedFrame"]


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    time_ms: int  # clock time the frame arrived
    frame: Frame
    source: MediaUnit


@dataclass(slots=True)
class PlayedFrame:
    frame: Frame
    source: MediaUnit
    start_ms: int
    played_ms: int  # the whole frame, or less when a clear cut it while playing


class _Pending:
    __slots__ = ("frame", "ready_ms", "source")

    def __init__(self, frame: Frame, source: MediaUnit, ready_ms: int) -> None:
        self.frame = frame
        self.source = source
        self.ready_ms = ready_ms


class LoopbackCall(MediaUnit):
    """A simulated call: ``answer()``, ``hangup()``, caller voice out, what it hears recorded."""

    def __init__(
        self,
        clock: MediaClock,
        *,
        media_format: AudioFormat = PCMU_8K,
        voice: str | os.PathLike[str] | bytes | None = None,
        voice_rate: int | None = None,
        loop: bool = False,
        send_silence: bool = True,
        acknowledge: bool = False,
        playout_delay_ms: int = 0,
        jitter_ms: int = 0,
        seed: int | None = None,
        caller_id: str = "loopback",
    ) -> None:
        super().__init__()
        if not isinstance(media_format, AudioFormat) or media_format.channels != 1:
            raise ValueError(f"media_format must be a mono AudioFormat, got {media_format!r}")
        for name, value in (("playout_delay_ms", playout_delay_ms), ("jitter_ms", jitter_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.clock = clock
        self.media_format = media_format
        self._format = media_format
        self.reports_playback = acknowledge
        self._played_to: dict[MediaUnit, int] = {}  # source -> end of its last frame fully played
        self.playout_delay_ms = playout_delay_ms
        self.jitter_ms = jitter_ms
        self.send_silence = send_silence
        self.loop = loop
        self.caller_id = caller_id
        self._rng = random.Random(seed)
        self._state = "alerting"
        self._subscription: ClockSubscription | None = None
        self._voice = b""
        self._voice_pos = 0
        self._voice_done = True
        self._sent_ms = 0  # timestamp of the next frame the caller sends
        self._silence = silence(FRAME_MS, media_format)
        self.received: list[ReceivedFrame] = []
        self.played: list[PlayedFrame] = []
        self._pending: deque[_Pending] = deque()
        self._playing: PlayedFrame | None = None
        self._playing_end = 0
        if voice is not None:
            self.play(voice, voice_rate, loop=loop)

    def __repr__(self) -> str:
        return f"<LoopbackCall {self.caller_id} {self._state}>"

    # -- call control -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``alerting``, ``connected`` or ``disconnected``."""
        return self._state

    def answer(self) -> None:
        if self._state != "alerting":
            raise RuntimeError(f"cannot answer {self!r}")
        self._state = "connected"
        self._subscription = self.clock.subscribe(self._on_tick)
        self._emit(CallEvents.Connected)

    def hangup(self) -> None:
        """End the call from our side; idempotent."""
        self._disconnect("local")

    def remote_hangup(self) -> None:
        """The simulated caller hangs up."""
        self._disconnect("remote")

    def _disconnect(self, initiator: str) -> None:
        if self._state == "disconnected":
            return
        self._state = "disconnected"
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None
        self._pending.clear()
        self._emit(CallEvents.Disconnected, initiator=initiator)
        self.close_media()

    def close_media(self) -> None:
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None
        super().close_media()

    # -- the caller's voice -------------------------------------------------------------------------

    def play(
        self, voice: str | os.PathLike[str] | bytes, rate: int | None = None, *, loop: bool = False
    ) -> None:
        """Make the caller say ``voice``: a WAV path, or mono PCM16 bytes at ``rate`` (default: the
        call's rate). Replaces what the caller was saying."""
        if isinstance(voice, bytes | bytearray):
            pcm, pcm_rate = bytes(voice), rate or self._format.rate
        else:
            audio = read_wav(voice)
            pcm, pcm_rate = mono_pcm16(audio), audio.rate
        self._voice = encode_pcm16(pcm, pcm_rate, self._format)
        self._voice_pos = 0
        self._voice_done = False
        self.loop = loop

    def _next_voice_frame(self) -> bytes | None:
        if self._voice_done:
            return self._silence if self.send_silence else None
        data = self._voice
        if self._voice_pos >= len(data):
            # The last frame finished playing on the previous tick.
            self._voice_done = True
            self._emit(CallEvents.PlaybackFinished)
            return self._silence if self.send_silence else None
        fb = self._format.frame_bytes
        end = self._voice_pos + fb
        chunk = data[self._voice_pos : end]
        if self.loop:
            while len(chunk) < fb:  # wrap around the end of the voice
                chunk += data[: fb - len(chunk)]
            end %= len(data)
        elif len(chunk) < fb:
            chunk += self._silence[: fb - len(chunk)]
        self._voice_pos = end
        return chunk

    def _on_tick(self, tick_ms: int) -> None:
        self._advance(tick_ms)
        data = self._next_voice_frame()
        if data is not None:
            frame = Frame(data, self._format, self._sent_ms)
            self._sent_ms += FRAME_MS
            self._deliver(frame)

    # -- what the caller hears ----------------------------------------------------------------------

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        if self._state != "connected":
            return
        now = self.clock.now_ms()
        self.received.append(ReceivedFrame(now, frame, source))
        ready = now + self.playout_delay_ms
        if self.jitter_ms:
            ready += self._rng.randint(0, self.jitter_ms)
        self._pending.append(_Pending(frame, source, ready))
        self._advance(now)

    def _advance(self, now: int) -> None:
        """Finish the frame that has played by ``now`` and start the next ones that are ready."""
        while True:
            playing = self._playing
            if playing is not None:
                if self._playing_end > now:
                    return
                self._playing = None
                frame = playing.frame
                self._played_to[playing.source] = frame.timestamp_ms + int(frame.duration_ms)
            if not self._pending or self._pending[0].ready_ms > now:
                return
            pending = self._pending.popleft()
            duration = int(pending.frame.duration_ms)
            start = now  # frames start on ticks (or arrival), after the previous one has ended
            self._playing = PlayedFrame(pending.frame, pending.source, start, duration)
            self._playing_end = start + duration
            self.played.append(self._playing)

    def playback_position(self, source: MediaUnit) -> int | None:
        if not self.reports_playback:
            return None
        self._advance(self.clock.now_ms())
        return self._played_to.get(source)

    def clear_buffer(self, source: MediaUnit) -> None:
        now = self.clock.now_ms()
        self._advance(now)
        self._pending = deque(p for p in self._pending if p.source is not source)
        playing = self._playing
        if playing is not None and playing.source is source:
            playing.played_ms = max(0, now - playing.start_ms)
            self._playing = None
            self._playing_end = now

    def played_ms(self, source: MediaUnit | None = None) -> int:
        """Milliseconds really played so far (of ``source``'s audio, or of everything)."""
        now = self.clock.now_ms()
        total = 0
        for entry in self.played:
            if source is None or entry.source is source:
                total += min(entry.played_ms, max(0, now - entry.start_ms))
        return total

    def heard_audio(self, fmt: AudioFormat | None = None) -> bytes:
        """What was really played, concatenated, converted to ``fmt`` (default: the call's format)."""
        adapter = FormatAdapter(fmt or self._format)
        now = self.clock.now_ms()
        parts = []
        for entry in self.played:
            played = min(entry.played_ms, max(0, now - entry.start_ms))
            data = adapter.convert(entry.frame)
            if played < entry.frame.duration_ms:
                keep = played * adapter.format.bytes_per_ms
                data = data[:keep]
            parts.append(data)
        return b"".join(parts)

    def _emit(self, name: CallEvents, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra={"call": self, **fields}))
