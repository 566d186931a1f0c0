"""What reading one Twilio ``media`` message costs in the Twilio core: the full read (``json.loads``
and the field checks, the control) against the fast read of the compact form Twilio writes, in the
same run, on the same text (the control runs with the fast read's pattern swapped for one that
never matches).

Run: .venv/bin/python bench/twilio_read_cost.py
The message is a Twilio ``media`` event as Twilio writes it (compact, 20 ms of μ-law). For each read:
the median over ROUNDS of the time per message from text to ``TwilioMedia``, and the ratio to the
full read. No assertion: tests/carriers/test_twilio_core.py checks that both give the same events.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable

from host import cpu_model

from voxline.carriers import twilio
from voxline.carriers.twilio import TwilioMedia, TwilioMediaStream

MESSAGES = 50_000
ROUNDS = 7
START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ" + "0" * 32,
    "start": {
        "streamSid": "MZ" + "0" * 32,
        "accountSid": "AC" + "0" * 32,
        "callSid": "CA" + "0" * 32,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


def messages() -> list[str]:
    payload = base64.b64encode(os.urandom(160)).decode()
    return [
        f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{seq - 1}",'
        f'"timestamp":"{(seq - 2) * 20}","payload":"{payload}"}},"streamSid":"MZ{"0" * 32}"}}'
        for seq in range(2, MESSAGES + 2)
    ]


def per_message_us(inputs: list[str]) -> float:
    core = TwilioMediaStream()
    core.receive(json.dumps(START))
    receive: Callable[[str], object] = core.receive
    start = time.perf_counter()
    for text in inputs:
        receive(text)
    return (time.perf_counter() - start) / len(inputs) * 1e6


def main() -> None:
    texts = messages()
    check = TwilioMediaStream()
    check.receive(json.dumps(START))
    assert isinstance(check.receive(texts[0]), TwilioMedia)
    fast = twilio._TWILIO_MEDIA
    twilio._TWILIO_MEDIA = re.compile(r"(?!)")  # the control: every message takes the full read
    control = statistics.median(per_message_us(texts) for _ in range(ROUNDS))
    twilio._TWILIO_MEDIA = fast
    ours = statistics.median(per_message_us(texts) for _ in range(ROUNDS))
    print(f"{cpu_model()}, Python {platform.python_version()}\n")
    print("| read | µs per message (median) | ÷ full read |\n|---|---:|---:|")
    print(f"| full read (`json.loads` + checks) | {control:.2f} | 1.00 |")
    print(f"| fast read of the compact form | {ours:.2f} | {ours / control:.2f} |")


if __name__ == "__main__":
    main()
