"""What one hostile SIP message costs the user agent core (parse, checks, answer), worst cases first.

Run: .venv/bin/python bench/sip_parse_cost.py
Prints a Markdown table: for each message, its size, the answer and the median wall time of
``UserAgentCore.receive`` over REPEATS runs, in milliseconds. Every one must stay far below the
20 ms of one audio frame: it runs on the event loop that sends the calls' RTP. No assertion: the
tests check behaviour (the parser stops at its limits, ``tests/sip/test_fuzz.py`` checks a live
call's RTP under fire); this shows the cost on the machine at hand.
"""

from __future__ import annotations

import platform
import statistics
import time

from host import cpu_model

from voxline.sip import SipConfig, UserAgentCore

REPEATS = 30
HEAD = (
    "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\n"
    "From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
)
VIAS = "".join(f"Via: SIP/2.0/UDP 10.0.0.{i};branch=z9hG4bK{i}{';p=1' * 60}\r\n" for i in range(69))
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + "".join(
    f"m=audio {1000 + i} RTP/AVP 0\r\n" + "a=x:y\r\n" * 140 for i in range(16)
)
CASES = {
    "a valid OPTIONS": HEAD + "Content-Length: 0\r\n\r\n",
    "Via: a,a,a,... (29,000 entries, 58 KB)": HEAD + "Via: " + ",".join(["a"] * 29_000) + "\r\n\r\n",
    "1,300 Via lines (58 KB)": HEAD + "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKv\r\n" * 1300 + "\r\n",
    "240 header lines of 230 B (accepted)": HEAD + ("X-H: " + "b" * 220 + "\r\n") * 240 + "\r\n",
    "quoted Contact list and 8 KB quoted values": HEAD
    + 'Contact: "a,b" <sip:x@y>, ' * 60
    + "\r\n"
    + ('X: "' + "q" * 8000 + '"\r\n') * 6
    + "\r\n",
    "a From with 4,000 parameters": HEAD.replace("tag=1", "tag=1" + ";a" * 4000) + "\r\n",
    "Content-Length of 5,000 digits": HEAD + "Content-Length: " + "9" * 5000 + "\r\n\r\n",
    "INVITE: 70 Vias of 60 params + 16 KB SDP (accepted)": HEAD.replace("OPTIONS", "INVITE")
    + VIAS
    + "Content-Type: application/sdp\r\n\r\n"
    + SDP[: SDP.rindex("\r\n", 0, 16_000) + 2],
    "60 KB of SDP lines": HEAD.replace("OPTIONS", "INVITE")
    + "Content-Type: application/sdp\r\n\r\nv=0\r\n"
    + "a=x\r\n" * 12_000,
}


def main() -> None:
    print(f"{cpu_model()}, Python {platform.python_version()}\n")
    print("| message | bytes | answer | ms (median) |\n|---|---:|---|---:|")
    for name, text in CASES.items():
        data = text.encode()
        core = UserAgentCore(SipConfig(max_calls=10**6))
        times = []
        answer = b""
        for i in range(REPEATS):
            start = time.perf_counter()
            core.receive(data.replace(b"Call-ID: c1", f"Call-ID: c{i}".encode()), ("127.0.0.1", 5999), 0.0)
            times.append(time.perf_counter() - start)
            out = core.data_to_send()
            answer = out[0].data.split(b"\r\n", 1)[0][8:40] if out else b"(dropped)"
        median_ms = statistics.median(times) * 1e3
        print(f"| {name} | {len(data):,} | {answer.decode(errors='replace')} | {median_ms:.3f} |")


if __name__ == "__main__":
    main()
