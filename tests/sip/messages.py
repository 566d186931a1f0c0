"""SIP message texts for the core tests (what real peers send, trimmed)."""

from __future__ import annotations

OFFER_PCMU_PCMA = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def invite(
    *,
    call_id: str = "call-1@127.0.0.1",
    branch: str = "z9hG4bK-inv-1",
    cseq: int = 1,
    to_tag: str | None = None,
    sdp: str | None = OFFER_PCMU_PCMA,
    extra: str = "",
    from_tag: str = "caller-tag",
) -> bytes:
    body = (sdp or "").encode()
    to = "<sip:agent@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    ctype = "Content-Type: application/sdp\r\n" if sdp else ""
    return (
        f"INVITE sip:agent@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f'From: "Alice" <sip:15551230000@127.0.0.1:5062>;tag={from_tag}\r\n'
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:alice@127.0.0.1:5062>\r\n"
        f"{extra}{ctype}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def request(
    method: str,
    *,
    call_id: str = "call-1@127.0.0.1",
    branch: str = "z9hG4bK-req-1",
    cseq: int = 2,
    to_tag: str | None = None,
    from_tag: str = "caller-tag",
    body: str = "",
    extra: str = "",
    uri: str = "sip:agent@127.0.0.1:5060",
) -> bytes:
    to = "<sip:agent@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    data = body.encode()
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:15551230000@127.0.0.1:5062>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
