"""Load generator for bench/webrtc_cost.py: N WebRTC callers (aiortc peers) in one process.

Each caller offers Opus to ``voxline run``'s ``POST /webrtc``, then streams in real time what the
bench's SIP and Twilio callers stream (quiet noise, a 400 ms tone "utterance" at 0 s and 2 s of every
6 s cycle, the second one a barge-in on the answer to the first) and decodes what it receives. Only
loopback: host candidates on 127.0.0.1, no STUN.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import time

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from voxline.webrtc.peer import use_host_addresses

RATE, SAMPLES = 48000, 960


def pattern(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(RATE * seconds)
    pcm = rng.normal(0, 60, n)
    t = np.arange(int(0.4 * RATE)) / RATE
    tone = 8000 * np.sin(2 * np.pi * 440 * t)
    for start in (0.0, 2.0):
        i = int(start * RATE)
        pcm[i : i + tone.size] += tone
    return np.clip(pcm, -32768, 32767).astype(np.int16)


class LoopTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm, self.pos, self.pts, self.start = pcm, 0, 0, time.monotonic()

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        delay = self.start + self.pts / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.pos + SAMPLES > self.pcm.size:
            self.pos = 0
        chunk = self.pcm[self.pos : self.pos + SAMPLES]
        self.pos += SAMPLES
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self.pts, fractions.Fraction(1, RATE)
        self.pts += SAMPLES
        return frame


async def caller(url: str, index: int, received: list[int], stop: asyncio.Event) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(LoopTrack(np.roll(pattern(), index * 997)))

    async def read(track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            received[index] += 1

    pc.on("track", lambda track: asyncio.ensure_future(read(track)))
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        headers = {"Content-Type": "application/sdp"}
        async with http.post(url, data=pc.localDescription.sdp, headers=headers) as response:
            assert response.status == 201, await response.text()
            location = response.headers["Location"]
            await pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))
        await stop.wait()
        async with http.delete(url.rsplit("/webrtc", 1)[0] + location):
            pass
    await pc.close()
    return location


async def run(args: argparse.Namespace) -> dict[str, object]:
    use_host_addresses(["127.0.0.1"])
    stop = asyncio.Event()
    received = [0] * args.count
    tasks = []
    for i in range(args.count):
        tasks.append(asyncio.ensure_future(caller(args.url, i, received, stop)))
        await asyncio.sleep(args.ramp_s / max(args.count, 1))
    await asyncio.sleep(max(0.0, args.end_ns / 1e9 - time.monotonic_ns() / 1e9))
    stop.set()
    await asyncio.gather(*tasks)
    return {"callers": args.count, "frames_received": received}


def main() -> None:
    parser = argparse.ArgumentParser(description="WebRTC bench callers (one process)")
    parser.add_argument("--url", required=True, help="http://HOST:PORT/webrtc")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ramp-s", type=float, default=5.0)
    parser.add_argument("--end-ns", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
