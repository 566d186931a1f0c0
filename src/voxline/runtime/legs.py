"""Call legs: what a SIP dialog or a carrier WebSocket stream gives a :class:`~voxline.runtime.call.Call`
(the ``CallLeg`` contract of ``voxline.runtime.call``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from .._tasks import background
from ..audio import FRAME_MS, PCMU_8K, AudioFormat
from ..carriers.stream import CarrierStream
from ..rtp import DtmfDigit
from ..sip.endpoint import SipCallLeg
from ..sip.events import (
    CallConnected,
    CallDisconnected,
    CallFailed,
    DtmfInfo,
    ReferAccepted,
    ReferEnded,
    ReferProgress,
    ReferReceived,
)

if TYPE_CHECKING:
    from ..webrtc.peer import WebRtcPeer
    from .call import LegListener

log = logging.getLogger("voxline.call")


class SipLeg:
    """A SIP dialog with its RTP stream. Audio goes straight to the RTP sender, which sends a
    talkspurt's first frame at once and the rest in the clock ticks they were produced in;
    ``played_ms`` is the sender's real send position."""

    reports_playback = True
    playout_batch_ms = FRAME_MS
    transport = "sip"

    def __init__(self, leg: SipCallLeg) -> None:
        self.sip = leg
        self._listener: LegListener | None = None

    @property
    def media_format(self) -> AudioFormat:
        # Known from the offer for inbound calls; for outbound ones the answer may change it.
        return self.sip.audio_format or PCMU_8K

    def attach(self, listener: LegListener) -> None:
        self._listener = listener
        self.sip.on_audio = listener.audio
        self.sip.add_listener(self._on_event)

    def _on_event(self, event: Any) -> None:
        listener = self._listener
        assert listener is not None
        if isinstance(event, CallConnected):
            listener.connected()
        elif isinstance(event, CallDisconnected):
            listener.disconnected(event.reason, event.by)
        elif isinstance(event, CallFailed):
            listener.failed(event.status, event.reason)
        elif isinstance(event, DtmfDigit | DtmfInfo):
            listener.tone(event.digit)
        elif isinstance(event, ReferAccepted):
            listener.transfer_accepted()
        elif isinstance(event, ReferProgress):
            listener.transfer_progress(event.status, event.reason)
        elif isinstance(event, ReferEnded):
            listener.transfer_ended(event.status, event.reason)
        elif isinstance(event, ReferReceived):
            listener.transfer_requested(event.refer_to, event.referred_by)

    def answer(self, headers: Mapping[str, str] | None) -> None:
        listener = self._listener

        def failed(exc: BaseException) -> None:
            log.warning("answering %s failed: %s", self.sip.call_id, exc)
            if listener is not None:
                listener.failed(500, f"answer failed: {exc}")

        background(self.sip.answer(), name=f"answer-{self.sip.call_id}", on_error=failed)

    def reject(self, code: int, headers: Mapping[str, str] | None) -> None:
        self.sip.reject(code)

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        self.sip.hangup()

    def capture_frame(self, data: bytes, end_ms: int) -> None:
        self.sip.send_audio(data, end_ms)

    def clear_buffer(self) -> None:
        self.sip.clear_audio()

    def flush(self) -> None:
        """Nothing to do: the RTP sender holds at most the frame of the next slot."""

    def played_ms(self) -> int | None:
        return self.sip.played_ms

    def send_digits(self, digits: str) -> None:
        self.sip.send_dtmf(digits)

    # A TransferLeg (voxline.runtime.call): REFER both ways.
    def transfer(self, target: str, headers: Mapping[str, str] | None, timeout: float) -> None:
        self.sip.transfer(target, headers, timeout)

    def accept_transfer(self) -> None:
        self.sip.accept_refer()

    def reject_transfer(self, code: int) -> None:
        self.sip.reject_refer(code)

    def report_transfer(self, code: int, reason: str | None) -> None:
        self.sip.notify_refer(code, reason)


class CarrierLeg:
    """A carrier media stream (Twilio Media Streams, VoxEngine WebSocket format). The carrier answered
    the call before the stream started; what was played is the stream's ``heard_ms()``: Twilio's last
    mark echo plus the time played since, capped at the next mark (``voxline.carriers.twilio``)."""

    def __init__(self, stream: CarrierStream) -> None:
        self.stream = stream
        self.media_format = stream.media_format
        self.reports_playback = stream.kind == "twilio"
        self.playout_batch_ms = stream.playout_batch_ms
        self.transport: str = stream.kind
        self._listener: LegListener | None = None

    def attach(self, listener: LegListener) -> None:
        self._listener = listener
        self.stream.on_audio = listener.audio
        self.stream.on_dtmf = listener.tone
        background(self._watch(listener), name=f"carrier-{self.stream.stream_id}")

    async def _watch(self, listener: LegListener) -> None:
        await self.stream.wait_closed()
        listener.disconnected(self.stream.close_reason or "stream closed", "remote")

    def answer(self, headers: Mapping[str, str] | None) -> None:
        listener = self._listener
        assert listener is not None
        asyncio.get_running_loop().call_soon(listener.connected)

    def reject(self, code: int, headers: Mapping[str, str] | None) -> None:
        background(self.stream.close(1000, f"rejected {code}"), name=f"reject-{self.stream.stream_id}")

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        background(self.stream.close(1000, "hangup"), name=f"hangup-{self.stream.stream_id}")

    def capture_frame(self, data: bytes, end_ms: int) -> None:
        self.stream.send_audio(data, source_ms=end_ms)

    def clear_buffer(self) -> None:
        self.stream.clear()

    def flush(self) -> None:
        """Nothing to do: the stream marks the tail of an utterance itself."""

    def played_ms(self) -> int | None:
        """The source position the caller has heard up to (None: not known, or never reported)."""
        heard = self.stream.heard_ms() if self.reports_playback else None
        return None if heard is None else heard.source_ms

    def send_digits(self, digits: str) -> None:
        raise RuntimeError(f"{self.stream.kind} media streams cannot send DTMF")

    # A TransferLeg that refuses: the carrier holds the SIP dialog, and its media stream has no way
    # to ask it to transfer (nor does a REFER ever reach us through it).
    def transfer(self, target: str, headers: Mapping[str, str] | None, timeout: float) -> None:
        raise RuntimeError(
            f"a {self.stream.kind} media stream cannot transfer its call: the carrier holds the call; "
            "transfer it with the carrier's API (Twilio: update the call with <Dial> TwiML)"
        )

    def accept_transfer(self) -> None:
        self.transfer("", None, 0)

    def reject_transfer(self, code: int) -> None:
        self.transfer("", None, 0)

    def report_transfer(self, code: int, reason: str | None) -> None:
        self.transfer("", None, 0)


class OutboundSipLeg(SipLeg):
    """The leg of ``VoxEngine.call_sip``: the Call exists at once, the INVITE goes out in the background
    (the RTP socket must be opened first); commands given before then are applied when it is sent."""

    def __init__(self, placing: Awaitable[SipCallLeg]) -> None:
        self._placing = placing
        self._pending_hangup = False
        self.sip = None  # type: ignore[assignment]
        self._listener = None

    @property
    def media_format(self) -> AudioFormat:
        return PCMU_8K if self.sip is None else super().media_format

    def attach(self, listener: LegListener) -> None:
        self._listener = listener

        def failed(exc: BaseException) -> None:
            listener.failed(getattr(exc, "status", None) or 500, f"call could not be placed: {exc}")

        background(self._place(listener), name="call-sip", on_error=failed)

    async def _place(self, listener: LegListener) -> None:
        self.sip = await self._placing
        super().attach(listener)
        if self._pending_hangup:
            self.sip.hangup()

    def answer(self, headers: Mapping[str, str] | None) -> None:
        raise RuntimeError("an outbound call is answered by the callee, not by the scenario")

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        if self.sip is None:
            self._pending_hangup = True
        else:
            super().hangup(headers)

    def capture_frame(self, data: bytes, end_ms: int) -> None:
        if self.sip is not None:
            super().capture_frame(data, end_ms)

    def clear_buffer(self) -> None:
        if self.sip is not None:
            super().clear_buffer()

    def played_ms(self) -> int | None:
        return None if self.sip is None else super().played_ms()


class WebRtcLeg:
    """A WebRTC peer (``voxline.webrtc.peer``): Opus 48 kHz on the wire, the model's 24 kHz PCM16
    here. ``played_ms`` is where the audio the outgoing track handed to aiortc's sender ends."""

    reports_playback = True
    playout_batch_ms = FRAME_MS
    transport = "webrtc"

    def __init__(self, peer: WebRtcPeer) -> None:
        self.peer = peer
        self.media_format = peer.media_format
        self._listener: LegListener | None = None

    def attach(self, listener: LegListener) -> None:
        self._listener = listener
        self.peer.on_audio = listener.audio
        self.peer.on_dtmf = listener.tone
        background(self._watch(listener), name=f"webrtc-{self.peer.id}")

    async def _watch(self, listener: LegListener) -> None:
        await self.peer.closed.wait()
        listener.disconnected(self.peer.close_reason or "closed", self.peer.closed_by)

    def answer(self, headers: Mapping[str, str] | None) -> None:
        listener = self._listener
        assert listener is not None
        asyncio.get_running_loop().call_soon(listener.connected)

    def reject(self, code: int, headers: Mapping[str, str] | None) -> None:
        background(self.peer.close(f"rejected {code}"), name=f"reject-{self.peer.id}")

    def hangup(self, headers: Mapping[str, str] | None) -> None:
        background(self.peer.close("hangup"), name=f"hangup-{self.peer.id}")

    def capture_frame(self, data: bytes, end_ms: int) -> None:
        self.peer.capture(data, end_ms)

    def clear_buffer(self) -> None:
        self.peer.clear()

    def flush(self) -> None:
        """Nothing to do: the track sends silence when the audio runs out."""

    def played_ms(self) -> int | None:
        return self.peer.played_ms

    def send_digits(self, digits: str) -> None:
        self.peer.send_dtmf(digits)
