"""The core's defences on a virtual clock: who may call (allow_sources), transaction matching on
sent-by, slots freed by timeouts (unanswered, never ACKed), refused media addresses, limits."""

from __future__ import annotations

import logging

import pytest

from voxline.sip import (
    CallDisconnected,
    CallFailed,
    IncomingCall,
    SipConfig,
    SipRequest,
    SipResponse,
    UserAgentCore,
    parse_message,
)

from .messages import OFFER_PCMU_PCMA, invite, request
from .test_core import ANSWER, PEER, Harness, ack, uas_response

STRANGER = ("127.0.0.9", 5070)


def _sent(core: UserAgentCore) -> list[tuple[tuple[str, int], SipRequest | SipResponse]]:
    return [(out.addr, parse_message(out.data)) for out in core.data_to_send()]


def _statuses(sent: list[tuple[tuple[str, int], SipRequest | SipResponse]]) -> list[int]:
    return [m.status for _, m in sent if isinstance(m, SipResponse)]


def _via(data: bytes, host: str, port: int) -> bytes:
    """The message with its Via's sent-by (127.0.0.1:5062) changed."""
    return data.replace(b"SIP/2.0/UDP 127.0.0.1:5062;", f"SIP/2.0/UDP {host}:{port};".encode())


# ------------------------------------------------------------------------------ §17.2.3 matching


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


# ------------------------------------------------------------------------------ allow_sources


def test_invite_from_outside_allow_sources_gets_403_before_any_call_exists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voxline.sip")
    h = Harness(allow_sources=["10.0.0.0/8", "192.0.2.7"])
    for n in range(3):  # one source, three calls: one log line
        h.feed(invite(call_id=f"scan-{n}", branch=f"z9hG4bK-scan-{n}"))
    assert [r.status for r in h.responses()] == [403, 403, 403] and h.events == []
    assert h.core.stats["rejected_source"] == 3 and h.core.active_calls == 0
    assert len([r for r in caplog.records if "allow_sources" in r.getMessage()]) == 1
    h.feed(invite(call_id="scan-0", branch="z9hG4bK-scan-0"))  # a retransmission: the same 403
    h.run_until(40.0)  # stateless: nothing retransmitted towards a maybe spoofed source
    assert [r.status for r in h.responses()] == [403] * 4 and h.core.next_deadline() is None
    for source in (("10.1.2.3", 5060), ("192.0.2.7", 5999)):
        h.feed(invite(call_id=f"ok-{source[0]}", branch=f"z9hG4bK-{source[0]}"), source)
    assert [type(e).__name__ for e in h.events] == ["IncomingCall", "IncomingCall"]


def test_allow_sources_ipv6_networks_and_ipv4_mapped_peers() -> None:
    h = Harness(allow_sources=("2001:db8::/32", "192.0.2.0/24"))
    for n, host in enumerate(["2001:db8::7", "::ffff:192.0.2.5", "2001:db9::1", "198.51.100.1"]):
        h.feed(invite(call_id=f"v6-{n}", branch=f"z9hG4bK-v6-{n}"), (host, 5060))
    assert [e.call_id for e in h.events] == ["v6-0", "v6-1"]
    assert [r.status for r in h.responses()] == [100, 100, 403, 403]


def test_options_from_anyone_is_answered_and_a_strangers_cancel_is_refused() -> None:
    h = Harness(allow_sources=["10.0.0.0/8"])
    h.feed(request("OPTIONS", branch="z9hG4bK-opt"), STRANGER)
    assert [r.status for r in h.responses()] == [200]
    caller = ("10.0.0.5", 5062)
    h.feed(invite(), caller)
    h.feed(request("CANCEL", branch="z9hG4bK-inv-1", cseq=1), STRANGER)  # spoofed branch and Via
    assert [r.status for r in h.responses()] == [200, 100, 403]
    assert h.core.call_state("call-1@127.0.0.1") == "incoming"
    h.feed(request("CANCEL", branch="z9hG4bK-inv-1", cseq=1), caller)
    assert [r.status for r in h.responses()][-2:] == [200, 487]


def test_in_dialog_requests_from_the_dialogs_own_peer_pass_a_strangers_do_not() -> None:
    # We call out to a carrier outside allow_sources: its BYE must still end the call.
    h = Harness(allow_sources=["10.0.0.0/8"])
    carrier = ("127.0.0.1", 5070)
    call_id = h.core.call("sip:bob@127.0.0.1:5070", h.now, rtp_port=31000)
    h.collect()
    inv = h.requests("INVITE")[0][1]
    h.feed(uas_response(inv, 200, "OK", body=ANSWER), carrier)
    tag = inv.from_.tag or ""

    def bye(branch: str) -> bytes:
        return (
            f"BYE sip:voxline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            f"From: <sip:bob@127.0.0.1:5070>;tag=uas\r\nTo: {inv.headers.get('From')}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    assert tag
    h.feed(bye("z9hG4bK-bye-stranger"), STRANGER)
    assert h.responses()[-1].status == 403 and h.core.call_state(call_id) == "connected"
    h.feed(bye("z9hG4bK-bye-carrier"), carrier)
    assert h.responses()[-1].status == 200
    assert isinstance(h.events[-1], CallDisconnected) and h.events[-1].by == "remote"


def test_allow_sources_is_validated_naming_the_entry() -> None:
    with pytest.raises(ValueError, match=r"allow_sources: '10\.0\.0\.0/33' is not an IP address or CIDR"):
        SipConfig(allow_sources=["192.0.2.1", "10.0.0.0/33"])
    with pytest.raises(ValueError, match=r"allow_sources: 'carrier\.example\.com'"):
        SipConfig(allow_sources=["carrier.example.com"])
    assert SipConfig(allow_sources="10.0.0.0/8").allow_sources == ("10.0.0.0/8",)  # one entry
    assert SipConfig(allow_sources=["10.1.2.3/8"]).allow_sources == ("10.1.2.3/8",)  # host bits: fine
    h = Harness(allow_sources=())  # nobody: every new call refused
    h.feed(invite())
    assert [r.status for r in h.responses()] == [403]


def test_refused_sources_remembered_for_logging_are_bounded() -> None:
    h = Harness(allow_sources=["10.0.0.0/8"])
    for n in range(1500):
        h.core.receive(
            invite(call_id=f"c{n}", branch=f"z9hG4bK-{n}"), (f"127.0.{n // 250}.{n % 250}", 5060), 0.0
        )
    assert h.core.stats["rejected_source"] == 1500
    assert len(h.core._refused_sources) == 1024


# ------------------------------------------------------------------------------ slots


def test_unanswered_incoming_call_is_refused_480_at_alerting_timeout() -> None:
    # Issue 13 item 7c: a call the application neither answers nor rejects must not hold a slot.
    h = Harness(alerting_timeout=5.0, max_calls=1)
    h.feed(invite())
    h.core.ringing("call-1@127.0.0.1", h.now)
    h.run_until(4.9)
    h.feed(invite(call_id="second", branch="z9hG4bK-2"))
    assert [r.status for r in h.responses()] == [100, 180, 503]
    h.run_until(5.0)
    assert h.times(480) == [5.0]
    failed = h.events[-1]
    assert isinstance(failed, CallFailed) and (failed.status, failed.by) == (480, "timeout")
    assert "5 s" in failed.reason and h.core.active_calls == 0 and h.core.stats["alerting_timeouts"] == 1
    h.feed(ack(h.responses(480)[0].to.tag or "", branch="z9hG4bK-inv-1"))  # the 480's ACK
    h.feed(invite(call_id="third", branch="z9hG4bK-3"))
    assert isinstance(h.events[-1], IncomingCall) and h.events[-1].call_id == "third"


def test_alerting_timeout_spares_answered_calls_and_can_be_disabled() -> None:
    h = Harness(alerting_timeout=5.0)
    call_id, tag = h.answered()
    h.feed(ack(tag))
    h.run_until(100.0)
    assert h.times(480) == [] and h.core.call_state(call_id) == "connected"
    h = Harness(alerting_timeout=None)
    h.feed(invite())
    h.run_until(3600.0)
    assert h.times(480) == [] and h.core.active_calls == 1
    assert SipConfig().alerting_timeout == 60.0
    with pytest.raises(ValueError, match="alerting_timeout"):
        SipConfig(alerting_timeout=0)


def test_a_200_never_acked_frees_its_slot_at_timer_h() -> None:
    # Issue 13 item 7b: 100 never-ACKed junk calls filled every slot. Timer H (64*T1) ends each one.
    h = Harness(max_calls=1)
    call_id, _ = h.answered()
    h.run_until(31.9)
    h.feed(invite(call_id="second", branch="z9hG4bK-2"))
    assert h.responses()[-1].status == 503  # the slot is still held...
    h.run_until(32.0)
    failed = h.events[-1]  # ...until Timer H: CallFailed at once, a BYE, the slot free
    assert isinstance(failed, CallFailed) and (failed.call_id, failed.status, failed.by) == (
        call_id,
        408,
        "timeout",
    )
    assert h.core.active_calls == 0 and h.core.stats["ack_timeouts"] == 1
    assert [t for t, _ in h.requests("BYE")] == [32.0]
    h.feed(invite(call_id="third", branch="z9hG4bK-3"))
    assert isinstance(h.events[-1], IncomingCall) and h.events[-1].call_id == "third"


# ------------------------------------------------------------------------------ media, limits


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
