"""What reading one carrier media message costs: websockets' Sans-I/O protocol (the control) against
the carrier listener's frame splitter (``voxline.carriers.wsframes``), in the same run.

Run: .venv/bin/python bench/ws_frame_cost.py
The message is a Twilio ``media`` event as a client sends it (masked, ~370 bytes on the wire, one
frame per write, the way 20 ms of μ-law arrives). For each reader: the median over ROUNDS of the
time per message to get the decoded text out of the bytes, and the ratio to websockets'. No
assertion: tests/carriers/test_wsframes.py checks that both read the same frames.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import statistics
import time

from host import cpu_model
from websockets.frames import Frame
from websockets.protocol import Protocol, Side, State

from voxline.carriers.wsframes import ClientFrames

MESSAGES = 20_000
ROUNDS = 7


def media_frame() -> tuple[bytes, str]:
    payload = base64.b64encode(os.urandom(160)).decode()
    text = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "4",
            "streamSid": "MZ" + "0" * 32,
            "media": {"track": "inbound", "chunk": "3", "timestamp": "60", "payload": payload},
        }
    )
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.send_text(text.encode())
    return b"".join(client.data_to_send()), text


def per_message_us(read: object, wire: bytes) -> float:
    assert callable(read)
    start = time.perf_counter()
    for _ in range(MESSAGES):
        read(wire)
    return (time.perf_counter() - start) / MESSAGES * 1e6


def main() -> None:
    wire, text = media_frame()
    protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=64 * 1024)
    frames = ClientFrames(64 * 1024)

    def with_websockets(data: bytes) -> str | None:
        protocol.receive_data(data)
        out = None
        for event in protocol.events_received():
            if isinstance(event, Frame):
                out = str(event.data, "utf-8")
        return out

    def with_splitter(data: bytes) -> str | None:
        frames.feed(data)
        out = None
        while (item := frames.next(True)) is not None:
            out = str(item[1], "utf-8")
        return out

    assert with_websockets(wire) == with_splitter(wire) == text
    control = statistics.median(per_message_us(with_websockets, wire) for _ in range(ROUNDS))
    ours = statistics.median(per_message_us(with_splitter, wire) for _ in range(ROUNDS))
    print(f"{cpu_model()}, Python {platform.python_version()}\n")
    print("| reader | µs per message (median) | ÷ websockets |\n|---|---:|---:|")
    print(f"| websockets `Protocol.receive_data` + `events_received` | {control:.2f} | 1.00 |")
    print(f"| `wsframes.ClientFrames` | {ours:.2f} | {ours / control:.2f} |")


if __name__ == "__main__":
    main()
