"""Seeded, bounded fuzzing of the carrier endpoints while a live call runs (issue 13, "Show").

One Twilio call streams a known prompt through the echo bridge for the whole run. Meanwhile other
sockets send a few thousand mutations of valid Twilio and VoxEngine-format messages to /twilio and
/media (byte flips, truncations, deep nesting, 1e999 and 5000-digit numbers, wrong types, missing
fields, unknown events, base64 garbage, lone surrogates, oversize, binary and non-UTF-8 frames,
media before start, a second start), and malformed HTTP requests (bad upgrades, bad credentials,
non-UTF-8 headers, webhook bodies that are not a form, headers that never end) go to the listener.

Asserted: nothing logged at ERROR or with a traceback; every fuzz socket ends with a close code the
protocol allows for bad input (or its own 1000), every malformed request gets a 4xx; the live call
comes back byte for byte and its frames reach the bridge with no gap over 60 ms; a clean stream is
accepted at the end.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import random
import string
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxline.audio import Frame
from voxline.carriers import CarrierStream
from voxline.carriers.http_guard import HttpGuard
from voxline.testing.carrier_callers import TwilioTestCaller

from .conftest import Server, ServerFactory, echo_bridge
from .test_endpoint_guards import assert_no_tracebacks
from .test_twilio_endpoint import prompt

SEED = 13
TOKEN = "fuzz-token"
LIVE_MS = 9000  # the live call; the fuzzing runs while it does
MESSAGES = 3000  # mutated messages over all fuzz sockets
WORKERS = 4  # fuzz sockets open at once
MAX_MESSAGE_BYTES = 16 * 1024
ALLOWED_CLOSES = {1000, 1002, 1003, 1007, 1008, 1009}

# Stand-ins replaced in the JSON text: json.dumps cannot write these.
HUGE_INT = "__HUGE_INT__"
HUGE_FLOAT = "__HUGE_FLOAT__"
SPECIAL_TEXT = {f'"{HUGE_INT}"': "9" * 5000, f'"{HUGE_FLOAT}"': "1e999"}
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**64) - 1, 1.5, float("nan"), "", "x", "9" * 5000, [], {},
    [1, [2]], {"a": {"b": None}}, "\ud800", "\udcff", "\x00", "é" * 50, HUGE_INT, HUGE_FLOAT,
]  # fmt: skip


class Mutator:
    """Valid messages of both formats and seeded ways to spoil them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # -- valid messages ---------------------------------------------------------------------------

    def twilio(self, event: str, seq: int, sid: str) -> dict[str, Any]:
        rng = self.rng
        body: dict[str, Any]
        if event == "connected":
            return {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        if event == "start":
            body = {
                "accountSid": "AC1",
                "streamSid": sid,
                "callSid": "CA1",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"From": "+15550100", "n": str(seq)},
            }
        elif event == "media":
            payload = base64.b64encode(rng.randbytes(rng.choice([160, 160, 80, 320]))).decode()
            body = {"track": "inbound", "chunk": str(seq), "timestamp": str(seq * 20), "payload": payload}
        elif event == "mark":
            body = {"name": f"vx-{rng.randint(0, 9)}"}
        elif event == "dtmf":
            body = {"track": "inbound_track", "digit": rng.choice("0123456789*#")}
        else:
            body = {"accountSid": "AC1", "callSid": "CA1"}
        return {"event": event, "sequenceNumber": str(seq), event: body, "streamSid": sid}

    def voxengine(self, event: str, seq: int, tag: str | None) -> dict[str, Any]:
        rng = self.rng
        body: dict[str, Any]
        if event == "start":
            encoding = rng.choice(["ULAW", "ALAW", "PCM8", "PCM16"])
            rate = 16000 if encoding == "PCM16" else 8000
            body = {
                "mediaFormat": {"encoding": encoding, "sampleRate": rate},
                "customParameters": '{"a": "1"}',
            }
        elif event == "media":
            size = rng.choice([160, 320, 640])
            body = {
                "chunk": seq,
                "timestamp": seq * 160,
                "payload": base64.b64encode(rng.randbytes(size)).decode(),
            }
        elif event == "customEvent":
            return {"customEvent": "Hello", "payload": {"x": seq}}
        else:
            body = {"mediaInfo": {"bytesSent": 0, "duration": 0}}
        if tag is not None:
            body["tag"] = tag
        return {"event": event, "sequenceNumber": seq, event: body}

    # -- spoiling them ----------------------------------------------------------------------------

    def text(self, message: dict[str, Any]) -> str:
        text = json.dumps(message)
        for stand_in, value in SPECIAL_TEXT.items():
            text = text.replace(stand_in, value)
        return text

    def _paths(self, value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        if isinstance(value, dict):
            for key, child in value.items():
                yield (*prefix, key)
                yield from self._paths(child, (*prefix, key))

    def _set(
        self, message: dict[str, Any], path: tuple[Any, ...], value: Any, *, delete: bool = False
    ) -> None:
        parent = message
        for key in path[:-1]:
            parent = parent[key]
        if delete:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value

    def spoil(self, message: dict[str, Any]) -> str | bytes | tuple[bytes]:
        """One mutation of ``message``; bytes are a binary frame, a 1-tuple a non-UTF-8 text frame."""
        rng = self.rng
        kind = rng.randrange(14)
        paths = list(self._paths(message))
        if kind <= 2 and paths:  # a field gets an odd value (wrong type, huge number, ...)
            self._set(message, rng.choice(paths), rng.choice(ODD_VALUES))
            return self.text(message)
        if kind == 3 and paths:  # a field goes missing
            self._set(message, rng.choice(paths), None, delete=True)
            return self.text(message)
        if kind == 4:  # an unknown or misspelt event
            message["event"] = rng.choice(
                ["medai", "Media", "", "transcription", "clear", "\ud83d\ude00" * 3]
            )
            return self.text(message)
        if kind == 5:  # base64 garbage, or an empty or odd-sized payload
            body = message.get(str(message.get("event")))
            if isinstance(body, dict):
                body["payload"] = rng.choice(["!!!!", "AAA", "", "A" * 7, "=" * 8, "QUJD\nREVG", "é"])
            return self.text(message)
        if kind == 6:  # deep nesting, in place of the message or of one field
            depth = rng.choice([500, 1000, 3000, 7000])
            deep = rng.choice(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth])
            if paths and rng.random() < 0.5:
                self._set(message, rng.choice(paths), "__DEEP__")
                return self.text(message).replace('"__DEEP__"', deep)
            return deep
        if kind == 7:  # characters flipped
            chars = list(self.text(message))
            for _ in range(rng.randint(1, 5)):
                chars[rng.randrange(len(chars))] = rng.choice(
                    '{}[]":,\\ \x00\x7f\u2028é' + string.ascii_letters
                )
            return "".join(chars)
        if kind == 8:  # truncated
            text = self.text(message)
            return text[: rng.randrange(len(text))]
        if kind == 9:  # over max_message_bytes
            return self.text(message) + " " * (MAX_MESSAGE_BYTES + rng.randint(1, 1000))
        if kind == 10:  # a binary frame
            return rng.randbytes(rng.randint(0, 64))
        if kind == 11:  # a text frame that is not UTF-8
            return (self.text(message).encode()[:20] + b"\xff\xfe\xc3",)
        if kind == 12:  # not an object
            return rng.choice(["[]", "1", '"media"', "null", "1e999", "9" * 5000, "-", "{}"])
        return self.text(message)  # valid after all: the socket goes on


def twilio_script(m: Mutator, budget: int) -> list[str | bytes | tuple[bytes]]:
    """A Twilio socket's messages: an opening (maybe none, maybe media before start, maybe a second
    start), then media with mutations among them."""
    rng = m.rng
    sid = "MZfuzz" + str(rng.randrange(10**6))
    opening = rng.choice(
        [["connected", "start"], ["start"], ["connected"], [], ["connected", "start", "start"]]
    )
    events = opening + [
        rng.choice(["media"] * 6 + ["mark", "dtmf", "stop"]) for _ in range(rng.randint(1, 8))
    ]
    script: list[str | bytes | tuple[bytes]] = []
    for seq, event in enumerate(events, 1):
        message = m.twilio(event, seq, sid)
        script.append(m.spoil(message) if rng.random() < 0.6 and len(script) < budget else m.text(message))
    return script


def voxengine_script(m: Mutator, budget: int) -> list[str | bytes | tuple[bytes]]:
    rng = m.rng
    tags = rng.choice([[None], ["a"], ["a", "b"]])
    events: list[tuple[str, str | None]] = [] if rng.random() < 0.2 else [("start", t) for t in tags]
    if rng.random() < 0.1:
        events.append(("start", tags[0]))  # a second start on a running tag
    for _ in range(rng.randint(1, 8)):
        events.append((rng.choice(["media"] * 6 + ["stop", "customEvent"]), rng.choice(tags)))
    script: list[str | bytes | tuple[bytes]] = []
    for seq, (event, tag) in enumerate(events):
        message = m.voxengine(event, seq, tag)
        script.append(m.spoil(message) if rng.random() < 0.6 and len(script) < budget else m.text(message))
    return script


async def run_socket(url: str, script: list[str | bytes | tuple[bytes]]) -> int | None:
    """Send the script (stopping when the server closes), then close; the socket's close code."""
    async with connect(url, max_size=None, compression=None, open_timeout=10, close_timeout=5) as ws:
        drain = asyncio.create_task(_drain(ws))
        try:
            for item in script:
                if isinstance(item, tuple):
                    await ws.send(item[0], text=True)
                else:
                    await ws.send(item)
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        await ws.close()
        await drain
    return ws.close_code


async def _drain(ws: ClientConnection) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


# -- malformed HTTP ----------------------------------------------------------------------------------

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def bad_request(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind <= 1:  # an upgrade with a header missing or wrong (with the right token: only that is off)
        headers = dict(UPGRADE)
        victim = rng.choice(list(headers))
        if rng.random() < 0.5:
            del headers[victim]
        else:
            headers[victim] = rng.choice(["", "h2c", "12", "not-base64!", "x" * 300, "keep-alive"])
        method = rng.choice(["GET", "GET", "POST", "PUT"])
        path = rng.choice(["/twilio", "/media"]) + f"?token={TOKEN}"
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode()
    if kind == 2:  # bad credentials, sometimes not UTF-8
        auth = rng.choice([b"Bearer wrong", b"Bearer \xff\xfe", b"Basic x", b"Bearer " + b"a" * 4000, b""])
        extra = rng.choice([b"", b"X-Twilio-Signature: \xff\r\n", b"X-Twilio-Signature: abc=\r\n"])
        head = b"".join(f"{k}: {v}\r\n".encode() for k, v in UPGRADE.items())
        path = rng.choice([b"/twilio", b"/media", b"/twilio?token=%ff", b"/media?token="])
        return (
            b"GET "
            + path
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + auth
            + b"\r\n"
            + extra
            + head
            + b"\r\n"
        )
    if kind == 3:  # a webhook body that is not a Twilio form
        content_type, body = rng.choice(
            [
                (b"multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data\r\n\r\nx"),
                (b"application/x-www-form-urlencoded; charset=bogus", b"From=1"),
                (b"application/x-www-form-urlencoded", b"From=\xff\xfe&To=%ff"),
                (b"application/json", b"[" * 1000),
                (b"application/x-www-form-urlencoded", b"From=+1&" * 50),  # unsigned: 403
            ]
        )
        return (
            b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
    if kind == 4:  # malformed HTTP itself
        return rng.choice(
            [
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + rng.randbytes(32) + b"\r\n\r\n",
                b"GET /twilio HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
                b"GET /twilio HTTP/1.1\r\nBad Header: 1\r\n\r\n",
                b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /twilio HTTP/9.9\r\nHost: x\r\n\r\n",
            ]
        )
    return f"GET /{rng.choice(['nope', 'twilio/', 'media/x', '..%2f'])} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def http_status(server: Server, data: bytes, *, slow: bool = False) -> int | None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        if slow:  # headers that never end: a line every 100 ms
            writer.write(data.split(b"\r\n\r\n")[0] + b"\r\n")
            for i in range(60):
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(b"X-Slow-%d: 1\r\n" % i)
                try:
                    line = await asyncio.wait_for(reader.readline(), 0.1)
                except TimeoutError:
                    continue
                return int(line.split()[1]) if line.startswith(b"HTTP/") else None
        else:
            writer.write(data)
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else None
    except ConnectionError:
        return None
    finally:
        writer.close()


# -- the test ----------------------------------------------------------------------------------------


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """A full collection of the test process's heap (pytest, numpy, every module the suite loaded)
    stops the loop for 50 ms and more on a slow machine, the gap this test measures. Objects
    older than the test are left out of collections; what the test and the server make is not."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


class MachineStalls(threading.Thread):
    """A thread that only sleeps 5 ms at a time: what it oversleeps is the machine's (the VM not
    scheduled: a separate process sees the same stalls at the same moments), not this process's
    work. A thread, not a task: a loop the server keeps busy delays its wake-up by at most the
    interpreter's switch interval (5 ms), and a loop blocked in a system call not at all, so such a
    loop still shows in the live call's gaps."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            start = time.monotonic()
            time.sleep(0.005)
            self.samples.append((start, time.monotonic()))

    def stop(self) -> None:
        self._done.set()
        self.join()

    def within(self, start: float, end: float) -> float:
        """The longest oversleep of a sleep that overlaps ``[start, end]`` (seconds)."""
        return max((b - a - 0.005 for a, b in self.samples if b > start and a < end), default=0.0)


@pytest.mark.usefixtures("frozen_heap")
async def test_fuzzing_the_endpoints_leaves_a_live_call_untouched(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    delivered = bytearray()

    async def bridge(stream: CarrierStream) -> None:
        if stream.custom_parameters.get("role") != "live":
            await echo_bridge(stream)
            return

        def on_audio(frame: Frame) -> None:
            arrivals.append(loop.time())
            delivered.extend(frame.data)
            stream.send_audio(frame.data, source_ms=frame.timestamp_ms + 20)

        stream.on_audio = on_audio
        await stream.wait_closed()

    guard = HttpGuard(header_timeout_s=0.5, idle_timeout_s=1.0)
    server = await make_server(
        bridge,
        guard=guard,
        token=TOKEN,
        twilio_auth_token="fuzz-auth",
        max_message_bytes=MAX_MESSAGE_BYTES,
        start_timeout_s=1.0,
    )
    audio = prompt(LIVE_MS, seed=42)
    live = TwilioTestCaller(
        server.ws_url("/twilio", token=TOKEN),
        audio,
        custom_parameters={"role": "live"},
        done_when=lambda c: len(c.received) == len(audio),
        linger_ms=5000,
    )
    stalls = MachineStalls()
    stalls.start()
    live_run = asyncio.create_task(live.run())

    rng = random.Random(SEED)
    closes: Counter[int | None] = Counter()
    statuses: Counter[int | None] = Counter()
    sent = 0

    async def ws_worker(worker: int) -> None:
        nonlocal sent
        m = Mutator(random.Random(SEED * 100 + worker))
        while sent < MESSAGES:
            twilio = m.rng.random() < 0.5
            script = (twilio_script if twilio else voxengine_script)(m, MESSAGES - sent)
            sent += len(script)
            url = server.ws_url("/twilio" if twilio else "/media", token=TOKEN)
            closes[await run_socket(url, script)] += 1

    async def http_worker() -> None:
        for _ in range(150):
            statuses[await http_status(server, bad_request(rng))] += 1
            await asyncio.sleep(0.01)
        for _ in range(3):
            statuses[
                await http_status(server, b"GET /twilio/voice HTTP/1.1\r\nHost: x\r\n\r\n", slow=True)
            ] += 1

    await asyncio.gather(http_worker(), *(ws_worker(i) for i in range(WORKERS)))
    try:
        await asyncio.wait_for(live_run, 30)
    finally:
        stalls.stop()

    assert sent >= MESSAGES
    assert set(closes) <= ALLOWED_CLOSES, closes
    assert closes[1007] > 100 and closes[1002] and closes[1003] and closes[1009]
    assert all(s is not None and 400 <= s < 500 for s in statuses), statuses
    assert statuses[408] == 3 and guard.stats["header_timeouts"] >= 3

    # The live call: every byte back, in order, and no frame late by more than 40 ms beyond what the
    # machine itself stalled while it was due.
    assert live.errors == [] and live.close_code == 1000
    assert bytes(live.received) == audio and bytes(delivered) == audio
    gap, start = max((b - a, a) for a, b in itertools.pairwise(arrivals))
    excess = max(b - a - stalls.within(a, b) for a, b in itertools.pairwise(arrivals))
    stalled = stalls.within(start, start + gap)
    assert excess <= 0.060, (
        f"a gap between frames of {excess * 1000:.0f} ms beyond the machine's own stalls "
        f"(largest gap {gap * 1000:.0f} ms, the machine stalled {stalled * 1000:.0f} ms in it)"
    )

    # Still open for business.
    clean_audio = prompt(400, seed=5)
    clean = TwilioTestCaller(
        server.ws_url("/twilio", token=TOKEN), clean_audio, done_when=lambda c: len(c.received) == 3200
    )
    await clean.run()
    assert clean.errors == [] and bytes(clean.received) == clean_audio
    assert_no_tracebacks(caplog)
