"""``Call``: a phone call as a media unit, whatever carries it (SIP/RTP, a carrier WebSocket, loopback).

A call wraps a *leg* — the transport-specific part — behind one scenario-facing API and one set of
``CallEvents``. Audio from the caller leaves the call paced by the leg (20 ms frames); audio sent to
the call is converted to the leg's format once per frame (nothing at all when formats match, the
G.711 pass-through case). Legs that know what they have really played (an RTP sender's send
position, Twilio's mark echoes) report it, and the call forwards it to its source so barge-in
truncation uses what the caller actually heard.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload, runtime_checkable

from ..audio import AudioFormat, Frame
from ..callstate import CallState as CallState  # re-exported: voxline.runtime.call.CallState
from ..eventtarget import Event
from ..logs import log_ids
from ..media import FormatAdapter, MediaUnit
from ..media.clock import AsyncioMediaClock, MediaClock
from ..media.player import Player, PlayerEvents
from ..media.recorder import Recorder, RecorderEvents
from ..telemetry import TELEMETRY
from .events import CallEvents

if TYPE_CHECKING:
    from .event_types import (
        CallDisconnectedEvent,
        CallEvent,
        CallEventName,
        CallFailedEvent,
        ToneReceivedEvent,
    )

log = logging.getLogger("voxline.call")

_call_ids = itertools.count(1)


class LegListener:
    """What a leg tells its call: the caller's audio, the call's progress, DTMF. ``Call`` gives each
    leg one (``CallLeg.attach``); its methods run on the event loop, synchronously."""

    def __init__(self, call: Call) -> None:
        self._call = call
        #: ``audio(frame)``: a 20 ms frame of the caller's audio (in the leg's ``media_format``).
        self.audio: Callable[[Frame], None] = call._caller_audio

    # The leg calls these from its I/O (a SIP transaction, a carrier socket's reader), outside the
    # call's session: what they log carries the call's ids all the same. Audio frames do not pay it.
    def connected(self) -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._connected()

    def disconnected(self, reason: str = "", initiator: str = "remote") -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._end(CallEvents.Disconnected, reason=reason, initiator=initiator)

    def failed(self, code: int, reason: str = "") -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._end(CallEvents.Failed, code=code, reason=reason)

    def tone(self, digit: str) -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._emit(CallEvents.ToneReceived, tone=digit)

    # Transfer (a ``TransferLeg``'s): ours to the peer, then the peer's to us.
    def transfer_accepted(self) -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._emit(CallEvents.TransferAccepted)

    def transfer_progress(self, code: int, reason: str) -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._emit(CallEvents.TransferProgress, code=code, reason=reason)

    def transfer_ended(self, code: int, reason: str) -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._transfer_ended(code, reason)

    def transfer_requested(self, target: str, referred_by: str | None) -> None:
        with log_ids(session_id=self._call.session_id, call_id=self._call.id()):
            self._call._transfer_requested(target, referred_by)


class CallLeg(Protocol):
    """What a transport gives a :class:`Call`: call control, and the output side of its media in the
    spirit of LiveKit's ``AudioOutput`` -- push audio (``capture_frame``), drop what is not yet
    played (``clear_buffer``), say the stream ran dry (``flush``) and how far the far end has really
    played (``played_ms``). Its input side is ``LegListener.audio``."""

    @property
    def media_format(self) -> AudioFormat: ...

    #: ``played_ms`` is what the far end really played (an RTP sender's send position, Twilio's marks).
    reports_playback: bool
    #: How much paced audio one ``capture_frame`` may carry (ms; 20, or 100 for Twilio's player).
    playout_batch_ms: int
    #: What carries the call, as the metrics label it: ``sip``, ``twilio``, ``voxengine``, ``local``.
    transport: str

    def attach(self, listener: LegListener) -> None: ...
    def answer(self, headers: Mapping[str, str] | None) -> None: ...
    def reject(self, code: int, headers: Mapping[str, str] | None) -> None: ...
    def hangup(self, headers: Mapping[str, str] | None) -> None: ...
    def send_digits(self, digits: str) -> None: ...
    def capture_frame(self, data: bytes, end_ms: int) -> None:
        """Send ``data`` (in ``media_format``) to the caller; it ends at ``end_ms`` on its source's
        timeline, the timeline ``played_ms`` answers in."""

    def clear_buffer(self) -> None: ...
    def flush(self) -> None: ...
    def played_ms(self) -> int | None: ...


@runtime_checkable
class TransferLeg(Protocol):
    """A leg that can transfer its call (a SIP dialog: REFER). Its outcome comes back through the
    ``LegListener``'s ``transfer_*`` methods."""

    def transfer(self, target: str, headers: Mapping[str, str] | None, timeout: float) -> None: ...
    def accept_transfer(self) -> None: ...
    def reject_transfer(self, code: int) -> None: ...
    def report_transfer(self, code: int, reason: str | None) -> None: ...


# Carrier transports, whose late frames are counted, and how late a tick may run (half a tick).
_CARRIERS = frozenset({"twilio", "voxengine"})
_LATE_MS = 10


class CallMonitor(Protocol):
    """What watches a call for the runtime (the per-call tracker of ``voxline.runtime.accounting``):
    told of the two moments no event shows, synchronously, on the event loop."""

    def clearing_media(self) -> None:
        """The call's source dropped its unplayed audio (barge-in); the leg is cleared right after."""

    def call_ending(self, name: CallEvents, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """The call has ended (``Disconnected`` or ``Failed`` with ``fields`` is next): a quality
        record to deliver as ``CallEvents.QualityRecord`` first, or None."""


def _report_outcome(leg: TransferLeg, call: Call) -> None:
    """Tell the referrer how ``call`` (to the REFER's target) goes: 200 when it connects, its failure
    status when it fails, 487 when it ends unanswered otherwise (RFC 3515 §2.4.5)."""
    reported = False

    def report(code: int, reason: str | None) -> None:
        nonlocal reported
        if reported:
            return
        reported = True
        try:
            leg.report_transfer(code, reason)
        except (RuntimeError, ValueError) as exc:  # our call ended, the subscription expired
            log.debug("transfer outcome %d not reported: %s", code, exc)

    state = call.state()
    if state is CallState.CONNECTED:
        report(200, None)
        return
    if state is CallState.ENDED:
        report(487, "the call to the target ended")
        return
    call.add_event_listener(CallEvents.Connected, lambda e: report(200, None))
    call.add_event_listener(CallEvents.Failed, lambda e: report(int(e.code), str(e.reason) or None))
    call.add_event_listener(CallEvents.Disconnected, lambda e: report(487, "the call to the target ended"))


class _Heard(MediaUnit):
    """What the call plays to the caller, as a stream a recorder can tap (exists only while recording)."""

    def play(self, frame: Frame) -> None:
        self._deliver(frame)


class Call(MediaUnit):
    """``Call`` of the reference: ``answer``, ``hangup``, ``reject``, media routing, recording, playback."""

    _event_enums = (CallEvents,)

    if TYPE_CHECKING:
        # For mypy: a CallEvents constant or its value string; the listener's event typed per event.
        @overload  # type: ignore[override]
        def add_event_listener(
            self,
            event: Literal[CallEvents.Disconnected],
            callback: Callable[[CallDisconnectedEvent], Any] | Callable[[Event], Any],
        ) -> None: ...
        @overload
        def add_event_listener(
            self,
            event: Literal[CallEvents.Failed],
            callback: Callable[[CallFailedEvent], Any] | Callable[[Event], Any],
        ) -> None: ...
        @overload
        def add_event_listener(
            self,
            event: Literal[CallEvents.ToneReceived],
            callback: Callable[[ToneReceivedEvent], Any] | Callable[[Event], Any],
        ) -> None: ...
        @overload
        def add_event_listener(
            self,
            event: CallEvents | CallEventName,
            callback: Callable[[CallEvent], Any] | Callable[[Event], Any],
        ) -> None: ...
        def add_event_listener(self, event: Any, callback: Any) -> None: ...

    def __init__(
        self,
        leg: CallLeg,
        *,
        caller_id: str = "",
        destination: str = "",
        display_name: str = "",
        headers: Mapping[str, str] | None = None,
        custom_data: Mapping[str, Any] | None = None,
        outbound: bool = False,
        clock: MediaClock | None = None,
    ) -> None:
        super().__init__()
        self._id = f"call-{next(_call_ids)}"
        #: The session that owns the call (set when it adopts it): its log records carry both ids.
        self.session_id: str | None = None
        self._leg = leg
        self.media_format = leg.media_format
        self._caller_id = caller_id
        self._destination = destination
        self._display_name = display_name
        self._headers = dict(headers or {})
        self._custom_data = dict(custom_data or {})
        self._state = CallState.PROGRESSING if outbound else CallState.ALERTING
        self._answered = False  # answer() was called: the call connects when the caller confirms
        # A transfer asked for between answer() and the connection: sent once the call connects.
        self._deferred_transfer: tuple[str, dict[str, str] | None, float] | None = None
        self._adapter = FormatAdapter(leg.media_format)
        self.reports_playback = leg.reports_playback
        self.playout_batch_ms = leg.playout_batch_ms
        self.transport = leg.transport
        self._clock = clock
        self._heard: _Heard | None = None
        self._recorders: list[Recorder] = []
        self._player: Player | None = None
        #: Watchers of the runtime's own (``CallMonitor``); a scenario has the events.
        self.monitors: list[CallMonitor] = []
        leg.attach(LegListener(self))

    def __repr__(self) -> str:
        return f"<Call {self._id} {self._caller_id} -> {self._destination} {self._state.value}>"

    # -- identity ---------------------------------------------------------------------------------

    def id(self) -> str:
        return self._id

    def caller_id(self) -> str:
        return self._caller_id

    callerid = caller_id  # the reference's spelling

    def destination(self) -> str:
        return self._destination

    def display_name(self) -> str:
        return self._display_name

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def custom_data(self) -> dict[str, Any]:
        """Carrier-provided parameters (Twilio ``<Parameter>``s, VoxEngine ``customParameters``)."""
        return dict(self._custom_data)

    def state(self) -> CallState:
        return self._state

    @property
    def leg(self) -> CallLeg:
        return self._leg

    # -- control ----------------------------------------------------------------------------------

    def answer(self, headers: Mapping[str, str] | None = None) -> None:
        if self._ended("answer"):
            return
        if self._state is not CallState.ALERTING:
            raise RuntimeError(f"cannot answer {self!r}: it is {self._state.value}")
        self._leg.answer(headers)
        self._answered = True

    def reject(self, code: int = 486, headers: Mapping[str, str] | None = None) -> None:
        if not isinstance(code, int) or not 400 <= code <= 699:
            raise ValueError(f"code must be a SIP failure status (400-699), not {code!r}")
        if self._ended("reject"):
            return
        if self._state is not CallState.ALERTING:
            raise RuntimeError(f"cannot reject {self!r}: it is {self._state.value}")
        self._leg.reject(code, headers)
        self._end(CallEvents.Failed, code=code, reason="rejected")

    def hangup(self, headers: Mapping[str, str] | None = None) -> None:
        """End the call from our side. Idempotent."""
        if self._state is CallState.ENDED:
            return
        self._leg.hangup(headers)
        self._end(CallEvents.Disconnected, reason="hangup", initiator="local")

    close = hangup  # what a session calls on terminate

    def send_digits(self, digits: str) -> None:
        if not isinstance(digits, str) or not digits or any(d not in "0123456789*#ABCDabcd" for d in digits):
            raise ValueError(f"digits must be DTMF characters 0-9 * # A-D, not {digits!r}")
        if self._ended("send_digits"):
            return
        self._leg.send_digits(digits.upper())

    # -- transfer ---------------------------------------------------------------------------------

    def transfer(
        self, target: str, headers: Mapping[str, str] | None = None, *, timeout: float = 60.0
    ) -> None:
        """Blind transfer: ask the caller's side to call ``target`` (a ``sip:``, ``sips:`` or ``tel:``
        URI) instead; on SIP a REFER with ``Referred-By``. ``TransferAccepted``, ``TransferProgress``
        (``code``) follow, then ``TransferComplete`` (the call is hung up: ``Disconnected`` with
        reason ``transferred``) or ``TransferFailed`` (``code``, ``reason``: the target's status, the
        REFER's refusal, or 408 when no outcome came within ``timeout`` seconds); after a failure
        the call goes on. On a call answered but not yet connected (the caller's ACK is still on its
        way, and a fast model may ask for the transfer first) the REFER goes out once it connects.
        Raises ``RuntimeError`` on a call that is not answered or has a transfer waiting to connect,
        or whose transport cannot transfer (carrier media streams)."""
        if not isinstance(target, str) or not target.startswith(("sip:", "sips:", "tel:")):
            raise ValueError(f"target must be a sip:, sips: or tel: URI, not {target!r}")
        if self._ended("transfer"):
            return
        leg = self._leg
        waiting = self._state is CallState.ALERTING and self._answered
        if self._state is not CallState.CONNECTED and not waiting:
            raise RuntimeError(f"cannot transfer {self!r}: it is {self._state.value}")
        if not isinstance(leg, TransferLeg):
            raise RuntimeError(
                f"cannot transfer {self!r}: {self.transport} calls have no SIP dialog to send a REFER in"
            )
        request = (target, dict(headers) if headers is not None else None, timeout)
        if waiting:
            if self._deferred_transfer is not None:
                raise RuntimeError(f"cannot transfer {self!r}: a transfer already waits for it to connect")
            log.debug("%r: transfer to %s waits for the call to connect", self, target)
            self._deferred_transfer = request
            return
        leg.transfer(*request)

    def _transfer_ended(self, code: int, reason: str) -> None:
        if 200 <= code < 300:
            self._emit(CallEvents.TransferComplete, code=code, reason=reason)
            if self._state is not CallState.ENDED:  # the caller is with the target now: we leave
                self._leg.hangup(None)
                self._end(CallEvents.Disconnected, reason="transferred", initiator="local")
        else:
            log.info("%r: transfer failed: %d %s", self, code, reason)
            self._emit(CallEvents.TransferFailed, code=code, reason=reason)

    def _transfer_requested(self, target: str, referred_by: str | None) -> None:
        leg = self._leg
        assert isinstance(leg, TransferLeg)
        if not self.has_listeners(CallEvents.TransferRequested):
            log.info("%r: transfer to %s refused (603): no TransferRequested handler", self, target)
            leg.reject_transfer(603)
            return
        answered = False

        def accept(call: Call) -> None:
            """202, then NOTIFYs: 100 Trying now, the outcome of ``call`` (the scenario's call to
            ``target``, normally ``VoxEngine.call_sip(event.target)``) when it connects or fails."""
            nonlocal answered
            if not isinstance(call, Call):
                raise TypeError(f"accept() needs the Call placed to the target, not {type(call).__name__}")
            if answered:
                raise RuntimeError("this transfer request is already answered")
            answered = True
            leg.accept_transfer()
            _report_outcome(leg, call)

        def reject(code: int = 603) -> None:
            nonlocal answered
            if not isinstance(code, int) or not 400 <= code <= 699:
                raise ValueError(f"code must be a SIP failure status (400-699), not {code!r}")
            if answered:
                raise RuntimeError("this transfer request is already answered")
            answered = True
            leg.reject_transfer(code)

        self._emit(
            CallEvents.TransferRequested, target=target, referred_by=referred_by, accept=accept, reject=reject
        )

    # -- recording and playback -------------------------------------------------------------------

    @property
    def clock(self) -> MediaClock:
        if self._clock is None:
            self._clock = AsyncioMediaClock.for_loop()
        return self._clock

    def record(
        self, stereo: bool = False, path: str | os.PathLike[str] | None = None, rate: int = 8000
    ) -> Recorder:
        """Record the call to a WAV file: the caller and what the caller hears, mixed, or with
        ``stereo`` on separate time-aligned channels (caller left). ``RecordStarted`` /
        ``RecordStopped`` follow; the recording stops when the call ends."""
        target = Path(path) if path is not None else Path("recordings") / f"{self._id}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._heard is None:
            self._heard = _Heard()
            self._heard.media_format = self.media_format
        if stereo:
            recorder = Recorder.stereo(self.clock, target, left=self, right=self._heard, rate=rate)
        else:
            recorder = Recorder.mixed(self.clock, target, sources=[self, self._heard], rate=rate)
        url = str(target)
        recorder.add_event_listener(
            RecorderEvents.Started, lambda e: self._emit(CallEvents.RecordStarted, url=url)
        )
        recorder.add_event_listener(
            RecorderEvents.Stopped, lambda e: self._emit(CallEvents.RecordStopped, url=url)
        )
        self._recorders.append(recorder)
        return recorder

    def stop_recording(self) -> None:
        for recorder in self._recorders:
            recorder.stop()
        self._recorders.clear()

    def start_playback(self, source: str | os.PathLike[str], loop: bool = False) -> Player:
        """Play a WAV file to the caller. Like any new incoming stream it replaces what the call was
        receiving; ``PlaybackFinished`` follows when it ends (never, with ``loop``). On a call that
        has ended the player is made but plays nothing."""
        self.stop_playback()
        player = Player.from_wav(self.clock, source, media_format=self.media_format, loop=loop)
        player.add_event_listener(
            PlayerEvents.PlaybackFinished, lambda e: self._emit(CallEvents.PlaybackFinished)
        )
        self._player = player
        player.send_media_to(self)
        return player

    def stop_playback(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player.close_media()
            self._player = None

    # -- media ------------------------------------------------------------------------------------

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        if self._state is not CallState.CONNECTED:
            return
        if self._heard is not None:
            self._heard.play(frame)
        data = self._adapter.convert(frame)
        if data:
            # The end of this audio on the source's timeline: what played_ms answers in.
            self._leg.capture_frame(data, frame.timestamp_ms + int(frame.duration_ms))
            meters = self.meters
            if meters.model_audio_at:
                # The first frame of an answer is with the leg: added latency model -> caller.
                meters.model_to_caller.observe(time.monotonic() - meters.model_audio_at)
                meters.model_audio_at = 0.0
            if meters.on and self.transport in _CARRIERS:
                # Handed over on a clock tick that ran late: the carrier gets this audio that late.
                clock = self._clock if self._clock is not None else AsyncioMediaClock.for_loop()
                if clock.now_ms() - clock.media_time_ms() > _LATE_MS:
                    TELEMETRY.carrier_late_frame(meters.transport)

    def clear_buffer(self, source: MediaUnit) -> None:
        meters = self.meters
        if meters.on:
            meters.model_audio_at = 0.0  # the answer was cut before its first frame left
        for monitor in self.monitors:
            try:
                monitor.clearing_media()
            except Exception:
                log.exception("%r: monitor %r failed on clear", self, monitor)
        self._leg.clear_buffer()

    def flush(self, source: MediaUnit) -> None:
        self._leg.flush()

    def playback_position(self, source: MediaUnit) -> int | None:
        return self._leg.played_ms() if source is self.media_source else None

    # -- from the leg (LegListener) ---------------------------------------------------------------

    def _caller_audio(self, frame: Frame) -> None:
        meters = self.meters
        if meters.on:
            meters.inbound_at = time.monotonic()  # added latency caller -> model starts here
        self._deliver(frame)

    def _connected(self) -> None:
        if self._state in (CallState.ALERTING, CallState.PROGRESSING):
            self._state = CallState.CONNECTED
            if self._leg.media_format != self.media_format:  # an outbound call's answer chose the codec
                self.media_format = self._leg.media_format
                self._adapter = FormatAdapter(self.media_format)
            self._emit(CallEvents.Connected)
            request, self._deferred_transfer = self._deferred_transfer, None
            if request is not None and self._state is CallState.CONNECTED:
                leg = self._leg
                assert isinstance(leg, TransferLeg)  # checked when the transfer was asked for
                try:
                    leg.transfer(*request)
                except Exception as exc:  # the scenario's call has returned: it hears of it this way
                    log.warning("%r: the transfer to %s failed: %s", self, request[0], exc)
                    self._emit(CallEvents.TransferFailed, code=500, reason=str(exc))

    # -- internals --------------------------------------------------------------------------------

    def _ended(self, operation: str) -> bool:
        """True (after a debug line) when the call has ended: operations on it are no-ops, as in
        VoxEngine, so a scenario still setting up when the caller hangs up needs no special case."""
        if self._state is not CallState.ENDED:
            return False
        log.debug("%r: %s ignored, the call has ended", self, operation)
        return True

    def _emit(self, name: StrEnum, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra={"call": self, **fields}))

    def _end(self, name: CallEvents, **fields: Any) -> None:
        if self._state is CallState.ENDED:
            return
        self._state = CallState.ENDED
        for monitor in self.monitors:
            try:
                record = monitor.call_ending(name, fields)
            except Exception:
                log.exception("%r: monitor %r failed at the end of the call", self, monitor)
                continue
            if record is not None:
                # Before Disconnected/Failed: a scenario that terminates on those still gets it.
                self._emit(CallEvents.QualityRecord, record=record)
        self._emit(name, **fields)
        self.stop_playback()
        self.stop_recording()
        self.close_media()
