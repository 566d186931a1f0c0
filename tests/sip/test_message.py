"""SIP message parsing and serialization (no sockets)."""

from __future__ import annotations

import pytest

from voxline.sip import (
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from voxline.sip.message import (
    MAX_HEADER_FIELDS,
    MAX_HEADER_LINE,
    MAX_LIST_ENTRIES,
    MAX_PARAMS,
    _split_list,
    summary_request,
)

from .messages import invite

COMPACT_FOLDED = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-proxy2;received=127.0.0.1, "
    b"SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bK-proxy1\r\n"
    b"VIA: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-ua;rport\r\n"
    b'f: "Alice, Smith" <sip:alice@127.0.0.1;transport=udp>;tag=abc\r\n'
    b"t: sip:bob@127.0.0.1\r\n"
    b"i: folded-1@host\r\n"
    b"cSeQ: 7 INVITE\r\n"
    b"Subject: a subject that is\r\n"
    b"   folded over\r\n\tthree lines\r\n"
    b"m: <sip:alice@127.0.0.1:5062>\r\n"
    b"k: timer, replaces\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\nextra bytes beyond Content-Length"
)


def test_compact_folded_headers_and_vias_in_order() -> None:
    msg = parse_message(COMPACT_FOLDED)
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri) == ("INVITE", "sip:bob@127.0.0.1")
    vias = msg.vias
    assert [v.branch for v in vias] == ["z9hG4bK-proxy2", "z9hG4bK-proxy1", "z9hG4bK-ua"]
    assert [v.transport for v in vias] == ["UDP", "TCP", "UDP"]
    assert vias[0].params["received"] == "127.0.0.1"
    assert "rport" in vias[2].params and vias[2].params["rport"] is None
    assert msg.headers.get("subject") == "a subject that is folded over three lines"
    assert msg.headers.get("Supported") == "timer, replaces"  # not a list header: kept whole
    assert msg.call_id == "folded-1@host"
    assert msg.cseq == (7, "INVITE")
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\r"  # datagram: Content-Length cuts the rest
    frm = msg.from_
    assert (frm.display, frm.uri.user, frm.tag, frm.uri.params) == (
        "Alice, Smith",
        "alice",
        "abc",
        {"transport": "udp"},
    )
    assert msg.to.tag is None and msg.to.uri.user == "bob"


def test_serialization_round_trip_keeps_vias_and_sets_content_length() -> None:
    msg = parse_message(COMPACT_FOLDED)
    again = parse_message(bytes(msg))
    assert [v.branch for v in again.vias] == [v.branch for v in msg.vias]
    assert again.headers.get("Content-Length") == "4"
    assert bytes(again).startswith(b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1")


def test_response_parsing_and_reason_with_spaces() -> None:
    data = (
        b"SIP/2.0 180 Ringing Now Please\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
        b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
        b"Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason, msg.body) == (180, "Ringing Now Please", b"")


def test_missing_content_length_on_udp_means_rest_of_datagram() -> None:
    data = invite().replace(b"Content-Length: ", b"X-Old-Length: ")
    msg = parse_message(data)
    assert msg.body.startswith(b"v=0") and msg.body.endswith(b"a=sendrecv\r\n")


def test_content_length_larger_than_body_is_answerable_error() -> None:
    data = invite().replace(b"Content-Length: ", b"Content-Length: 9")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.request is not None  # start line and Via parse: a 400 can be sent
    assert "Content-Length" in info.value.reason


@pytest.mark.parametrize(
    ("data", "answerable"),
    [
        (b"", False),
        (b"\r\n\r\n", False),
        (b"HELLO WORLD\r\n\r\n", False),
        (b"INVITE sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n\r\n", True),
        (b"INVITE sip:a@b SIP/2.0\r\nFrom: <sip:x@y>;tag=1\r\n\r\n", False),  # no Via: nowhere to answer
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n\r\n", True),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: garbage\r\nCall-ID: 1\r\n\r\n", False),
        (b"SIP/2.0 999 Nope\r\n\r\n", False),
        (b"\xff\xfe\x00INVITE", False),
    ],
)
def test_malformed_messages_raise_parse_error_only(data: bytes, answerable: bool) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert (info.value.request is not None) is answerable


def test_cseq_method_mismatch_and_bad_cseq() -> None:
    bad = invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    with pytest.raises(SipParseError, match="CSeq method"):
        parse_message(bad)
    with pytest.raises(SipParseError, match="CSeq"):
        parse_message(invite().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"))


def test_uri_and_name_addr_forms() -> None:
    uri = parse_uri("sip:+15551230000:pw@[::1]:5070;user=phone;lr?subject=hi")
    assert (uri.user, uri.password, uri.host, uri.port) == ("+15551230000", "pw", "::1", 5070)
    assert uri.params == {"user": "phone", "lr": None}
    assert str(uri) == "sip:+15551230000:pw@[::1]:5070;user=phone;lr?subject=hi"
    assert parse_uri("tel:+1-555-123;phone-context=example.com").user == "+1-555-123"
    addr = parse_name_addr("sip:bob@example.com;tag=xyz")  # addr-spec: params belong to the header
    assert addr.tag == "xyz" and addr.uri.params == {}
    addr = parse_name_addr("Bob <sips:bob@example.com:5061;transport=tls>;tag=t1;expires=60")
    assert (addr.display, addr.uri.scheme, addr.tag, addr.params["expires"]) == ("Bob", "sips", "t1", "60")
    with pytest.raises(SipParseError):
        parse_uri("http://example.com")
    with pytest.raises(SipParseError):
        parse_name_addr("<sip:unterminated@x")
    via = parse_via("SIP / 2.0 / tcp [2001:db8::1]:5080 ; branch=z9hG4bKv6")
    assert (via.transport, via.host, via.port, via.branch) == ("TCP", "2001:db8::1", 5080, "z9hG4bKv6")


def test_stream_framer_splits_and_joins_messages() -> None:
    one = invite(call_id="a")
    two = invite(call_id="b")
    framer = StreamFramer()
    stream = b"\r\n\r\n" + one + two  # keep-alive CRLFs first
    got: list[bytes] = []
    for i in range(0, len(stream), 37):  # arbitrary segment boundaries
        got += framer.feed(stream[i : i + 37])
    assert got == [one, two]
    assert [parse_message(m, stream=True).call_id for m in got] == ["a", "b"]


def test_stream_framer_rejects_bad_length_and_oversize() -> None:
    framer = StreamFramer()
    assert framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n") == []
    assert framer.error is not None
    framer = StreamFramer(max_bytes=100)
    framer.feed(b"A" * 200)
    assert framer.error is not None


# ------------------------------------------------------------------------------------- limits

OPTIONS_HEAD = (
    "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-top\r\n"
    "From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: limits-1\r\nCSeq: 1 OPTIONS\r\n"
)
VIA = "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-x"


def test_via_explosion_datagram_is_refused_with_an_answer_smaller_than_one_via_list() -> None:
    # Issue 13 item 11: 58 KB of "Via: a,a,a,..." (29,000 entries) was split and every Via echoed.
    data = (OPTIONS_HEAD + "Via: " + ",".join(["a"] * 29_000) + "\r\n\r\n").encode()
    assert len(data) > 58_000
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    exc = info.value
    assert exc.status == 513 and exc.limit and "header line longer" in exc.reason
    assert exc.request is not None  # answerable, from a summary: one Via, nothing split
    assert exc.request.headers.get_all("Via") == ["SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-top"]
    assert len(bytes(exc.request)) < 400


def test_more_list_entries_than_the_limit_are_refused_400() -> None:
    lines = "".join(f"Via: {VIA}, {VIA}\r\n" for _ in range(35))  # 70 + the top one
    with pytest.raises(SipParseError) as info:
        parse_message((OPTIONS_HEAD + lines + "\r\n").encode())
    assert info.value.status == 400 and info.value.reason == f"more than {MAX_LIST_ENTRIES} Via entries"
    assert info.value.request is not None and len(info.value.request.headers.get_all("Via")) == 1
    ok = "".join(f"Via: {VIA}, {VIA}\r\n" for _ in range(34))  # 69 entries: fine
    assert len(parse_message((OPTIONS_HEAD + ok + "\r\n").encode()).vias) == 69


def test_list_split_stops_after_the_limit() -> None:
    # The cost of refusing a 29,000-entry list is that of splitting limit + 1 entries.
    value = ",".join(["a"] * 29_000)
    parts = _split_list(value, 70)
    assert len(parts) == 71 and parts[:70] == ["a"] * 70 and parts[70].count(",") == 29_000 - 71
    quoted = ", ".join(['"x, y" <sip:a@b>'] * 29_000)  # the quote-aware path stops the same way
    parts = _split_list(quoted, 70)
    assert len(parts) == 71 and parts[0] == '"x, y" <sip:a@b>'
    assert _split_list('"a, b" <sip:x@y;p=1,2>, c', 70) == ['"a, b" <sip:x@y;p=1,2>', "c"]


def test_too_many_header_lines_fields_or_params_are_refused() -> None:
    many = OPTIONS_HEAD + "X-A: b\r\n" * MAX_HEADER_FIELDS + "\r\n"
    with pytest.raises(SipParseError, match="header lines") as info:
        parse_message(many.encode())
    assert info.value.status == 400 and info.value.request is not None
    params = OPTIONS_HEAD.replace("tag=1", "tag=1" + ";p" * (MAX_PARAMS + 1))
    with pytest.raises(SipParseError, match="parameters"):
        parse_message((params + "\r\n").encode())
    long_value = OPTIONS_HEAD + "X-Big: " + "a" * MAX_HEADER_LINE + "\r\n\r\n"
    with pytest.raises(SipParseError) as info:
        parse_message(long_value.encode())
    assert info.value.status == 513


def test_message_over_max_bytes_is_refused_513_after_a_look_at_its_header_only() -> None:
    data = (OPTIONS_HEAD + "Content-Length: 9000\r\n\r\n").encode() + b"x" * 9000
    assert isinstance(parse_message(data), SipRequest)
    with pytest.raises(SipParseError) as info:
        parse_message(data, max_bytes=8192)
    assert info.value.status == 513 and info.value.request is not None


@pytest.mark.parametrize("length", ["9" * 5000, "²", "１２", "99999999999", "1 2", ""])
def test_content_length_that_is_no_small_number_is_an_answerable_400(length: str) -> None:
    # Issue 13 item 10: int() of 5,000 digits raised ValueError (limit of 4300 digits).
    data = (OPTIONS_HEAD + f"Content-Length: {length}\r\n\r\n").encode()
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == 400 and info.value.request is not None
    assert "Content-Length" in info.value.reason


def test_summary_request_is_found_without_parsing_the_lines() -> None:
    head = (OPTIONS_HEAD.replace("Via:", "v :") + "X: y\r\n" * 20_000).encode()
    request = summary_request(head)
    assert request is not None and request.method == "OPTIONS" and request.call_id == "limits-1"
    assert request.headers.get_all("Via") == ["SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-top"]
    assert summary_request(b"SIP/2.0 200 OK\r\nVia: " + VIA.encode()) is None  # a response
    assert summary_request(b"OPTIONS sip:a@b SIP/2.0\r\nVia: junk") is None  # nowhere to answer


def test_numbers_with_non_ascii_digits_are_parse_errors_not_crashes() -> None:
    for bad in (b"CSeq: \xc2\xb2 OPTIONS", b"Via: SIP/2.0/UDP 127.0.0.1:\xc2\xb2"):
        data = OPTIONS_HEAD.replace("CSeq: 1 OPTIONS", "").encode() + bad + b"\r\nCSeq: 1 OPTIONS\r\n\r\n"
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert "unparseable" not in info.value.reason  # refused by the grammar, not by accident


def test_stream_framer_answers_instead_of_raising_on_a_5000_digit_content_length() -> None:
    framer = StreamFramer()
    head = OPTIONS_HEAD + "Content-Length: " + "9" * 5000
    assert framer.feed((head + "\r\n\r\n").encode()) == []
    assert framer.error is not None and framer.error_status == 400
    assert framer.error_head == head.encode()


def test_stream_framer_refuses_repeated_and_oversize_content_length_with_the_head() -> None:
    framer = StreamFramer()
    framer.feed((OPTIONS_HEAD + "Content-Length: 0\r\nl: 5\r\n\r\nhello").encode())
    assert framer.error == "more than one Content-Length header" and framer.error_head is not None
    framer = StreamFramer(max_bytes=2000)
    framer.feed((OPTIONS_HEAD + "Content-Length: 5000\r\n\r\n").encode())
    assert framer.error_status == 513 and framer.error_head is not None


def test_stream_framer_pings_partial_and_byte_at_a_time() -> None:
    one = invite(call_id="a")
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [] and framer.pings == 1 and not framer.partial
    framer.pings = 0
    assert framer.feed(b"\r\n\r") == [] and framer.pings == 0  # a ping split over segments
    assert framer.feed(b"\n") == [] and framer.pings == 1
    got: list[bytes] = []
    for i in range(len(one) * 2):
        got += framer.feed((one + one)[i : i + 1])
        if len(got) < 2:
            assert framer.partial or i == len(one) - 1
    assert got == [one, one] and not framer.partial and framer.error is None
