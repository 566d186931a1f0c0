"""Load generator: simulated callers on loopback, Twilio Media Streams over WebSocket or SIP/RTP.

One process, one asyncio loop, many callers (the bench starts several processes). Every caller
streams μ-law in 20 ms frames in real time: quiet noise, with a 400 ms tone "utterance" twice per
6 s cycle (at 0 s, and at 2 s -- while the answer to the first is still playing, so the second one
is a barge-in). The callers' frame sends are spread over ten 2 ms slots per 20 ms, like independent
calls would be, instead of all at once.

What a caller measures (``time.monotonic_ns()``, system-wide on Linux, so comparable with the fake
server's stamps):

- ``onsets``: when it sent the frame where a tone starts;
- ``heard``: when it received the first loud frame of an answer (after quiet, a gap or a ``clear``);
- ``clears`` (Twilio ``clear``) and ``stops`` (RTP: the first quiet packet after loud ones);
- outbound timing, a frame's *lateness*; a frame more than ``LATE_MS`` late would have underrun a
  40 ms jitter buffer: a *late frame*. Gaps are the times between consecutive frames.
  - Twilio: like Twilio's player, which plays what it was sent back to back: lateness is how long
    the player had run dry when a message came (0 while it still had audio). Messages of any length
    (20 ms paced, 100 ms batches, whole answers at once) are judged alike. Talkspurts end after a
    ``clear`` or 300 ms without media.
  - RTP, played by timestamp: due times are ``anchor + timestamp``, with the anchor the earliest the
    stream has shown (so a late first packet does not hide later ones); lateness is how far after
    its due time a packet came. The streams are continuous (voxline sends silence between answers),
    so they are one talkspurt (re-anchored on an SSRC change); lost packets are sequence-number gaps.

A Twilio caller behaves like Twilio's player: it echoes each ``mark`` once the audio queued before it
would have played, and echoes pending marks at once on ``clear``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import math
import os
import random
import signal
import struct
import time
from collections import Counter, deque
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

FRAME_MS = 20
FRAME_NS = 20_000_000
SLOTS = 10  # send slots per frame period (2 ms apart)
CYCLE_FRAMES = 300  # 6 s
TONE_AT = (0, 100)  # frames into the cycle where an utterance starts
TONE_FRAMES = 20  # 400 ms
FIRST_TONE_FRAME = 50  # no utterance in the first second (session setup)
LATE_MS = 40.0
SPURT_END_NS = 300_000_000


def _ulaw_encode_sample(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


# μ-law byte -> 1 when its magnitude is loud (about > 2000 of 32767), else 0; ``translate`` + ``max``.
LOUD = bytes(1 if ((~b) & 0x7F) >= 0x48 else 0 for b in range(256))


def is_loud(payload: bytes) -> bool:
    return max(payload.translate(LOUD), default=0) == 1


def make_frames(seed: int) -> tuple[list[bytes], list[bytes]]:
    """(noise frames, tone frames): 50 frames of quiet noise (about -50 dBFS) and the 20 tone frames."""
    rng = random.Random(seed)
    noise = [bytes(_ulaw_encode_sample(rng.randint(-120, 120)) for _ in range(160)) for _ in range(50)]
    tone = []
    for f in range(TONE_FRAMES):
        tone.append(
            bytes(
                _ulaw_encode_sample(int(12000 * math.sin(2 * math.pi * 1000 * (f * 160 + i) / 8000)))
                for i in range(160)
            )
        )
    return noise, tone


class Histogram:
    """Counts in 0.1 ms bins: percentiles merge across processes."""

    def __init__(self) -> None:
        self.bins: Counter[int] = Counter()

    def add(self, ms: float) -> None:
        self.bins[int(ms * 10 + 0.5)] += 1


class Stats:
    def __init__(self) -> None:
        self.lateness = Histogram()
        self.gap = Histogram()
        self.frames = 0
        self.late = 0
        self.lost = 0
        self.window: tuple[int, int] = (0, 0)

    def in_window(self, now: int) -> bool:
        return self.window[0] <= now <= self.window[1]


class Caller:
    def __init__(self, index: int, name: str, start_ns: int, noise: list[bytes], tone: list[bytes]) -> None:
        self.index = index
        self.name = name
        self.start_ns = start_ns
        self.slot = index % SLOTS
        self.offset = (index * 37) % CYCLE_FRAMES
        self.noise = noise
        self.tone = tone
        self.k = 0  # frames sent
        self.active = False
        self.done = False
        self.onsets: list[int] = []
        self.heard: list[int] = []
        self.clears: list[int] = []
        self.stops: list[int] = []
        self.errors: list[str] = []
        self.received = 0
        self.connected_ns = 0
        # outbound timing
        self.last_arrival = 0
        self.anchor = 0
        self.loud = False

    def frame(self) -> tuple[bytes, bool]:
        """The next frame's payload and whether a tone starts in it."""
        k = self.k
        self.k += 1
        if k >= FIRST_TONE_FRAME:
            pos = (k + self.offset) % CYCLE_FRAMES
            for at in TONE_AT:
                if at <= pos < at + TONE_FRAMES:
                    return self.tone[pos - at], pos == at
        return self.noise[k % len(self.noise)], False

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "onsets": self.onsets,
            "heard": self.heard,
            "clears": self.clears,
            "stops": self.stops,
            "frames_sent": self.k,
            "frames_received": self.received,
            "connected_ns": self.connected_ns,
            "errors": self.errors[:5],
        }

    def timing(self, stats: Stats, now: int, due_ms: float, new_spurt: bool) -> None:
        """Outbound timing of a frame at ``due_ms`` of audio into its talkspurt."""
        if new_spurt:
            self.anchor = now
            self.last_arrival = now
            return
        gap = now - self.last_arrival
        self.last_arrival = now
        due = self.anchor + int(due_ms * 1_000_000)
        if now < due:
            self.anchor -= due - now
            due = now
        if stats.in_window(now):
            late_ms = (now - due) / 1e6
            stats.frames += 1
            stats.lateness.add(late_ms)
            stats.gap.add(gap / 1e6)
            if late_ms > LATE_MS:
                stats.late += 1


class TwilioCaller(Caller):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ws: ClientConnection | None = None
        self.sid = f"MZ{self.index:032x}"
        self.play_end = 0
        self.marks: deque[tuple[int, str]] = deque()
        self.seq = 0

    def underrun(self, stats: Stats, now: int) -> None:
        """Outbound timing of a Twilio message: how long the player had run dry when it came."""
        gap = now - self.last_arrival
        self.last_arrival = now
        if stats.in_window(now):
            late_ms = max(0, now - self.play_end) / 1e6
            stats.frames += 1
            stats.lateness.add(late_ms)
            stats.gap.add(gap / 1e6)
            if late_ms > LATE_MS:
                stats.late += 1

    async def open(self, url: str, stats: Stats) -> None:
        self.ws = ws = await connect(url, compression=None, max_queue=None, ping_interval=None)
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.sid,
                "callSid": f"CA{self.index:032x}",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"From": self.name, "To": "bench"},
            },
            "streamSid": self.sid,
        }
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps(start))
        self.seq = 1
        self.connected_ns = time.monotonic_ns()
        self.active = True
        asyncio.get_running_loop().create_task(self.read(ws, stats))

    async def read(self, ws: ClientConnection, stats: Stats) -> None:
        try:
            async for message in ws:
                now = time.monotonic_ns()
                event = json.loads(message)
                kind = event.get("event")
                if kind == "media":
                    payload = base64.b64decode(event["media"]["payload"])
                    self.received += 1
                    duration = len(payload) / 8
                    new_spurt = not self.last_arrival or now - self.last_arrival > SPURT_END_NS
                    if new_spurt:
                        self.loud = False
                        self.last_arrival = now
                    else:
                        self.underrun(stats, now)
                    loud = is_loud(payload)
                    if loud and not self.loud:
                        self.heard.append(now)
                    self.loud = loud
                    self.play_end = max(self.play_end, now) + int(duration * 1_000_000)
                elif kind == "mark":
                    name = event["mark"]["name"]
                    if self.play_end <= now:
                        await self.echo(name)
                    else:
                        self.marks.append((self.play_end, name))
                elif kind == "clear":
                    self.clears.append(now)
                    self.last_arrival = 0
                    self.loud = False
                    self.play_end = now
                    while self.marks:
                        await self.echo(self.marks.popleft()[1])
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bench bug must show, not hang the caller
            self.errors.append(repr(exc))
        finally:
            self.active = False

    async def echo(self, name: str) -> None:
        assert self.ws is not None
        self.seq += 1
        await self.ws.send(
            f'{{"event":"mark","sequenceNumber":"{self.seq}","streamSid":"{self.sid}","mark":{{"name":"{name}"}}}}'
        )

    async def send_frame(self, now: int) -> None:
        ws = self.ws
        assert ws is not None
        payload, onset = self.frame()
        self.seq += 1
        k = self.k
        text = (
            f'{{"event":"media","sequenceNumber":"{self.seq}","media":{{"track":"inbound","chunk":"{k}",'
            f'"timestamp":"{(k - 1) * FRAME_MS}","payload":"{base64.b64encode(payload).decode()}"}},'
            f'"streamSid":"{self.sid}"}}'
        )
        if onset:
            self.onsets.append(time.monotonic_ns())
        await ws.send(text)
        while self.marks and self.marks[0][0] <= now:
            await self.echo(self.marks.popleft()[1])

    async def close(self) -> None:
        if self.ws is None:
            return
        self.seq += 1
        stop = {
            "event": "stop",
            "sequenceNumber": str(self.seq),
            "streamSid": self.sid,
            "stop": {"accountSid": "AC" + "0" * 32, "callSid": f"CA{self.index:032x}"},
        }
        try:
            await self.ws.send(json.dumps(stop))
            await asyncio.wait_for(self.ws.close(), 2)
        except (ConnectionClosed, TimeoutError, OSError):
            pass


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, caller: RtpCaller, stats: Stats) -> None:
        self.caller = caller
        self.stats = stats

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.caller.on_rtp(data, self.stats)


class RtpCaller(Caller):
    """A SIP/UDP caller with its own RTP socket (a minimal UAC: INVITE, ACK, BYE, 200 to requests)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.call_id = f"bench-{self.index}-{random.getrandbits(32):08x}@127.0.0.1"
        self.tag = f"{random.getrandbits(32):08x}"
        self.to_tag = ""
        self.contact = ""
        self.answered: asyncio.Future[str] | None = None
        self.rx_ssrc: int | None = None
        self.rx_seq = 0
        self.rx_ts0 = 0
        # --srtp: SDES keys (RTP/SAVP, AES_CM_128_HMAC_SHA1_80), one libsrtp session per direction.
        self.srtp_key = os.urandom(30)
        self.srtp_tx: Any = None
        self.srtp_rx: Any = None

    def start_srtp(self, answer_sdp: str) -> None:
        import pylibsrtp

        for line in answer_sdp.splitlines():
            if line.startswith("a=crypto:") and "AES_CM_128_HMAC_SHA1_80" in line:
                their_key = base64.b64decode(line.split("inline:", 1)[1].split("|")[0].strip())
                break
        else:
            raise RuntimeError("the SRTP answer has no AES_CM_128_HMAC_SHA1_80 key")
        policy = pylibsrtp.Policy
        self.srtp_tx = pylibsrtp.Session(policy(key=self.srtp_key, ssrc_type=policy.SSRC_ANY_OUTBOUND))
        self.srtp_rx = pylibsrtp.Session(policy(key=their_key, ssrc_type=policy.SSRC_ANY_INBOUND))

    async def open_rtp(self, stats: Stats) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(self, stats), local_addr=("127.0.0.1", 0)
        )
        self.transport = transport
        port: int = transport.get_extra_info("sockname")[1]
        return port

    def on_rtp(self, data: bytes, stats: Stats) -> None:
        if len(data) < 12:
            return
        if self.srtp_rx is not None:
            try:
                data = self.srtp_rx.unprotect(data)
            except Exception:
                self.errors.append("SRTP unprotect failed")
                return
        now = time.monotonic_ns()
        _, _, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        payload = data[12:]
        self.received += 1
        if ssrc != self.rx_ssrc:
            self.rx_ssrc, self.rx_ts0 = ssrc, ts
            self.timing(stats, now, 0.0, True)
        else:
            expected = (self.rx_seq + 1) & 0xFFFF
            if seq != expected and stats.in_window(now):
                stats.lost += (seq - expected) & 0xFFFF if ((seq - expected) & 0xFFFF) < 1000 else 0
            self.timing(stats, now, ((ts - self.rx_ts0) & 0xFFFFFFFF) / 8, False)
        self.rx_seq = seq
        loud = is_loud(payload)
        if loud and not self.loud:
            self.heard.append(now)
        elif self.loud and not loud:
            self.stops.append(now)
        self.loud = loud

    def send_frame(self, now: int) -> None:
        if self.transport is None or self.remote is None:
            return
        payload, onset = self.frame()
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        packet = struct.pack("!BBHII", 0x80, 0, self.seq, self.ts, self.ssrc) + payload
        if onset:
            self.onsets.append(time.monotonic_ns())
        if self.srtp_tx is not None:
            packet = self.srtp_tx.protect(packet)
        self.transport.sendto(packet, self.remote)


class SipClient(asyncio.DatagramProtocol):
    """One SIP socket per process: sends INVITE/ACK/BYE for its callers, answers requests with 200."""

    def __init__(self, target: tuple[str, int], srtp: bool = False) -> None:
        self.target = target
        self.srtp = srtp
        self.calls: dict[str, RtpCaller] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def _via(self) -> str:
        return f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{random.getrandbits(48):012x};rport"

    def invite(self, caller: RtpCaller, rtp_port: int) -> None:
        assert self.transport is not None
        self.calls[caller.call_id] = caller
        proto = "RTP/SAVP" if self.srtp else "RTP/AVP"
        sdp = (
            f"v=0\r\no=- {caller.index} 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        )
        if self.srtp:
            key = base64.b64encode(caller.srtp_key).decode()
            sdp += f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        host, port = self.target
        msg = (
            f"INVITE sip:bench@{host}:{port} SIP/2.0\r\n{self._via()}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{caller.name}@127.0.0.1>;tag={caller.tag}\r\nTo: <sip:bench@{host}>\r\n"
            f"Call-ID: {caller.call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:{caller.name}@127.0.0.1:{self.port}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        self.transport.sendto(msg.encode(), self.target)

    def _request(self, caller: RtpCaller, method: str, cseq: int) -> None:
        assert self.transport is not None
        host, port = self.target
        uri = caller.contact or f"sip:bench@{host}:{port}"
        msg = (
            f"{method} {uri} SIP/2.0\r\n{self._via()}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{caller.name}@127.0.0.1>;tag={caller.tag}\r\n"
            f"To: <sip:bench@{host}>;tag={caller.to_tag}\r\nCall-ID: {caller.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
        self.transport.sendto(msg.encode(), self.target)

    def bye(self, caller: RtpCaller) -> None:
        if caller.to_tag:
            self._request(caller, "BYE", 2)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        text = data.decode(errors="replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        call_id = headers.get("call-id", headers.get("i", ""))
        caller = self.calls.get(call_id)
        if lines[0].startswith("SIP/2.0"):
            status = int(lines[0].split()[1])
            cseq = headers.get("cseq", "")
            if caller is None or not cseq.endswith("INVITE"):
                return
            if status >= 200:
                to = headers.get("to", headers.get("t", ""))
                if ";tag=" in to:
                    caller.to_tag = to.split(";tag=", 1)[1].split(";")[0]
                contact = headers.get("contact", headers.get("m", ""))
                if "<" in contact:
                    caller.contact = contact.split("<", 1)[1].split(">", 1)[0]
                self._request(caller, "ACK", 1)
                if caller.answered is not None and not caller.answered.done():
                    if status < 300:
                        caller.answered.set_result(body)
                    else:
                        caller.answered.set_exception(RuntimeError(f"INVITE answered {status}"))
            return
        # A request (BYE, OPTIONS, re-INVITE): 200 OK
        assert self.transport is not None
        keep = [
            line
            for line in lines[1:]
            if line.split(":", 1)[0].strip().lower()
            in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
        ]
        reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
        self.transport.sendto(reply.encode(), addr)
        if lines[0].startswith("BYE") and caller is not None:
            caller.errors.append("BYE from the server")
            caller.active = False


def parse_sdp_audio(body: str) -> tuple[str, int]:
    host, port = "127.0.0.1", 0
    for line in body.splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[-1]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return host, port


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    noise, tone = make_frames(args.first_index)
    start_ns, end_ns = args.start_ns, args.end_ns
    stats = Stats()
    stats.window = (args.measure_ns, end_ns)
    callers: list[Caller] = []
    for i in range(args.count):
        g = args.first_index + i
        t0 = start_ns + int(g * args.ramp_s * 1e9 / max(1, args.total))
        cls = TwilioCaller if args.kind == "twilio" else RtpCaller
        callers.append(cls(g, f"{args.prefix}{g}", t0, noise, tone))
    sip: SipClient | None = None
    if args.kind == "rtp":
        host, _, port = args.target.rpartition(":")
        target = (host, int(port))
        _, sip_proto = await loop.create_datagram_endpoint(
            lambda: SipClient(target, args.srtp), local_addr=("127.0.0.1", 0)
        )
        sip = sip_proto

    async def join(caller: Caller) -> None:
        await asyncio.sleep(max(0.0, (caller.start_ns - time.monotonic_ns()) / 1e9))
        try:
            if isinstance(caller, TwilioCaller):
                await caller.open(args.target, stats)
            elif isinstance(caller, RtpCaller):
                assert sip is not None
                port = await caller.open_rtp(stats)
                caller.answered = loop.create_future()
                sip.invite(caller, port)
                body = await asyncio.wait_for(caller.answered, 10)
                caller.remote = parse_sdp_audio(body)
                if args.srtp:
                    caller.start_srtp(body)
                caller.connected_ns = time.monotonic_ns()
                caller.active = True
        except Exception as exc:
            import traceback

            caller.errors.append(f"join: {exc!r} {traceback.format_exc(limit=-2)}")
            caller.done = True

    joins = [loop.create_task(join(c)) for c in callers]
    by_slot: list[list[Caller]] = [[c for c in callers if c.slot == s] for s in range(SLOTS)]
    slot_ns = FRAME_NS // SLOTS
    tick = 0
    base = start_ns
    late_ticks = 0
    while True:
        due = base + tick * slot_ns
        now = time.monotonic_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            now = time.monotonic_ns()
        elif now - due > 5_000_000 and args.measure_ns <= now <= end_ns:
            late_ticks += 1
        if now >= end_ns:
            break
        for caller in by_slot[tick % SLOTS]:
            if not caller.active:
                continue
            if isinstance(caller, TwilioCaller):
                try:
                    await caller.send_frame(now)
                except (ConnectionClosed, OSError) as exc:
                    caller.errors.append(f"send: {exc!r}")
                    caller.active = False
            elif isinstance(caller, RtpCaller):
                caller.send_frame(now)
        tick += 1
    for task in joins:
        task.cancel()
    closing = []
    for caller in callers:
        caller.active = False
        if isinstance(caller, TwilioCaller):
            closing.append(caller.close())
        elif isinstance(caller, RtpCaller) and sip is not None:
            sip.bye(caller)
    if closing:
        await asyncio.gather(*closing, return_exceptions=True)
    await asyncio.sleep(0.3)
    return {
        "kind": args.kind,
        "callers": [c.summary() for c in callers],
        "lateness_bins": dict(stats.lateness.bins),
        "gap_bins": dict(stats.gap.bins),
        "frames": stats.frames,
        "late_frames": stats.late,
        "lost_packets": stats.lost,
        "late_ticks": late_ticks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="bench callers (one process)")
    parser.add_argument("--kind", choices=("twilio", "rtp"), required=True)
    parser.add_argument("--target", required=True, help="ws://HOST:PORT/twilio or HOST:PORT (SIP)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--total", type=int, required=True, help="callers over all processes")
    parser.add_argument("--prefix", default="c")
    parser.add_argument("--start-ns", type=int, required=True)
    parser.add_argument("--ramp-s", type=float, default=5.0)
    parser.add_argument("--measure-ns", type=int, required=True)
    parser.add_argument("--end-ns", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--srtp", action="store_true", help="rtp: SRTP with SDES keys (RTP/SAVP)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A load generator, not the system under test: no collector pauses in the middle of a step.
    gc.disable()
    result = asyncio.run(run(args))
    with open(args.out, "w") as f:
        json.dump(result, f)
    os._exit(0)


if __name__ == "__main__":
    main()
