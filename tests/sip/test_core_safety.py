"""The core's defences on a virtual clock: transaction matching on sent-by, refused media
addresses, limits, keep-alives."""

from __future__ import annotations

import logging

import pytest

from voxline.sip import (
    IncomingCall,
    SipConfig,
    SipRequest,
    SipResponse,
    UserAgentCore,
    parse_message,
)

from .messages import OFFER_PCMU_PCMA, invite, request
from .test_core import PEER, Harness

STRANGER = ("127.0.0.9", 5070)


def _sent(core: UserAgentCore) -> list[tuple[tuple[str, int], SipRequest | SipResponse]]:
    return [(out.addr, parse_message(out.data)) for out in core.data_to_send()]


def _statuses(sent: list[tuple[tuple[str, int], SipRequest | SipResponse]]) -> list[int]:
    return [m.status for _, m in sent if isinstance(m, SipResponse)]


def _via(data: bytes, host: str, port: int) -> bytes:
    """The message with its Via's sent-by (127.0.0.1:5062) changed."""
    return data.replace(b"SIP/2.0/UDP 127.0.0.1:5062;", f"SIP/2.0/UDP {host}:{port};".encode())


def test_a_second_peer_reusing_a_branch_is_its_own_transaction() -> None:
    # Issue 13 item 12: matching on the branch alone swallowed B's request and re-sent A's response
    # to A. Branch AND sent-by AND method identify a server transaction.
    core = UserAgentCore(SipConfig())
    core.receive(request("OPTIONS", branch="z9hG4bK-same", call_id="a"), PEER, 0.0)
    b = _via(request("OPTIONS", branch="z9hG4bK-same", call_id="b"), *STRANGER)
    core.receive(b, STRANGER, 0.0)
    sent = _sent(core)
    assert [(addr, m.call_id, _statuses([(addr, m)])) for addr, m in sent] == [
        (PEER, "a", [200]),
        (STRANGER, "b", [200]),
    ]
    assert core.stats["retransmissions_absorbed"] == 0
    core.receive(request("OPTIONS", branch="z9hG4bK-same", call_id="a"), PEER, 0.1)  # A again
    assert [(addr, m.call_id) for addr, m in _sent(core)] == [(PEER, "a")]
    assert core.stats["retransmissions_absorbed"] == 1


def test_a_second_callers_invite_with_the_same_branch_is_a_call_of_its_own() -> None:
    h = Harness()
    h.feed(invite(branch="z9hG4bK-dup", call_id="call-a"))
    h.feed(_via(invite(branch="z9hG4bK-dup", call_id="call-b"), *STRANGER), STRANGER)
    assert [e.call_id for e in h.events if isinstance(e, IncomingCall)] == ["call-a", "call-b"]


def test_invite_whose_audio_goes_to_a_host_name_gets_488_with_warning_301() -> None:
    h = Harness()
    h.feed(invite(sdp=OFFER_PCMU_PCMA.replace("c=IN IP4 127.0.0.1", "c=IN IP4 media.example.com")))
    (resp,) = h.responses()
    assert resp.status == 488 and (resp.headers.get("Warning") or "").startswith("301 voxline")
    assert h.events == []


def test_keepalives_and_oversize_messages() -> None:
    h = Harness(max_message_bytes=2048)
    h.feed(b"\r\n\r\n")
    assert h.sent == [] and h.core.stats["keepalives"] == 1 and h.core.stats["malformed_dropped"] == 0
    h.feed(invite(extra="X-Pad: " + "p" * 3000 + "\r\n"))
    (resp,) = h.responses()
    assert resp.status == 513 and h.core.stats["over_limit"] == 1 and h.events == []
    with pytest.raises(ValueError, match="max_message_bytes"):
        SipConfig(max_message_bytes=100_000)


def test_log_records_of_bad_input_keep_no_exception_alive(caplog: pytest.LogCaptureFixture) -> None:
    # A kept record (a queue handler, a test's capture) holding the SipParseError kept its traceback
    # and the frames with up to 64 KB of input each: the fuzz run's collector pauses came from there.
    caplog.set_level(logging.INFO, logger="voxline.sip")
    h = Harness()
    h.feed(b"\xff\xfeINVITE garbage\r\n\r\n")
    h.feed(invite(sdp="v=0\r\nm=audio x RTP/AVP 0\r\n"))
    records = [r for r in caplog.records if r.name == "voxline.sip"]
    assert len(records) == 2
    assert all(not isinstance(arg, BaseException) for r in records for arg in (r.args or ()))
