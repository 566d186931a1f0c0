"""Media units and VoxEngine's routing rules (DESIGN §3).

``a.send_media_to(b)`` makes ``b`` receive ``a``'s audio. A unit sends to any number of units but
receives ONE stream: a new incoming stream replaces the old one (the old source stops sending to
``b``). Frames travel synchronously: a source calls ``_deliver(frame)``, which calls
``sink.receive_frame(frame, source)`` on every sink, so one 20 ms frame costs one method call per
sink and no task, timer or queue.

The contract between a source and its sinks (docs/media.md), in the spirit of LiveKit's
``AudioOutput``: the source pushes frames (``receive_frame``), tells its sinks when it dropped its
unplayed audio (``clear_buffer``, barge-in) and when its stream ran dry (``flush``); a sink whose
far end plays at its own pace (``reports_playback``) says how far it has really played the source's
audio (``playback_position``), which is what barge-in truncation uses.

Observer taps (``add_tap``) are a second, separate kind of output: a tap sees what a unit emits
without being its sink, so it never counts as anybody's incoming stream and routing never replaces
it. A stereo recorder uses two taps (caller and agent) while the caller and the model keep their
one incoming stream each.

A unit that closes while connected calls ``close_media()``: it is detached in both directions and no
other unit keeps a reference to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from voxline.audio import FRAME_MS, AudioFormat, Frame
from voxline.audio.transcode import Transcoder
from voxline.eventtarget import EventTarget
from voxline.telemetry import NO_METERS, CallMeters

__all__ = [
    "ClearMediaBufferParameters",
    "FormatAdapter",
    "MediaTap",
    "MediaUnit",
    "SendMediaParameters",
    "send_media_between",
    "stop_media_between",
]

log = logging.getLogger("voxline.media")


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class SendMediaParameters:
    """Parameters of ``send_media_to`` (the reference's ``SendMediaParameters``).

    ``tag`` names the stream when one connection carries several; ``encoding`` and
    ``custom_parameters`` are for WebSocket media sinks.
    """

    tag: str | None = None
    encoding: str | None = None
    custom_parameters: dict[str, str] | None = None

    def __post_init__(self) -> None:
        _optional_str(self.tag, "tag")
        _optional_str(self.encoding, "encoding")
        cp = self.custom_parameters
        if cp is not None and (
            not isinstance(cp, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in cp.items())
        ):
            raise TypeError("custom_parameters must be a dict of strings to strings")

    @classmethod
    def coerce(cls, value: SendMediaParameters | Mapping[str, Any] | None) -> SendMediaParameters | None:
        """Accept an instance, None, or a dict with snake_case or the reference's camelCase keys."""
        if value is None or isinstance(value, SendMediaParameters):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"parameters must be SendMediaParameters, a dict or None, not {type(value).__name__}"
            )
        known = {"tag", "encoding", "custom_parameters", "customParameters"}
        unknown = set(value) - known
        if unknown:
            raise ValueError(
                f"parameters: unknown keys {sorted(unknown)} (known: tag, encoding, customParameters)"
            )
        custom = value.get("custom_parameters", value.get("customParameters"))
        if custom is not None and not isinstance(custom, dict):
            raise TypeError("customParameters must be a dict of strings to strings")
        return cls(
            tag=value.get("tag"),
            encoding=value.get("encoding"),
            custom_parameters=dict(custom) if custom is not None else None,
        )


@dataclass(frozen=True, slots=True)
class ClearMediaBufferParameters:
    """Parameters of ``clear_media_buffer`` (the reference's ``ClearMediaBufferParameters``)."""

    tag: str | None = None

    def __post_init__(self) -> None:
        _optional_str(self.tag, "tag")

    @classmethod
    def coerce(
        cls, value: ClearMediaBufferParameters | Mapping[str, Any] | None
    ) -> ClearMediaBufferParameters | None:
        if value is None or isinstance(value, ClearMediaBufferParameters):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"parameters must be ClearMediaBufferParameters, a dict or None, not {type(value).__name__}"
            )
        unknown = set(value) - {"tag"}
        if unknown:
            raise ValueError(f"parameters: unknown keys {sorted(unknown)} (known: tag)")
        return cls(tag=value.get("tag"))


class MediaTap(Protocol):
    """Anything that observes a unit's output without being its sink (see ``MediaUnit.add_tap``)."""

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None: ...


class MediaUnit(EventTarget):
    """Base of every unit that sends or receives audio: calls, clients, players, recorders.

    Subclasses set ``media_format`` (what they emit) and emit with ``_deliver(frame)``. The sink side
    of the contract, called by the unit's source: ``receive_frame`` (a frame), ``clear_buffer``
    (the source dropped its unplayed audio: drop what of it the sink still holds), ``flush`` (the
    source's stream ran dry) and ``playback_position`` (how far the sink has really played it).
    Hooks for subclasses: ``_source_changed`` (the incoming stream was attached, replaced or
    removed), ``_sinks_changed`` (the set of sinks changed), ``_check_source``.
    """

    media_format: AudioFormat | None = None
    #: True for sinks whose far end plays at its own pace and that say how far it got
    #: (``playback_position``): an RTP sender, a carrier that echoes marks. Sources then trust only
    #: those positions for what the caller heard.
    reports_playback: bool = False
    #: How much paced audio this sink takes per delivery (ms, a multiple of 20). More than 20 only
    #: for sinks whose far end buffers, plays at its own pace and reports what it played (Twilio):
    #: fewer, larger messages, the same timing.
    playout_batch_ms: int = FRAME_MS
    #: A call's metric children (``voxline.telemetry``); every other unit's do nothing.
    meters: CallMeters = NO_METERS

    def __init__(self) -> None:
        super().__init__()
        self._source: MediaUnit | None = None
        self._sinks: dict[MediaUnit, SendMediaParameters | None] = {}
        self._taps: list[MediaTap] = []
        self._tapped: list[MediaUnit] = []  # units this unit observes as a tap
        # What _deliver iterates: sinks then taps. Rebuilt on every routing change so a change made
        # while a frame is being delivered never disturbs that delivery's loop.
        self._outputs: tuple[MediaTap, ...] = ()
        self._media_closed = False

    # -- routing ------------------------------------------------------------------------------------

    def send_media_to(
        self, unit: MediaUnit, parameters: SendMediaParameters | Mapping[str, Any] | None = None
    ) -> None:
        """Make ``unit`` receive this unit's audio; it stops receiving from its previous source."""
        if not isinstance(unit, MediaUnit):
            raise TypeError(f"unit must be a media unit, not {type(unit).__name__}")
        if unit is self:
            raise ValueError("a media unit cannot send media to itself")
        params = SendMediaParameters.coerce(parameters)
        if self._media_closed or unit._media_closed:
            # Like VoxEngine: media to or from a unit that has ended (a caller who hung up while the
            # scenario was still setting up) is a harmless no-op.
            closed = self if self._media_closed else unit
            log.debug("%r -> %r: not connected, %r has ended", self, unit, closed)
            return
        unit._check_source(self)
        previous = unit._source
        if previous is self:
            self._sinks[unit] = params
            return
        if previous is not None:
            previous._remove_sink(unit)
        self._sinks[unit] = params
        unit._source = self
        self._rebuild_outputs()
        self._notify(self._sinks_changed)
        unit._notify(unit._source_changed, self)

    def stop_media_to(self, unit: MediaUnit) -> None:
        """Stop sending audio to ``unit``; a no-op when this unit is not its source."""
        if not isinstance(unit, MediaUnit):
            raise TypeError(f"unit must be a media unit, not {type(unit).__name__}")
        if unit._source is not self:
            return
        self._remove_sink(unit)
        unit._notify(unit._source_changed, None)

    def _remove_sink(self, unit: MediaUnit) -> None:
        self._sinks.pop(unit, None)
        if unit._source is self:
            unit._source = None
        self._rebuild_outputs()
        self._notify(self._sinks_changed)

    def _rebuild_outputs(self) -> None:
        self._outputs = (*self._sinks, *self._taps)

    @property
    def media_source(self) -> MediaUnit | None:
        """The unit whose audio this unit receives (its one incoming stream), if any."""
        return self._source

    @property
    def media_sinks(self) -> tuple[MediaUnit, ...]:
        return tuple(self._sinks)

    def _sink_parameters(self, sink: MediaUnit) -> SendMediaParameters | None:
        """The parameters given to ``send_media_to(sink, ...)``."""
        return self._sinks.get(sink)

    @property
    def _sinks_report_playback(self) -> bool:
        """Whether some sink says what it really played (see ``reports_playback``)."""
        return any(sink.reports_playback for sink in self._sinks)

    def _sinks_playback_position(self) -> int | None:
        """How far the sinks that report playback have played this unit's audio: the smallest of
        their positions (truncating to it never cuts into audio a caller did not hear), or None."""
        positions = [
            position
            for sink in self._sinks
            if sink.reports_playback and (position := sink.playback_position(self)) is not None
        ]
        return min(positions) if positions else None

    @property
    def _sinks_batch_ms(self) -> int:
        """The batch every sink accepts (see ``playout_batch_ms``): the smallest of theirs."""
        return min((sink.playout_batch_ms for sink in self._sinks), default=FRAME_MS)

    # -- taps ---------------------------------------------------------------------------------------

    def add_tap(self, tap: MediaTap) -> None:
        """Let ``tap`` see every frame this unit emits, without routing (no stream is replaced)."""
        if self._media_closed:
            log.debug("%r has ended: %r sees nothing of it", self, tap)
            return
        if tap not in self._taps:
            self._taps.append(tap)
            self._rebuild_outputs()
            if isinstance(tap, MediaUnit):
                tap._tapped.append(self)

    def remove_tap(self, tap: MediaTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
            self._rebuild_outputs()
            if isinstance(tap, MediaUnit) and self in tap._tapped:
                tap._tapped.remove(self)

    # -- the frame path -----------------------------------------------------------------------------

    def _deliver(self, frame: Frame) -> None:
        """Give one frame to every sink and tap. A receiver that raises is logged and detached."""
        outputs = self._outputs
        for receiver in outputs:
            if self._outputs is not outputs and receiver not in self._outputs:
                continue  # detached by an earlier receiver during this delivery
            try:
                receiver.receive_frame(frame, self)
            except Exception:
                log.exception("%r raised on a frame from %r; it no longer receives from it", receiver, self)
                self._detach_receiver(receiver)

    def _detach_receiver(self, receiver: MediaTap) -> None:
        if isinstance(receiver, MediaUnit) and receiver in self._sinks:
            self.stop_media_to(receiver)
        else:
            self.remove_tap(receiver)

    # -- the sink side of the contract (called by this unit's source) --------------------------------

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        """A frame of ``source``'s audio (``frame.timestamp_ms`` on the source's timeline). Override
        in sinks; the default drops it."""

    def clear_buffer(self, source: MediaUnit) -> None:
        """``source`` dropped its unplayed audio (barge-in): drop whatever of it this sink holds."""

    def flush(self, source: MediaUnit) -> None:
        """``source``'s stream ran dry: what this sink holds of it is all there is for now."""

    def playback_position(self, source: MediaUnit) -> int | None:
        """How far this sink's far end has really played ``source``'s audio (ms on the source's
        timeline), or None when it cannot tell. Units with ``reports_playback`` override it."""
        return None

    # -- what a source tells its sinks ---------------------------------------------------------------

    def _clear_sinks(self) -> None:
        """Tell every sink that this unit dropped its unplayed audio (barge-in)."""
        for sink in tuple(self._sinks):
            sink._notify(sink.clear_buffer, self)

    def _flush_sinks(self) -> None:
        """Tell every sink that this unit's stream ran dry."""
        for sink in tuple(self._sinks):
            sink._notify(sink.flush, self)

    # -- hooks --------------------------------------------------------------------------------------

    def _check_source(self, source: MediaUnit) -> None:
        """Raise to refuse ``source.send_media_to(self)`` (with a reason naming the unit)."""

    def _source_changed(self, source: MediaUnit | None) -> None:
        """The incoming stream was attached or replaced (``source``) or removed (None)."""

    def _sinks_changed(self) -> None:
        """The set of sinks changed."""

    def _notify(self, hook: Callable[..., None], *args: Any) -> None:
        # Hooks run inside another unit's call: a failing hook is this unit's problem only.
        try:
            hook(*args)
        except Exception:
            log.exception("%r: %s raised", self, getattr(hook, "__name__", hook))

    # -- closing ------------------------------------------------------------------------------------

    def close_media(self) -> None:
        """Detach in both directions. Idempotent; never raises into other units."""
        if self._media_closed:
            return
        self._media_closed = True
        source = self._source
        if source is not None:
            source._remove_sink(self)
        for sink in tuple(self._sinks):
            self._sinks.pop(sink, None)
            if sink._source is self:
                sink._source = None
                sink._notify(sink._source_changed, None)
        for unit in tuple(self._tapped):
            unit.remove_tap(self)
        for tap in tuple(self._taps):
            self.remove_tap(tap)
        self._outputs = ()

    @property
    def media_closed(self) -> bool:
        return self._media_closed


def send_media_between(a: MediaUnit, b: MediaUnit) -> None:
    """``a`` sends to ``b`` and ``b`` sends to ``a``."""
    a.send_media_to(b)
    b.send_media_to(a)


def stop_media_between(a: MediaUnit, b: MediaUnit) -> None:
    a.stop_media_to(b)
    b.stop_media_to(a)


class FormatAdapter:
    """Converts incoming frames to one format, keeping one streaming transcoder per source format.

    A sink that needs its own format (a G.711 call leg, a recorder) calls ``convert``; frames already
    in that format pass through untouched (the same bytes object).
    """

    __slots__ = ("_transcoders", "format")

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._transcoders: dict[AudioFormat, Transcoder] = {}

    def convert(self, frame: Frame) -> bytes:
        if frame.format is self.format or frame.format == self.format:
            return frame.data
        transcoder = self._transcoders.get(frame.format)
        if transcoder is None:
            transcoder = self._transcoders[frame.format] = Transcoder(frame.format, self.format)
        return transcoder.process(frame.data)

    def reset(self) -> None:
        """Forget transcoder state (a new stream starts)."""
        self._transcoders.clear()
