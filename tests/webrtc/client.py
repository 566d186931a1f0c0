"""A WebRTC caller for the tests: an aiortc peer that POSTs its offer to voxline's signaling
endpoint, plays PCM to it and records what it receives (what a browser would do, minus the browser)."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from voxline.webrtc.peer import use_host_addresses

RATE = 48000
SAMPLES = 960


class PcmTrack(MediaStreamTrack):
    """Plays mono PCM16 48 kHz samples in 20 ms frames, paced by the loop, then silence."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray | None = None) -> None:
        super().__init__()
        self.pcm = pcm if pcm is not None else np.zeros(0, dtype=np.int16)
        self._pos = 0
        self._start: float | None = None
        self._pts = 0

    def play(self, pcm: np.ndarray) -> None:
        self.pcm = np.concatenate([self.pcm[: self._pos], pcm]).astype(np.int16)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = self.pcm[self._pos : self._pos + SAMPLES]
        self._pos += chunk.size
        if chunk.size < SAMPLES:
            chunk = np.concatenate([chunk, np.zeros(SAMPLES - chunk.size, dtype=np.int16)])
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += SAMPLES
        return frame


class WebRtcCaller:
    """``await caller.call(url)``; ``received`` is the decoded audio (mono int16 at 48 kHz)."""

    def __init__(self, pcm: np.ndarray | None = None, token: str | None = "test-token") -> None:
        use_host_addresses(["127.0.0.1"])  # no traffic but loopback's
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = PcmTrack(pcm)
        self.pc.addTrack(self.track)
        self.channel = self.pc.createDataChannel("voxline")
        self.messages: list[dict[str, Any]] = []
        self.channel.on("message", lambda m: self.messages.append(json.loads(m)))
        self.token = token
        self.chunks: list[np.ndarray] = []
        self.location: str | None = None
        self.base: str | None = None
        self.ended = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.ensure_future(self._read(track))

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.ended.set()

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.ended.set()
                return
            samples = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            if channels > 1:
                samples = samples.reshape(-1, channels)[:, 0]
            self.chunks.append(samples.astype(np.int16))

    @property
    def received(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)

    async def call(self, url: str) -> aiohttp.ClientResponse:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        self.base = url.split("/webrtc")[0]
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/sdp", **self._headers()}
            async with http.post(url, data=self.pc.localDescription.sdp, headers=headers) as response:
                body = await response.text()
                if response.status == 201:
                    self.location = response.headers["Location"]
                    await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
                return response

    async def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            if time.monotonic() > deadline:
                raise AssertionError(f"not connected after {timeout} s: {self.pc.connectionState}")
            await asyncio.sleep(0.02)

    async def delete(self) -> int:
        assert self.base is not None and self.location is not None
        async with (
            aiohttp.ClientSession() as http,
            http.delete(self.base + self.location, headers=self._headers()) as response,
        ):
            return response.status

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()


def voiced_span_ms(samples: np.ndarray, level: int = 2000, gap_ms: int = 40) -> tuple[float, float] | None:
    """Where the first stretch of audio louder than ``level`` starts and ends (it ends at the first
    ``gap_ms`` without a loud sample), in ms of the recording."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > level)
    if loud.size == 0:
        return None
    gaps = np.flatnonzero(np.diff(loud) > gap_ms * 48)
    last = loud[gaps[0]] if gaps.size else loud[-1]
    return loud[0] / 48, last / 48


def voiced_ms(samples: np.ndarray, level: int = 2000) -> int:
    """How many ms of the recording are louder than ``level`` (1 ms blocks), wherever they are."""
    usable = samples.size - samples.size % 48
    blocks = np.abs(samples[:usable].astype(np.int32)).reshape(-1, 48).max(axis=1)
    return int(np.count_nonzero(blocks > level))
