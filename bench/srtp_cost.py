"""What SRTP adds per call: libsrtp's protect and unprotect of one 20 ms G.711 packet, each suite.

Run: .venv/bin/python bench/srtp_cost.py
Prints a Markdown table: the median CPU time (``time.process_time``) of ``SrtpTransform.protect``
and ``unprotect`` per packet over ROUNDS rounds of PACKETS packets, and what that is per call-minute
(3000 packets each way). The end-to-end figure is the bench's ``voxline-rtp-g711-srtp`` beside
``voxline-rtp-g711``; this one is free of the machine's noise.
"""

from __future__ import annotations

import platform
import statistics
import time

from host import cpu_model

from voxline.rtp.packet import build_packet
from voxline.rtp.srtp import SrtpTransform
from voxline.sip.crypto import SUITES, new_key

PACKETS = 3000  # one call-minute each way at 20 ms
ROUNDS = 21


def main() -> None:
    print(f"{platform.python_implementation()} {platform.python_version()}, {cpu_model()}\n")
    print("| suite | protect µs/packet | unprotect µs/packet | CPU s per call-minute (both ways) |")
    print("|---|---|---|---|")
    for suite in SUITES:
        a, b = new_key(suite), new_key(suite)
        packets = [
            build_packet(0, i & 0xFFFF, i * 160, 0x1234, bytes([i & 0xFF]) * 160, False)
            for i in range(PACKETS)
        ]
        protect, unprotect = [], []
        for _ in range(ROUNDS):
            tx, rx = SrtpTransform(suite, a, b), SrtpTransform(suite, b, a)  # fresh: no replays
            t0 = time.process_time()
            out = [tx.protect(p) for p in packets]
            t1 = time.process_time()
            for p in out:
                assert p is not None
                rx.unprotect(p)
            t2 = time.process_time()
            assert rx.stats["unprotected"] == PACKETS, rx.stats
            protect.append((t1 - t0) / PACKETS)
            unprotect.append((t2 - t1) / PACKETS)
        p, u = statistics.median(protect), statistics.median(unprotect)
        print(f"| {suite} | {p * 1e6:.2f} | {u * 1e6:.2f} | {(p + u) * PACKETS:.4f} |")


if __name__ == "__main__":
    main()
