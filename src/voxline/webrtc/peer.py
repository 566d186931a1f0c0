"""The aiortc I/O of one WebRTC call: its ``RTCPeerConnection``, the incoming track read into
``InboundAudio``, the outgoing track fed by ``OutboundAudio``, and the ``voxline`` data channel
(DTMF and hang-up from the page). The only module of voxline that imports aiortc, av or aioice.

ICE is non-trickle: ``answer_offer`` returns once every local candidate is gathered and in the
answer. Which host addresses aioice gathers is process-wide (``use_host_addresses``): aioice has no
per-connection setting and leaves 127.0.0.1 out, which a loopback-only listener needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import aioice.ice
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .._tasks import background
from ..audio import PCM16_24K, Frame
from ..media.clock import MediaClock
from .audio import OPUS_RATE, OPUS_SAMPLES, InboundAudio, OutboundAudio
from .feed import EventFeed

__all__ = ["OutgoingTrack", "WebRtcPeer", "answer_offer", "ice_servers", "use_host_addresses"]

log = logging.getLogger("voxline.webrtc")

_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
_DEFAULT_HOST_ADDRESSES = aioice.ice.get_host_addresses
_DTMF = frozenset("0123456789*#ABCD")


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """The addresses aioice gathers host candidates on, for every connection of this process
    (None: aioice's own choice, every interface but loopback)."""
    if addresses is None:
        aioice.ice.get_host_addresses = _DEFAULT_HOST_ADDRESSES
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses


def ice_servers(urls: Sequence[str], username: str | None = None, credential: str | None = None) -> list[Any]:
    """STUN/TURN servers for aiortc (an empty list: none, not aiortc's default public STUN server)."""
    return [RTCIceServer(urls=url, username=username, credential=credential) for url in urls]


class OutgoingTrack(MediaStreamTrack):
    """The audio voxline sends: each ``recv()`` (aiortc's sender asking for the next frame) waits
    for the media clock to make a frame due and takes it from ``OutboundAudio``, which counts it
    as handed over."""

    kind = "audio"

    def __init__(self, clock: MediaClock) -> None:
        super().__init__()
        self._wakeup = asyncio.Event()
        self.audio = OutboundAudio(clock, self._wakeup.set)
        self._pts = 0
        self.handed_frames = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self.audio.start()
        while not self.audio.due:
            self._wakeup.clear()
            await self._wakeup.wait()
            if self.readyState != "live":
                raise MediaStreamError
        data, _ = self.audio.take()
        samples = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        self._pts += OPUS_SAMPLES
        self.handed_frames += 1
        return frame

    def stop(self) -> None:
        self.audio.close()
        super().stop()
        self._wakeup.set()


class WebRtcPeer:
    """One browser (or aiortc) peer's call. What the runtime's leg uses:

    - ``on_audio(frame)``: the caller's 20 ms frames (PCM16 24 kHz); ``on_dtmf(digit)``;
    - ``capture(data, end_ms)``, ``clear()``, ``played_ms``: the model audio out;
    - ``closed`` (an ``asyncio.Event``), ``close_reason``, ``closed_by`` (``local``/``remote``),
      ``close(reason)``;
    - ``feed``: the events the call's page is shown (``EventFeed``).
    """

    media_format = PCM16_24K

    def __init__(self, pc: RTCPeerConnection, clock: MediaClock, resource_id: str | None = None) -> None:
        self.id = resource_id or secrets.token_urlsafe(16)
        self.pc = pc
        self.on_audio: Callable[[Frame], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.feed = EventFeed()
        self.track = OutgoingTrack(clock)
        self.track.audio.on_talkspurt = lambda: self.feed.publish("audio.started")
        self.inbound = InboundAudio(self._caller_audio)
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.closed_by = "remote"
        self.answer_sdp = ""
        self.remote: str | None = None
        self._channel: RTCDataChannel | None = None
        self._reader: asyncio.Task[None] | None = None
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    def __repr__(self) -> str:
        return f"<WebRtcPeer {self.id} {self.pc.connectionState}>"

    # -- model audio out -------------------------------------------------------------------------------

    def capture(self, data: bytes, end_ms: int) -> None:
        self.track.audio.capture(data, end_ms)

    def clear(self) -> None:
        self.track.audio.clear()

    @property
    def played_ms(self) -> int | None:
        return self.track.audio.played_ms

    def send_dtmf(self, digits: str) -> None:
        """Digits to the page, as data channel messages (the page plays or shows them)."""
        for digit in digits:
            self._send({"type": "dtmf", "digit": digit})

    # -- the caller's side -----------------------------------------------------------------------------

    def _caller_audio(self, frame: Frame) -> None:
        if self.on_audio is not None:
            self.on_audio(frame)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._reader is not None:
            return
        self._reader = background(self._read(track), name=f"webrtc-in-{self.id}")

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            if not isinstance(frame, AudioFrame):
                continue
            if frame.sample_rate != OPUS_RATE:
                log.info("%r: ignoring audio at %d Hz (Opus is 48 kHz)", self, frame.sample_rate)
                continue
            data = frame.to_ndarray().tobytes()
            self.inbound.push(data, len(frame.layout.channels) if frame.format.is_packed else 1)
        if not self.closed.is_set():
            await self.close("media ended", by="remote")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("message", self._on_message)

    def _on_message(self, message: str | bytes) -> None:
        """``{"type": "dtmf", "digit": "5"}`` or ``{"type": "hangup"}``; anything else is logged once."""
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            data = None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "dtmf" and isinstance(data, dict):
            digit = str(data.get("digit", "")).upper()
            if len(digit) == 1 and digit in _DTMF:
                if self.on_dtmf is not None:
                    self.on_dtmf(digit)
                return
        elif kind == "hangup":
            background(self.close("hangup", by="remote"), name=f"webrtc-hangup-{self.id}")
            return
        log.info("%r: ignoring a data channel message that is not dtmf or hangup", self)

    def _send(self, message: dict[str, Any]) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(message))

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("%r: connection %s", self, state)
        if state in ("failed", "closed") and not self.closed.is_set():
            background(self.close(f"connection {state}", by="remote"), name=f"webrtc-state-{self.id}")

    # -- ending ----------------------------------------------------------------------------------------

    async def close(self, reason: str = "hangup", *, by: str = "local") -> None:
        """End the call (idempotent): the page is told, the peer connection closed."""
        if self.closed.is_set():
            return
        self.close_reason, self.closed_by = reason, by
        out = self.track.audio
        log.info(
            "%r ended (%s, by %s): %d frames in, %d out (%d of them silence)",
            self,
            reason,
            by,
            self.inbound.frames_in,
            out.frames_out + out.silence_out,
            out.silence_out,
        )
        self.feed.publish("call.ended", reason=reason, by=by)
        self.feed.end()
        self.closed.set()
        if by == "local":
            self._send({"type": "hangup", "reason": reason})
        self.track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()


async def answer_offer(
    offer_sdp: str,
    *,
    clock: MediaClock,
    servers: Sequence[Any] = (),
    gather_timeout_s: float = 10.0,
) -> WebRtcPeer:
    """A peer for ``offer_sdp`` with its answer (``peer.answer_sdp``), every candidate gathered.

    Raises ``ValueError`` for an offer aiortc cannot answer (no common codec, a malformed line).
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=list(servers)))
    peer = WebRtcPeer(pc, clock)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise ValueError("the offer has no audio section")
        audio[0].setCodecPreferences(opus)
        audio[0].direction = "sendrecv"
        pc.addTrack(peer.track)
        answer = await pc.createAnswer()
        # Non-trickle ICE: setLocalDescription returns with every candidate gathered.
        await asyncio.wait_for(pc.setLocalDescription(answer), gather_timeout_s)
    except Exception as exc:
        await pc.close()
        if isinstance(exc, TimeoutError):
            raise ValueError(f"gathering ICE candidates took over {gather_timeout_s:g} s") from None
        raise ValueError(f"cannot answer the offer: {exc}") from exc
    peer.answer_sdp = pc.localDescription.sdp
    return peer
