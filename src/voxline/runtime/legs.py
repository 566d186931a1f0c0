"""Call legs: what a SIP dialog or a carrier WebSocket stream gives a :class:`~voxline.runtime.call.Call`."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from .._tasks import background
from ..audio import PCMU_8K, AudioFormat
from ..carriers.stream import CarrierStream
from ..media.clock import ClockSubscription, MediaClock
from ..rtp import DtmfDigit, RtpEndpoint
from ..sip.endpoint import SipCallLeg
from ..sip.events import CallConnected, CallDisconnected, CallFailed, DtmfInfo

if TYPE_CHECKING:
    from .call import Call

log = logging.getLogger("voxline.call")


class SipLeg:
    """A SIP dialog with its RTP stream. Playout reports come from the RTP sender's real send position:
    audio counts as played once its last packet has left the socket. The send position is read on
    the RTP sender's own clock (the SIP endpoint's) just after the sender's tick (order 2 after its
    order 1), so audio that leaves in a tick is acknowledged in that same tick."""

    reports_playout = True

    def __init__(self, leg: SipCallLeg) -> None:
        self.sip = leg
        self._call: Call | None = None
        self._clock: MediaClock | None = None  # the clock _check_sent is subscribed to
        # (position in the RTP queue's cumulative timeline where this audio ends, source end_ms)
        self._unacked: deque[tuple[int, int]] = deque()
        self._queued_ms = 0
        self._subscription: ClockSubscription | None = None

    @property
    def media_format(self) -> AudioFormat:
        # Known from the offer for inbound calls; for outbound ones the answer may change it.
        return self.sip.audio_format or PCMU_8K

    def attach(self, call: Call) -> None:
        self._call = call
        self.sip.on_audio = call._leg_audio
        self.sip.add_listener(self._on_event)

    def _on_event(self, event: Any) -> None:
        call = self._call
        assert call is not None
        if isinstance(event, CallConnected):
            call._leg_connected()
        elif isinstance(event, CallDisconnected):
            self._stop_acks()
            call._leg_disconnected(event.reason, event.by)
        elif isinstance(event, CallFailed):
            self._stop_acks()
            call._leg_failed(event.status, event.reason)
        elif isinstance(event, DtmfDigit | DtmfInfo):
            call._leg_tone(event.digit)

    def answer(self, headers: Mapping[str, str] | None) -> None:
        call = self._call

        def failed(exc: BaseException) -> None:
            log.warning("answering %s failed: %s", self.sip.call_id, exc)
            if call is not None:
                call._leg_failed(500, f"answer failed: {exc}")

        background(self.sip.answer(), name=f"answer-{self.sip.call_id}", on_error=failed)

    def reject(self, code: int, headers: Mapping[str, str] | None) -> None:
        self.sip.reject(code)

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        self._stop_acks()
        self.sip.hangup()

    def send_audio(self, data: bytes, end_ms: int) -> None:
        self.sip.send_audio(data)
        self._queued_ms += len(data) // self.media_format.bytes_per_ms
        self._unacked.append((self._queued_ms, end_ms))
        if self._subscription is None:
            self._clock = self.sip.clock
            self._subscription = self._clock.subscribe(self._check_sent, order=RtpEndpoint.clock_order + 1)

    def _check_sent(self, _tick_ms: int) -> None:
        sent = self.sip.sent_ms
        last: int | None = None
        while self._unacked and self._unacked[0][0] <= sent:
            last = self._unacked.popleft()[1]
        if last is not None:
            if self._call is not None:
                self._call._leg_played(last)
        elif not self._unacked:
            # Idle after a tick with nothing to report, not on the tick that reported the last
            # audio: while a stream goes on its next frame comes in the next tick, and subscribing
            # again from inside that tick would only report it a tick later.
            self._stop_acks()

    def _stop_acks(self) -> None:
        if self._subscription is not None and self._clock is not None:
            self._clock.unsubscribe(self._subscription)
        self._subscription = None
        self._clock = None

    def clear_audio(self) -> None:
        self._check_sent(0)
        self.sip.clear_audio()
        self._unacked.clear()
        self._queued_ms = self.sip.sent_ms
        self._stop_acks()

    def send_digits(self, digits: str) -> None:
        self.sip.send_dtmf(digits)


class CarrierLeg:
    """A carrier media stream (Twilio Media Streams, VoxEngine WebSocket format). The carrier answered
    the call before the stream started; playout reports are Twilio's mark echoes."""

    def __init__(self, stream: CarrierStream) -> None:
        self.stream = stream
        self.media_format = stream.media_format
        self.reports_playout = stream.kind == "twilio"
        self.playout_batch_ms = stream.playout_batch_ms
        self._call: Call | None = None

    def attach(self, call: Call) -> None:
        self._call = call
        self.stream.on_audio = call._leg_audio
        self.stream.on_dtmf = call._leg_tone
        self.stream.on_acknowledged = self._acknowledged
        background(self._watch(call), name=f"carrier-{self.stream.stream_id}")

    async def _watch(self, call: Call) -> None:
        await self.stream.wait_closed()
        call._leg_disconnected(self.stream.close_reason or "stream closed", "remote")

    def _acknowledged(self, position_ms: int, source_ms: int | None) -> None:
        if source_ms is not None and self._call is not None:
            self._call._leg_played(source_ms)

    def answer(self, headers: Mapping[str, str] | None) -> None:
        assert self._call is not None
        asyncio.get_running_loop().call_soon(self._call._leg_connected)

    def reject(self, code: int, headers: Mapping[str, str] | None) -> None:
        background(self.stream.close(1000, f"rejected {code}"), name=f"reject-{self.stream.stream_id}")

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        background(self.stream.close(1000, "hangup"), name=f"hangup-{self.stream.stream_id}")

    def send_audio(self, data: bytes, end_ms: int) -> None:
        self.stream.send_audio(data, source_ms=end_ms)

    def clear_audio(self) -> None:
        self.stream.clear()

    def send_digits(self, digits: str) -> None:
        raise RuntimeError(f"{self.stream.kind} media streams cannot send DTMF")


class OutboundSipLeg(SipLeg):
    """The leg of ``VoxEngine.call_sip``: the Call exists at once, the INVITE goes out in the background
    (the RTP socket must be opened first); commands given before then are applied when it is sent."""

    def __init__(self, placing: Awaitable[SipCallLeg]) -> None:
        self._placing = placing
        self._pending_hangup = False
        self.sip = None  # type: ignore[assignment]
        self._call = None
        self._clock = None
        self._unacked = deque()
        self._queued_ms = 0
        self._subscription = None

    @property
    def media_format(self) -> AudioFormat:
        return PCMU_8K if self.sip is None else super().media_format

    def attach(self, call: Call) -> None:
        self._call = call

        def failed(exc: BaseException) -> None:
            call._leg_failed(getattr(exc, "status", None) or 500, f"call could not be placed: {exc}")

        background(self._place(call), name="call-sip", on_error=failed)

    async def _place(self, call: Call) -> None:
        self.sip = await self._placing
        super().attach(call)
        if self._pending_hangup:
            self.sip.hangup()

    def answer(self, headers: Mapping[str, str] | None) -> None:
        raise RuntimeError("an outbound call is answered by the callee, not by the scenario")

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        if self.sip is None:
            self._pending_hangup = True
        else:
            super().hangup(headers)

    def send_audio(self, data: bytes, end_ms: int) -> None:
        if self.sip is not None:
            super().send_audio(data, end_ms)

    def clear_audio(self) -> None:
        if self.sip is not None:
            super().clear_audio()
