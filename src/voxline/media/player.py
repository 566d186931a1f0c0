"""``Player``: plays a WAV file, a tone or silence as a media unit, paced on the media clock.

The audio is converted once, when its output format is known (mixed to mono, resampled and encoded
with ``voxline.audio``), so each tick only slices the next 20 ms. The output format is the one given,
or else the format of the first sink that has one (a G.711 call gets G.711, no per-frame transcoding
at the call), or else PCM16 at the source's rate. Sinks of other formats convert for themselves.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

import numpy as np

from voxline.audio import FRAME_MS, PCM16_48K, AudioFormat, Frame
from voxline.audio.resample import Resampler
from voxline.audio.tone import silence, tone
from voxline.audio.transcode import Transcoder
from voxline.audio.wav import WavAudio, read_wav
from voxline.eventtarget import Event

from . import MediaUnit
from .clock import ClockSubscription, MediaClock

__all__ = ["Player", "PlayerEvents", "encode_pcm16", "mono_pcm16"]


class PlayerEvents(StrEnum):
    Started = "Player.Started"
    PlaybackFinished = "Player.PlaybackFinished"
    Stopped = "Player.Stopped"


def mono_pcm16(audio: WavAudio) -> bytes:
    """The WAV's audio mixed down to one channel (the mean of the channels)."""
    if audio.channels == 1:
        return audio.pcm
    samples = np.frombuffer(audio.pcm, dtype="<i2").reshape(-1, audio.channels).astype(np.int32)
    mixed: bytes = np.rint(samples.mean(axis=1)).astype("<i2").tobytes()
    return mixed


def encode_pcm16(pcm: bytes, rate: int, fmt: AudioFormat) -> bytes:
    """Mono PCM16 at ``rate`` (any rate) converted to ``fmt`` (mono) as a whole, tail included."""
    if fmt.channels != 1:
        raise ValueError(f"fmt: only mono output is supported, got {fmt}")
    if rate != fmt.rate:
        resampler = Resampler(rate, fmt.rate)
        pcm = resampler.process(pcm) + resampler.flush()
    if fmt.encoding == "pcm16":
        return pcm
    return Transcoder(AudioFormat("pcm16", fmt.rate), fmt).process(pcm)


def _default_format(rate: int) -> AudioFormat:
    if rate % 1000 == 0 and 8000 <= rate <= 48000:
        return AudioFormat("pcm16", rate)
    return PCM16_48K


class Player(MediaUnit):
    """Plays mono PCM16 ``pcm`` at ``rate`` Hz to its sinks, one 20 ms frame per clock tick.

    Playback starts at once (with or without sinks, like VoxEngine's players); ``PlayerEvents.Started``
    is dispatched on the first tick, ``PlaybackFinished`` on the tick after the last frame (never when
    looping), ``Stopped`` on ``stop()``. A final partial frame is padded with silence.
    """

    def __init__(
        self,
        clock: MediaClock,
        pcm: bytes,
        rate: int,
        *,
        media_format: AudioFormat | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(pcm, bytes | bytearray) or len(pcm) % 2:
            raise ValueError("pcm must be mono PCM16 bytes (an even number of bytes)")
        if isinstance(rate, bool) or not isinstance(rate, int) or not 4000 <= rate <= 192000:
            raise ValueError(f"rate must be an int in [4000, 192000] Hz, got {rate!r}")
        if media_format is not None and not isinstance(media_format, AudioFormat):
            raise TypeError(f"media_format must be an AudioFormat or None, not {type(media_format).__name__}")
        self.clock = clock
        self.loop = loop
        self._pcm = bytes(pcm)
        self._rate = rate
        self._fixed_format = media_format
        self.media_format = media_format
        self._encoded: bytes = b""
        self._encoded_for: AudioFormat | None = None
        self._frames_played = 0  # position in frames, independent of the output format
        self._started = False
        self._finished = False
        self._subscription: ClockSubscription | None = clock.subscribe(self._on_tick)

    # -- factories ----------------------------------------------------------------------------------

    @classmethod
    def from_wav(
        cls,
        clock: MediaClock,
        path: str | os.PathLike[str],
        *,
        media_format: AudioFormat | None = None,
        loop: bool = False,
    ) -> Player:
        """Play a WAV file of any rate and channel count (mixed to mono)."""
        audio = read_wav(path)
        return cls(clock, mono_pcm16(audio), audio.rate, media_format=media_format, loop=loop)

    @classmethod
    def from_tone(
        cls,
        clock: MediaClock,
        freq_hz: float,
        duration_ms: int,
        *,
        amplitude: float = 0.3,
        media_format: AudioFormat | None = None,
        loop: bool = False,
    ) -> Player:
        rate = media_format.rate if media_format is not None else 16000
        return cls(
            clock, tone(freq_hz, duration_ms, rate, amplitude), rate, media_format=media_format, loop=loop
        )

    @classmethod
    def from_silence(
        cls,
        clock: MediaClock,
        duration_ms: int,
        *,
        media_format: AudioFormat | None = None,
        loop: bool = False,
    ) -> Player:
        rate = media_format.rate if media_format is not None else 16000
        pcm = silence(duration_ms, AudioFormat("pcm16", rate))
        return cls(clock, pcm, rate, media_format=media_format, loop=loop)

    # -- control ------------------------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        return self._subscription is not None

    @property
    def duration_ms(self) -> int:
        return len(self._pcm) * 500 // self._rate

    @property
    def position_ms(self) -> int:
        """Milliseconds played (across loops)."""
        return self._frames_played * FRAME_MS

    def pause(self) -> None:
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None

    def resume(self) -> None:
        if self._subscription is None and not self._finished and not self.media_closed:
            self._subscription = self.clock.subscribe(self._on_tick)

    def stop(self) -> None:
        """Stop playing for good; dispatches ``Stopped`` unless playback had already finished."""
        if self._finished:
            return
        self._finished = True
        self.pause()
        self._emit(PlayerEvents.Stopped)

    def close_media(self) -> None:
        self._finished = True
        self.pause()
        super().close_media()

    # -- internals ----------------------------------------------------------------------------------

    def _sinks_changed(self) -> None:
        if self._fixed_format is None:
            for sink in self._sinks:
                fmt = sink.media_format
                if fmt is not None:
                    self.media_format = AudioFormat(fmt.encoding, fmt.rate)  # players are mono
                    return

    def _output(self) -> tuple[bytes, AudioFormat]:
        fmt = self.media_format or _default_format(self._rate)
        if fmt != self._encoded_for:
            self._encoded = encode_pcm16(self._pcm, self._rate, fmt)
            self._encoded_for = fmt
        return self._encoded, fmt

    def _on_tick(self, tick_ms: int) -> None:
        if not self._started:
            self._started = True
            self._emit(PlayerEvents.Started)
        data, fmt = self._output()
        fb = fmt.frame_bytes
        start = self._frames_played * fb
        if self.loop and data:
            start %= len(data)
            chunk = data[start : start + fb]
            while len(chunk) < fb:  # wrap around the end of the audio
                chunk += data[: fb - len(chunk)]
        else:
            if start >= len(data):
                self._finished = True
                self.pause()
                self._emit(PlayerEvents.PlaybackFinished)
                return
            chunk = data[start : start + fb]
            if len(chunk) < fb:
                chunk += silence(FRAME_MS, fmt)[: fb - len(chunk)]
        frame = Frame(chunk, fmt, self._frames_played * FRAME_MS)
        self._frames_played += 1
        self._deliver(frame)

    def _emit(self, name: PlayerEvents, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra={"player": self, **fields}))

    def __repr__(self) -> str:
        return f"<Player {self.duration_ms} ms {'looping ' if self.loop else ''}at {self.position_ms} ms>"
