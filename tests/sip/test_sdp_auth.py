"""SDP offer/answer and digest authentication (no sockets)."""

from __future__ import annotations

import pytest

from voxline.sip import (
    DigestError,
    NoCommonCodec,
    SdpError,
    accept_answer,
    answer_offer,
    build_authorization,
    build_offer,
    digest_response,
    parse_challenge,
    parse_sdp,
)
from voxline.sip.sdp import MAX_MEDIA, MAX_SDP_BYTES, BadMediaAddress, NotAcceptable

LINPHONE_IP6 = (
    "v=0\r\no=linphone 1 2 IN IP6 fd00::2\r\ns=Talk\r\nc=IN IP6 fd00::2\r\nt=0 0\r\n"
    "m=audio 7078 RTP/AVP 96 97 0 8 18 101 99 100\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:97 speex/16000\r\n"
    "a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/48000\r\na=rtpmap:99 telephone-event/16000\r\n"
    "a=rtpmap:100 telephone-event/8000\r\na=rtcp-fb:* trr-int 1000\r\n"
    "m=video 9078 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
)


def offer(formats: str, extra: str = "", conn: str = "IN IP4 127.0.0.1") -> str:
    head = f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc={conn}\r\nt=0 0\r\n"
    return f"{head}m=audio 40000 RTP/AVP {formats}\r\n{extra}"


def test_first_supported_codec_in_offer_order_and_telephone_event_8k() -> None:
    answer, media = answer_offer(parse_sdp(LINPHONE_IP6), "127.0.0.1", 30000)
    assert (media.codec.name, media.codec.payload_type) == ("PCMU", 0)
    assert media.dtmf_payload_type == 100  # the 8 kHz telephone-event, not the 48/16 kHz ones
    assert (media.remote_host, media.remote_port) == ("fd00::2", 7078)
    text = answer.to_bytes().decode()
    assert "m=audio 30000 RTP/AVP 0 100\r\n" in text
    assert "a=rtpmap:100 telephone-event/8000\r\n" in text
    assert "m=video 0 RTP/AVP 96\r\n" in text  # the declined stream keeps its place with port 0
    assert "c=IN IP4 127.0.0.1\r\n" in text
    again = parse_sdp(answer.to_bytes())
    assert again.audio() is not None and again.media[1].port == 0


def test_pcma_first_in_offer_wins_and_static_pt_without_rtpmap() -> None:
    _, media = answer_offer(parse_sdp(offer("8 0")), "127.0.0.1", 30000)
    assert media.codec.name == "PCMA" and media.dtmf_payload_type is None
    _, media = answer_offer(parse_sdp(offer("8 0")), "127.0.0.1", 30000, codecs=("PCMU",))
    assert media.codec.name == "PCMU"


def test_no_common_codec_raises_for_488() -> None:
    with pytest.raises(NoCommonCodec, match="no common codec"):
        answer_offer(
            parse_sdp(offer("18 96", "a=rtpmap:18 G729/8000\r\na=rtpmap:96 opus/48000/2\r\n")), "h", 1
        )
    with pytest.raises(NotAcceptable, match="SRTP is off"):  # 488 too (SRTP: tests/sip/test_srtp_sdp.py)
        answer_offer(parse_sdp(offer("0").replace("RTP/AVP", "RTP/SAVP")), "h", 1)


@pytest.mark.parametrize(
    ("offered", "ours", "on_hold"),
    [("sendrecv", "sendrecv", False), ("sendonly", "recvonly", True), ("inactive", "inactive", True),
     ("recvonly", "sendonly", False)],
)  # fmt: skip
def test_hold_directions(offered: str, ours: str, on_hold: bool) -> None:
    answer, media = answer_offer(parse_sdp(offer("0", f"a={offered}\r\n")), "127.0.0.1", 30000)
    assert media.direction == ours and media.on_hold is on_hold
    assert f"a={ours}\r\n" in answer.to_bytes().decode()


def test_old_style_hold_with_zero_address_and_ptime() -> None:
    _, media = answer_offer(parse_sdp(offer("0", "a=ptime:30\r\n", conn="IN IP4 0.0.0.0")), "127.0.0.1", 1)
    assert media.on_hold and media.ptime == 30


def test_offer_and_answer_from_the_caller_side() -> None:
    ours = build_offer("127.0.0.1", 30000, codecs=("PCMA", "PCMU"))
    text = ours.to_bytes().decode()
    assert "m=audio 30000 RTP/AVP 8 0 101\r\n" in text and "a=fmtp:101 0-16\r\n" in text
    media = accept_answer(ours, parse_sdp(offer("0 101", "a=rtpmap:101 telephone-event/8000\r\n")))
    assert media.codec.name == "PCMU" and media.dtmf_payload_type == 101
    with pytest.raises(NoCommonCodec):
        accept_answer(ours, parse_sdp(offer("18")))
    with pytest.raises(ValueError, match="codecs"):
        build_offer("127.0.0.1", 1, codecs=("G729",))


BAD_SDP = [
    "",
    "x=1\r\n",
    "v=1\r\n",
    "v=0\r\nm=audio x RTP/AVP 0\r\n",
    "v=0\r\nc=IN IP9 1\r\n",
    "v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
    # Numbers that str.isdigit() takes but int() refuses, or too long for int(): SdpError, not a
    # ValueError escaping as an internal error.
    "v=0\r\nm=audio \u00b2 RTP/AVP 0\r\n",
    "v=0\r\no=- " + "9" * 5000 + " 1 IN IP4 127.0.0.1\r\n",
    "v=0\r\nm=audio " + "9" * 5000 + " RTP/AVP 0\r\n",
    "v=0\r\n" + "m=audio 0 RTP/AVP 0\r\n" * (MAX_MEDIA + 1),
    "v=0\r\n" + "a=x\r\n" * (MAX_SDP_BYTES // 5 + 1),
]


@pytest.mark.parametrize("bad", BAD_SDP)
def test_bad_sdp_raises_sdp_error(bad: str) -> None:
    with pytest.raises(SdpError):
        parse_sdp(bad)


RFC4475_BODY = (
    "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n"
)


def test_rtpmap_without_clock_rate_on_an_unused_stream_is_no_error() -> None:
    # Issue 13 item 15: the body of RFC 4475 esc01, longreq, baddate, ... was answered 400.
    sd = parse_sdp(RFC4475_BODY)
    assert sd.media[1].rtpmap == {} and ("rtpmap", "31 LPC") in sd.media[1].attributes
    answer, media = answer_offer(sd, "127.0.0.1", 30000)
    assert media.codec.name == "PCMU" and (media.remote_host, media.remote_port) == ("192.0.2.1", 49217)
    assert "m=video 0 RTP/AVP 31\r\n" in answer.to_bytes().decode()
    # On the audio stream a malformed rtpmap names nothing: a static type keeps its RFC 3551 meaning,
    # a dynamic one without a valid rtpmap is never chosen.
    _, media = answer_offer(parse_sdp(offer("0", "a=rtpmap:0 PCMU\r\n")), "127.0.0.1", 1)
    assert media.codec.name == "PCMU"
    with pytest.raises(NoCommonCodec):
        answer_offer(parse_sdp(offer("96", "a=rtpmap:96 PCMU\r\n")), "127.0.0.1", 1)


@pytest.mark.parametrize(
    "conn",
    ["IN IP4 localhost", "IN IP4 rtp.example.com", "IN IP4 224.2.1.1/127", "IN IP4 255.255.255.255",
     "IN IP6 ff02::1", "IN IP4 ::1", "IN IP6 127.0.0.1"],
)  # fmt: skip
def test_audio_address_must_be_a_unicast_ip_of_its_type(conn: str) -> None:
    # Issue 13 item 9: a host name was accepted and resolved on the event loop for every RTP packet.
    with pytest.raises(BadMediaAddress) as info:
        answer_offer(parse_sdp(offer("0", conn=conn)), "127.0.0.1", 30000)
    assert info.value.warn_code == 301 and isinstance(info.value, NotAcceptable)  # 488 in the core
    ours = build_offer("127.0.0.1", 30000)
    with pytest.raises(BadMediaAddress):
        accept_answer(ours, parse_sdp(offer("0", conn=conn)))


def test_host_name_on_a_stream_we_do_not_use_is_fine() -> None:
    body = offer("0") + "m=video 3227 RTP/AVP 31\r\nc=IN IP4 video.example.com\r\n"
    _, media = answer_offer(parse_sdp(body), "127.0.0.1", 30000)
    assert media.remote_host == "127.0.0.1"


# ------------------------------------------------------------------------------------- digest


def test_rfc2617_example() -> None:
    response = digest_response(
        username="Mufasa",
        password="Circle Of Life",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    challenge = parse_challenge(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    header = build_authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert f'response="{expected}"' in header
    assert "qop=auth, nc=00000001" in header
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header


def test_challenge_without_qop_uses_rfc2069_form_and_bad_challenges_raise() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    header = build_authorization(
        challenge, method="INVITE", uri="sip:x@y", username="u", password="p", cnonce="c"
    )
    assert "qop" not in header and "cnonce" not in header
    for bad in ['Basic realm="r"', 'Digest realm="r"', 'Digest realm="r", nonce="n", algorithm=SHA-512-256',
                'Digest realm="r", nonce="n", qop="auth-int"']:  # fmt: skip
        with pytest.raises(DigestError):
            parse_challenge(bad)
