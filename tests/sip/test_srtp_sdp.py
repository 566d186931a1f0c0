"""SDES keys in SDP (RFC 4568): the a=crypto attribute, offer/answer under each SRTP policy, and the
core's 488 naming why."""

from __future__ import annotations

import base64

import pytest

from voxline.sip import IncomingCall, SipConfig, SipResponse, UserAgentCore
from voxline.sip.crypto import (
    SUITES,
    CryptoAttribute,
    CryptoError,
    format_crypto,
    new_key,
    parse_crypto,
    parse_policy,
)
from voxline.sip.message import parse_message
from voxline.sip.sdp import NotAcceptable, accept_answer, answer_offer, build_offer, parse_sdp

from .messages import OFFER_PCMU_PCMA, invite

KEY = bytes(range(30))
INLINE = base64.b64encode(KEY).decode()


def offer(proto: str = "RTP/SAVP", *crypto: str) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             f"m=audio 4000 {proto} 0 101", "a=rtpmap:101 telephone-event/8000",
             *(f"a=crypto:{c}" for c in crypto)]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def test_crypto_attribute_round_trips() -> None:
    for suite in SUITES:
        attr = CryptoAttribute(7, suite, new_key(suite))
        assert parse_crypto(format_crypto(attr)) == attr
    parsed = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20")  # a lifetime is fine
    assert parsed.key == KEY and parsed.tag == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"1 F8_128_HMAC_SHA1_80 inline:{INLINE}", "unknown crypto suite 'F8_128_HMAC_SHA1_80'"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(16)).decode(), "bad key length 16"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20|1:4", "MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE} UNENCRYPTED_SRTP", "session parameters"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64", "not base64"),
        ("x AES_CM_128_HMAC_SHA1_80 inline:" + INLINE, "bad a=crypto tag"),
        ("1 AES_CM_128_HMAC_SHA1_80", "needs a tag, a suite and key parameters"),
    ],
)
def test_bad_crypto_attributes_say_why(value: str, reason: str) -> None:
    with pytest.raises(CryptoError, match=reason.replace("^", r"\^")):
        parse_crypto(value)


def test_policy_names_are_checked() -> None:
    assert parse_policy(" Require ") == "require"
    with pytest.raises(ValueError, match="srtp must be off, offer or require"):
        parse_policy("maybe")


def test_savp_offer_is_answered_with_our_own_key_and_the_chosen_tag() -> None:
    sdp = offer(
        "RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_32 inline:{INLINE}", f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"
    )
    answer, media = answer_offer(parse_sdp(sdp), "127.0.0.1", 5000, srtp="offer")
    assert media.srtp is not None
    assert (media.srtp.suite, media.srtp.tag, media.srtp.remote_key) == ("AES_CM_128_HMAC_SHA1_32", 1, KEY)
    assert media.srtp.local_key != KEY and len(media.srtp.local_key) == 30
    m = answer.media[0]
    assert m.proto == "RTP/SAVP"
    assert [parse_crypto(v or "") for k, v in m.attributes if k == "crypto"] == [
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_32", media.srtp.local_key)
    ]
    assert repr(KEY) not in repr(media) and repr(media.srtp.local_key) not in repr(media)  # never logged
    # The same call answered again keeps its key (the leg's SRTP already protects with it).
    _, again = answer_offer(parse_sdp(sdp), "127.0.0.1", 5000, srtp="offer", local_key=media.srtp.local_key)
    assert again.srtp == media.srtp


def test_an_unusable_key_skips_to_the_next_line() -> None:
    bad = f"1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(bytes(20)).decode()}"
    _, media = answer_offer(
        parse_sdp(offer("RTP/SAVP", bad, f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}")), "h", 1, srtp="offer"
    )
    assert media.srtp is not None and media.srtp.tag == 2


def test_savp_offer_without_a_usable_key_is_not_acceptable() -> None:
    with pytest.raises(NotAcceptable, match="unknown crypto suite 'AEAD_AES_256_GCM'"):
        answer_offer(
            parse_sdp(offer("RTP/SAVP", f"1 AEAD_AES_256_GCM inline:{INLINE}")), "h", 1, srtp="offer"
        )
    with pytest.raises(NotAcceptable, match="no a=crypto line"):
        answer_offer(parse_sdp(offer("RTP/SAVP")), "h", 1, srtp="require")


def test_plain_offer_under_each_policy() -> None:
    plain = parse_sdp(offer("RTP/AVP"))
    assert answer_offer(plain, "h", 1, srtp="off")[1].srtp is None
    assert answer_offer(plain, "h", 1, srtp="offer")[1].srtp is None
    with pytest.raises(NotAcceptable, match="SRTP is required here"):
        answer_offer(plain, "h", 1, srtp="require")
    # A best-effort offer (RTP/AVP with keys): SRTP when we do it, plain RTP when srtp is off.
    best_effort = parse_sdp(offer("RTP/AVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"))
    answer, media = answer_offer(best_effort, "h", 1, srtp="offer")
    assert media.srtp is not None and answer.media[0].proto == "RTP/AVP"
    answer, media = answer_offer(best_effort, "h", 1, srtp="off")
    assert media.srtp is None and not any(k == "crypto" for k, _ in answer.media[0].attributes)


def test_dtls_srtp_is_refused() -> None:
    with pytest.raises(NotAcceptable, match="UDP/TLS/RTP/SAVP"):
        answer_offer(parse_sdp(offer("UDP/TLS/RTP/SAVP")), "h", 1, srtp="offer")


def test_our_offers_and_their_answers() -> None:
    ours = build_offer("127.0.0.1", 5000, srtp="require")
    m = ours.media[0]
    assert m.proto == "RTP/SAVP"
    lines = [parse_crypto(v or "") for k, v in m.attributes if k == "crypto"]
    assert [a.suite for a in lines] == list(SUITES) and lines[0].key != lines[1].key
    assert build_offer("127.0.0.1", 5000, srtp="offer").media[0].proto == "RTP/AVP"
    assert not build_offer("127.0.0.1", 5000).media[0].attributes
    # Their answer (what answer_offer makes) picks one of our lines: the keys pair up.
    answer, theirs = answer_offer(parse_sdp(ours.to_bytes()), "127.0.0.1", 6000, srtp="offer")
    media = accept_answer(ours, parse_sdp(answer.to_bytes()))
    assert media.srtp is not None and theirs.srtp is not None
    assert media.srtp.local_key == theirs.srtp.remote_key and media.srtp.remote_key == theirs.srtp.local_key
    # A plain answer: fine for a best-effort offer, unusable for a required one.
    plain_answer = parse_sdp(offer("RTP/AVP").replace(b"4000", b"6000"))
    assert accept_answer(build_offer("127.0.0.1", 5000, srtp="offer"), plain_answer).srtp is None
    with pytest.raises(NotAcceptable, match="no usable a=crypto line"):
        accept_answer(ours, plain_answer)


def test_the_core_answers_488_with_the_reason_and_srtp_with_our_key() -> None:
    core = UserAgentCore(SipConfig(srtp="offer"))
    savp = OFFER_PCMU_PCMA.replace("RTP/AVP", "RTP/SAVP")
    core.receive(
        invite(sdp=savp + f"a=crypto:1 F8_128_HMAC_SHA1_80 inline:{INLINE}\r\n"), ("127.0.0.1", 5062), 0.0
    )
    (out,) = core.data_to_send()
    resp = parse_message(out.data)
    assert isinstance(resp, SipResponse) and resp.status == 488
    assert "unknown crypto suite 'F8_128_HMAC_SHA1_80'" in (resp.headers.get("Warning") or "")
    assert core.events_received() == []
    good = savp + f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}\r\n"
    core.receive(invite(call_id="c2", branch="z9hG4bK-2", sdp=good), ("127.0.0.1", 5062), 0.0)
    (event,) = core.events_received()
    assert isinstance(event, IncomingCall) and event.media is not None and event.media.srtp is not None
    core.data_to_send()
    answer = parse_sdp(core.answer("c2", 0.0, 5000))
    (line,) = [v for k, v in answer.media[0].attributes if k == "crypto"]
    assert parse_crypto(line or "").key == event.media.srtp.local_key  # the key the leg protects with
