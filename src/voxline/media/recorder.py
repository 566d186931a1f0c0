"""``Recorder``: a media unit that writes what it hears to a WAV file, mono or stereo.

Three ways to feed it:

- ``Recorder(clock, path)`` is an ordinary sink: ``call.send_media_to(recorder)`` records the call's
  audio (its one incoming stream; a new source replaces the old one, as for every unit).
- ``Recorder.stereo(clock, path, left=call, right=client)`` puts the caller on the left channel and
  the agent on the right. It attaches to both as an observer *tap*: it sees what each emits without
  being their sink, so ``call.send_media_to(client)`` and ``client.send_media_to(call)`` are
  untouched and the "one incoming stream" rule still holds for everybody. A stereo or mixed recorder
  therefore refuses to be anybody's sink.
- ``Recorder.mixed(clock, path, sources=[call, client])`` taps several units and mixes them to mono.

Time alignment: sample 0 of the file is the recorder's start (``clock.now_ms()`` at creation). A
frame is placed by its timestamp relative to the first frame of its run, and a run is (re)anchored
at the clock time the frame arrived: when a stream starts, when the source changes, when timestamps
go backwards, and when a frame arrives more than half a frame later than its timestamp predicts (the
source paused: a playout that idled between responses keeps its timestamps contiguous). Gaps are
silence, and at ``stop()`` every channel is padded to the recording's length, so channels stay
time-aligned. A run placed early by more than ``max_early_ms`` is re-anchored too (a timestamp jump).

The file is written as the recording goes: audio older than ``HOLD_MS`` (late frames may still land
there) is written every ``FLUSH_MS``, so memory stays bounded however long the call; ``stop()``
writes the rest and finalizes the header.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import numpy as np

from voxline.audio import FRAME_MS, AudioFormat, Frame
from voxline.audio.transcode import Transcoder
from voxline.eventtarget import Event

from . import MediaUnit
from .clock import ClockSubscription, MediaClock

__all__ = ["Recorder", "RecorderEvents"]

FLUSH_MS = 5000
HOLD_MS = 1000


class RecorderEvents(StrEnum):
    Started = "Recorder.Started"
    Stopped = "Recorder.Stopped"


class _Track:
    """One source's audio as mono PCM16 at the recorder's rate, placed on the recording's timeline."""

    __slots__ = (
        "_anchor_sample",
        "_anchor_ts",
        "_format",
        "_max_early",
        "_next_ts",
        "_per_ms",
        "_source",
        "_transcoder",
        "_write",
        "base",
        "pcm",
    )

    def __init__(self, rate: int, max_early_ms: int) -> None:
        self._format = AudioFormat("pcm16", rate)
        self._per_ms = rate // 1000
        self._max_early = max_early_ms * self._per_ms
        self.pcm = bytearray()  # samples from ``base`` on; earlier ones are in the file already
        self.base = 0
        self._source: object | None = None
        self._transcoder: Transcoder | None = None
        self._anchor_sample = 0
        self._anchor_ts = 0
        self._next_ts = 0
        self._write = 0  # sample index where the run's next converted sample goes

    def add(self, frame: Frame, source: object, position_ms: int) -> None:
        """Place ``frame`` that arrived ``position_ms`` after the start of the recording."""
        if position_ms < 0:
            return
        per_ms = self._per_ms
        arrived = position_ms * per_ms
        ts = frame.timestamp_ms
        fmt = frame.format
        transcoder = self._transcoder
        if (
            transcoder is None
            or source is not self._source
            or transcoder.src != fmt
            or ts < self._next_ts
            or arrived - (self._anchor_sample + (ts - self._anchor_ts) * per_ms) > FRAME_MS // 2 * per_ms
            or (self._anchor_sample + (ts - self._anchor_ts) * per_ms) - arrived > self._max_early
        ):
            self._finish_run()
            transcoder = self._transcoder = Transcoder(fmt, self._format)
            self._source = source
            self._anchor_sample = max(arrived, self._write)
            self._anchor_ts = ts
            self._write = self._anchor_sample
        else:
            expected = self._anchor_sample + (ts - self._anchor_ts) * per_ms
            if expected > self._write + round(transcoder.delay_ms * per_ms) + 1:
                # Frames missing inside the run: end the converted stream before the gap.
                self._put(transcoder.flush())
                self._write = max(self._write, expected)
        self._next_ts = ts + int(frame.duration_ms)
        self._put(transcoder.process(frame.data))

    def _put(self, data: bytes) -> None:
        if not data:
            return
        start = (self._write - self.base) * 2
        self._write += len(data) // 2
        if start < 0:  # arrived after its place was written to the file: keep the rest
            data = data[-start:]
            start = 0
        pcm = self.pcm
        if start > len(pcm):
            pcm.extend(bytes(start - len(pcm)))
        pcm[start : start + len(data)] = data

    def _finish_run(self) -> None:
        if self._transcoder is not None:
            self._put(self._transcoder.flush())
            self._transcoder = None

    @property
    def idle_since(self) -> int:
        """Sample index where this track's audio stops for now."""
        return self._write

    def take(self, upto: int) -> bytes:
        """Samples ``[base, upto)`` (silence where nothing was recorded), removed from the track."""
        n = (upto - self.base) * 2
        pcm = self.pcm
        if len(pcm) < n:
            pcm.extend(bytes(n - len(pcm)))
        out = bytes(pcm[:n])
        del pcm[:n]
        self.base = upto
        return out


class _Tap:
    """Feeds one track from one unit's output (see ``MediaUnit.add_tap``)."""

    __slots__ = ("recorder", "track")

    def __init__(self, recorder: Recorder, track: _Track) -> None:
        self.recorder = recorder
        self.track = track

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        self.recorder._record(self.track, frame, source)


class Recorder(MediaUnit):
    """Records to a WAV file (PCM16 at ``rate``). See the module docstring for the three modes.

    ``RecorderEvents.Started`` is dispatched on the first clock tick after creation (so listeners
    added right after creating the recorder get it), ``Stopped`` by ``stop()`` once the file is
    written. Both carry ``recorder``, ``path``; ``Stopped`` also ``duration_ms``.
    """

    def __init__(
        self,
        clock: MediaClock,
        path: str | os.PathLike[str],
        *,
        rate: int = 8000,
        max_early_ms: int = 1000,
        _taps: Iterable[Iterable[MediaUnit]] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, int) or rate % 1000 or not 8000 <= rate <= 48000:
            raise ValueError(f"rate must be 8000..48000 Hz in steps of 1000, got {rate!r}")
        self.clock = clock
        self.path = os.fspath(path)
        self.rate = rate
        self._start_ms = clock.now_ms()
        self._stopped = False
        self._flushed = 0  # samples written to the file
        self.duration_ms = 0
        self._tap_objects: list[tuple[MediaUnit, _Tap]] = []
        groups = [list(group) for group in _taps] if _taps is not None else None
        self.channels = len(groups) if groups is not None and len(groups) == 2 else 1
        self._tapping = groups is not None
        if groups is None:
            self._tracks = [_Track(rate, max_early_ms)]
        else:
            self._tracks = []
            for group in groups:
                for unit in group:
                    if not isinstance(unit, MediaUnit):
                        raise TypeError(f"recorder sources must be media units, not {type(unit).__name__}")
                    track = _Track(rate, max_early_ms)
                    self._tracks.append(track)
                    tap = _Tap(self, track)
                    unit.add_tap(tap)
                    self._tap_objects.append((unit, tap))
        self._channel_of = [0] * len(self._tracks) if self.channels == 1 else [0, 1]
        try:
            self._file = open(self.path, "wb")  # noqa: SIM115 - open until stop()
        except OSError:
            self._release_taps()
            raise
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed by stop()
        self._wav.setnchannels(self.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._subscription: ClockSubscription | None = clock.subscribe(self._on_first_tick)

    @classmethod
    def stereo(
        cls,
        clock: MediaClock,
        path: str | os.PathLike[str],
        *,
        left: MediaUnit,
        right: MediaUnit,
        rate: int = 8000,
    ) -> Recorder:
        """Record ``left``'s output on channel 0 and ``right``'s on channel 1 (observer taps)."""
        if left is right:
            raise ValueError("left and right must be different units")
        return cls(clock, path, rate=rate, _taps=[[left], [right]])

    @classmethod
    def mixed(
        cls,
        clock: MediaClock,
        path: str | os.PathLike[str],
        *,
        sources: Iterable[MediaUnit],
        rate: int = 8000,
    ) -> Recorder:
        """Record the output of every unit in ``sources``, mixed to mono (observer taps)."""
        units = list(sources)
        if not units:
            raise ValueError("sources must name at least one media unit")
        return cls(clock, path, rate=rate, _taps=[units])

    # -- media --------------------------------------------------------------------------------------

    def _check_source(self, source: MediaUnit) -> None:
        if self._tapping:
            raise ValueError("a stereo or mixed recorder records its taps and cannot be a media sink")
        if self._stopped:
            raise RuntimeError("the recorder is stopped")

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        if not self._tapping:
            self._record(self._tracks[0], frame, source)

    def _record(self, track: _Track, frame: Frame, source: MediaUnit) -> None:
        if self._stopped:
            return
        position_ms = self.clock.now_ms() - self._start_ms
        track.add(frame, source, position_ms)
        if position_ms - self._flushed * 1000 // self.rate >= FLUSH_MS + HOLD_MS:
            self._write_until((position_ms - HOLD_MS) * self.rate // 1000)

    def _write_until(self, samples: int) -> None:
        """Mix or interleave every track's samples up to ``samples`` and append them to the file."""
        if samples <= self._flushed:
            return
        mix = np.zeros((self.channels, samples - self._flushed), dtype=np.int32)
        for track, channel in zip(self._tracks, self._channel_of, strict=True):
            if track.idle_since < samples:
                track._finish_run()  # a run that stopped: its held tail belongs here
            mix[channel] += np.frombuffer(track.take(samples), dtype="<i2")
        self._wav.writeframes(np.clip(mix, -32768, 32767).astype("<i2").T.tobytes())
        self._flushed = samples

    def _release_taps(self) -> None:
        for unit, tap in self._tap_objects:
            unit.remove_tap(tap)
        self._tap_objects.clear()

    # -- lifecycle ----------------------------------------------------------------------------------

    def _on_first_tick(self, tick_ms: int) -> None:
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None
        self._emit(RecorderEvents.Started)

    @property
    def recording(self) -> bool:
        return not self._stopped

    def stop(self) -> None:
        """Stop, write the file, dispatch ``Stopped``, and detach from every unit. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._subscription is not None:
            self.clock.unsubscribe(self._subscription)
            self._subscription = None
        self._release_taps()
        super().close_media()
        self.duration_ms = max(0, self.clock.now_ms() - self._start_ms)
        # The file ends at the stop instant (a frame that arrived on the last tick is cut there).
        samples = max(self.duration_ms * self.rate // 1000, self._flushed)
        for track in self._tracks:
            track._finish_run()
        self._write_until(samples)
        self._wav.close()  # patches the header's sizes
        self._file.close()
        self._emit(RecorderEvents.Stopped, duration_ms=self.duration_ms)

    def close_media(self) -> None:
        self.stop()

    def _emit(self, name: RecorderEvents, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra={"recorder": self, "path": self.path, **fields}))

    def __repr__(self) -> str:
        mode = "stereo" if self.channels == 2 else "mixed" if self._tapping else "mono"
        return f"<Recorder {mode} {self.path!r}>"
