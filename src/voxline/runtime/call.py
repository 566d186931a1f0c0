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
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from ..audio import AudioFormat, Frame
from ..eventtarget import Event
from ..media import FormatAdapter, MediaUnit
from .events import CallEvents

log = logging.getLogger("voxline.call")

_call_ids = itertools.count(1)


class CallState(StrEnum):
    ALERTING = "alerting"  # inbound, not answered yet
    PROGRESSING = "progressing"  # outbound, not answered yet
    CONNECTED = "connected"
    ENDED = "ended"


class CallLeg(Protocol):
    """What a transport gives a :class:`Call`. The leg calls back into the call's ``_leg_*`` methods."""

    media_format: AudioFormat

    def attach(self, call: Call) -> None: ...
    def answer(self, headers: Mapping[str, str] | None) -> None: ...
    def reject(self, code: int, headers: Mapping[str, str] | None) -> None: ...
    def hangup(self, headers: Mapping[str, str] | None) -> None: ...
    def send_audio(self, data: bytes, end_ms: int) -> None: ...
    def clear_audio(self) -> None: ...
    def send_digits(self, digits: str) -> None: ...


class Call(MediaUnit):
    """``Call`` of the reference: ``answer``, ``hangup``, ``reject``, media routing, recording, playback."""

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
    ) -> None:
        super().__init__()
        self._id = f"call-{next(_call_ids)}"
        self._leg = leg
        self.media_format = leg.media_format
        self._caller_id = caller_id
        self._destination = destination
        self._display_name = display_name
        self._headers = dict(headers or {})
        self._custom_data = dict(custom_data or {})
        self._state = CallState.PROGRESSING if outbound else CallState.ALERTING
        self._adapter = FormatAdapter(leg.media_format)
        self.reports_playout = bool(getattr(leg, "reports_playout", False))
        leg.attach(self)

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
        if self._state is not CallState.ALERTING:
            raise RuntimeError(f"cannot answer {self!r}: it is {self._state.value}")
        self._leg.answer(headers)

    def reject(self, code: int = 486, headers: Mapping[str, str] | None = None) -> None:
        if not isinstance(code, int) or not 400 <= code <= 699:
            raise ValueError(f"code must be a SIP failure status (400-699), not {code!r}")
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
        self._leg.send_digits(digits.upper())

    # -- media ------------------------------------------------------------------------------------

    def _receive_media(self, frame: Frame, source: MediaUnit) -> None:
        if self._state is not CallState.CONNECTED:
            return
        data = self._adapter.convert(frame)
        if data:
            # The end of this audio on the source's timeline: what a playout report refers to.
            self._leg.send_audio(data, frame.timestamp_ms + int(frame.duration_ms))

    def _media_cleared(self, source: MediaUnit) -> None:
        self._leg.clear_audio()

    # -- from the leg -----------------------------------------------------------------------------

    def _leg_audio(self, frame: Frame) -> None:
        self._deliver(frame)

    def _leg_played(self, position_ms: int) -> None:
        """The leg really played the source's audio up to ``position_ms`` (source timeline)."""
        source = self.media_source
        if source is not None:
            source._playout_acknowledged(position_ms)

    def _leg_connected(self) -> None:
        if self._state in (CallState.ALERTING, CallState.PROGRESSING):
            self._state = CallState.CONNECTED
            self._emit(CallEvents.Connected)

    def _leg_disconnected(self, reason: str = "", initiator: str = "remote") -> None:
        self._end(CallEvents.Disconnected, reason=reason, initiator=initiator)

    def _leg_failed(self, code: int, reason: str = "") -> None:
        self._end(CallEvents.Failed, code=code, reason=reason)

    def _leg_tone(self, digit: str) -> None:
        self._emit(CallEvents.ToneReceived, tone=digit)

    # -- internals --------------------------------------------------------------------------------

    def _emit(self, name: StrEnum, **fields: Any) -> None:
        self._dispatch(Event(name=name, extra={"call": self, **fields}))

    def _end(self, name: CallEvents, **fields: Any) -> None:
        if self._state is CallState.ENDED:
            return
        self._state = CallState.ENDED
        self._emit(name, **fields)
        self.close_media()
