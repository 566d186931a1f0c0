"""The user agent core and its transactions on a virtual clock (no sockets, no sleeping)."""

from __future__ import annotations

import itertools

import pytest

from voxline.sip import (
    CallConnected,
    CallDisconnected,
    CallFailed,
    CallProgress,
    CallReinvite,
    CallStateError,
    DtmfInfo,
    IncomingCall,
    SipConfig,
    SipEvent,
    SipRequest,
    SipResponse,
    UserAgentCore,
    parse_message,
    parse_sdp,
)

from .messages import OFFER_PCMU_PCMA, invite, request

PEER = ("127.0.0.1", 5062)


class Harness:
    """A core on a virtual clock; collects what it sends (with the time) and its events."""

    def __init__(self, **config: object) -> None:
        self.core = UserAgentCore(SipConfig(**config))  # type: ignore[arg-type]
        self.now = 0.0
        self.sent: list[tuple[float, SipRequest | SipResponse]] = []
        self.events: list[SipEvent] = []

    def feed(self, data: bytes, addr: tuple[str, int] = PEER) -> None:
        self.core.receive(data, addr, self.now)
        self.collect()

    def collect(self) -> None:
        for out in self.core.data_to_send():
            self.sent.append((self.now, parse_message(out.data)))
        self.events += self.core.events_received()

    def run_until(self, t: float) -> None:
        while (d := self.core.next_deadline()) is not None and d <= t:
            self.now = max(self.now, d)
            self.core.tick(self.now)
            self.collect()
        self.now = t

    def responses(self, status: int | None = None) -> list[SipResponse]:
        return [
            m for _, m in self.sent if isinstance(m, SipResponse) and (status is None or m.status == status)
        ]

    def times(self, status: int) -> list[float]:
        return [t for t, m in self.sent if isinstance(m, SipResponse) and m.status == status]

    def requests(self, method: str) -> list[tuple[float, SipRequest]]:
        return [(t, m) for t, m in self.sent if isinstance(m, SipRequest) and m.method == method]

    def answered(self) -> tuple[str, str]:
        """Feed an INVITE and answer it; returns (call_id, our To tag)."""
        self.feed(invite())
        incoming = self.events[-1]
        assert isinstance(incoming, IncomingCall)
        self.core.answer(incoming.call_id, self.now, rtp_port=30000)
        self.collect()
        ok = self.responses(200)[-1]
        tag = ok.to.tag
        assert tag is not None
        return incoming.call_id, tag


def ack(to_tag: str, cseq: int = 1, branch: str = "z9hG4bK-ack-1", body: str = "") -> bytes:
    return request("ACK", cseq=cseq, to_tag=to_tag, branch=branch, body=body)


def test_inbound_call_trying_ringing_answer_ack_bye() -> None:
    h = Harness()
    h.feed(invite(extra="X-Custom: 42\r\n"))
    assert [r.status for r in h.responses()] == [100]
    incoming = h.events[0]
    assert isinstance(incoming, IncomingCall)
    assert (incoming.caller_id, incoming.display_name, incoming.destination) == (
        "15551230000",
        "Alice",
        "agent",
    )
    assert incoming.headers.get("x-custom") == "42"
    assert incoming.media is not None and incoming.media.codec.name == "PCMU"
    h.core.ringing(incoming.call_id, h.now)
    h.collect()
    ringing = h.responses(180)[0]
    sdp = h.core.answer(incoming.call_id, h.now, rtp_port=30000)
    h.collect()
    ok = h.responses(200)[0]
    assert ok.to.tag == ringing.to.tag and ok.to.tag is not None
    assert ok.body == sdp and b"m=audio 30000 RTP/AVP 0 101" in sdp
    assert ok.headers.get("Contact") == "<sip:voxline@127.0.0.1:5060>"
    assert ok.vias[0].params["rport"] == "5062"  # rport filled with the source port
    h.feed(ack(ok.to.tag or ""))
    assert isinstance(h.events[-1], CallConnected)
    h.feed(request("BYE", to_tag=ok.to.tag, branch="z9hG4bK-bye", cseq=2))
    assert h.responses()[-1].status == 200 and h.responses()[-1].cseq == (2, "BYE")
    ended = h.events[-1]
    assert isinstance(ended, CallDisconnected) and (ended.by, ended.reason) == ("remote", "BYE")
    assert h.core.active_calls == 0


def test_200_retransmitted_on_t1_doubling_to_t2_until_ack() -> None:
    h = Harness()
    _, tag = h.answered()
    h.run_until(20.0)
    assert h.times(200) == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
    h.feed(ack(tag))
    assert isinstance(h.events[-1], CallConnected)
    h.run_until(40.0)
    assert len(h.times(200)) == 8  # the ACK stopped them


def test_200_without_ack_gives_up_at_64_t1_with_bye() -> None:
    h = Harness()
    call_id, _ = h.answered()
    h.run_until(40.0)
    times = h.times(200)
    assert times[:5] == [0.0, 0.5, 1.5, 3.5, 7.5] and all(
        b - a == 4.0 for a, b in itertools.pairwise(times[4:])
    )
    assert times[-1] < 32.0
    byes = h.requests("BYE")
    assert byes[0][0] == 32.0 and len({bye.vias[0].branch for _, bye in byes}) == 1
    failed = h.events[-1]
    assert isinstance(failed, CallFailed) and (failed.status, failed.by) == (408, "timeout")
    assert h.core.call_state(call_id) == "ended"


def test_retransmitted_invite_is_absorbed() -> None:
    h = Harness()
    h.feed(invite())
    h.feed(invite())  # retransmission before the answer: the 100 again, no second call
    assert [r.status for r in h.responses()] == [100, 100]
    assert sum(isinstance(e, IncomingCall) for e in h.events) == 1
    h.core.answer(h.events[0].call_id, h.now, rtp_port=30000)
    h.collect()
    before = len(h.sent)
    h.feed(invite())  # after the 2xx: absorbed (the 2xx timer re-sends the 200)
    assert len(h.sent) == before
    assert h.core.stats["retransmissions_absorbed"] == 2


def test_cancel_before_answer_gives_200_and_487_and_487_is_retransmitted_until_ack() -> None:
    h = Harness()
    h.feed(invite())
    h.core.ringing(h.events[0].call_id, h.now)
    h.collect()
    h.now = 1.0
    cancel = request("CANCEL", cseq=1, branch="z9hG4bK-inv-1")
    h.feed(cancel)
    assert [(r.status, r.cseq[1]) for r in h.responses()][-2:] == [(200, "CANCEL"), (487, "INVITE")]
    failed = h.events[-1]
    assert isinstance(failed, CallFailed) and (failed.status, failed.by) == (487, "remote")
    h.run_until(3.0)  # Timer G: 487 again at +0.5 and +1.5
    assert h.times(487) == [1.0, 1.5, 2.5]
    h.feed(request("ACK", cseq=1, branch="z9hG4bK-inv-1", to_tag=h.responses(487)[0].to.tag))
    h.run_until(10.0)
    assert h.times(487) == [1.0, 1.5, 2.5]
    h.feed(cancel)  # retransmitted CANCEL: the same 200 again
    assert h.responses()[-1].status == 200 and h.responses()[-1].cseq[1] == "CANCEL"
    h.feed(request("CANCEL", cseq=1, branch="z9hG4bK-unknown"))
    assert h.responses()[-1].status == 481


def test_487_without_ack_stops_at_timer_h() -> None:
    h = Harness()
    h.feed(invite())
    h.core.reject(h.events[0].call_id, h.now, 486)
    h.collect()
    h.run_until(60.0)
    times = h.times(486)
    assert times[:5] == [0.0, 0.5, 1.5, 3.5, 7.5] and times[-1] < 32.0
    assert isinstance(h.events[-1], CallFailed) and h.events[-1].by == "local"


def test_488_when_no_common_codec_and_400_for_bad_sdp_and_415() -> None:
    h = Harness()
    g729 = OFFER_PCMU_PCMA.replace("RTP/AVP 0 8 101", "RTP/AVP 18").replace("a=rtpmap:0", "a=x:0")
    h.feed(invite(sdp=g729))
    assert h.responses()[-1].status == 488
    h.feed(invite(call_id="c2", branch="z9hG4bK-2", sdp="v=0\r\nm=audio x\r\n"))
    assert h.responses()[-1].status == 400
    h.feed(
        invite(call_id="c3", branch="z9hG4bK-3", extra="Content-Type: text/plain\r\n", sdp=None).replace(
            b"Content-Length: 0", b"Content-Length: 2"
        )
        + b"hi"
    )
    assert h.responses()[-1].status == 415
    assert not any(isinstance(e, IncomingCall) for e in h.events)


def test_503_beyond_max_calls_and_420_for_unsupported_require() -> None:
    h = Harness(max_calls=2)
    for i in range(3):
        h.feed(invite(call_id=f"c{i}", branch=f"z9hG4bK-{i}"))
    assert [r.status for r in h.responses()] == [100, 100, 503]
    assert h.core.stats["rejected_over_limit"] == 1
    h.feed(invite(call_id="c9", branch="z9hG4bK-9", extra="Require: 100rel\r\n"))
    assert h.responses()[-1].status == 420 and h.responses()[-1].headers.get("Unsupported") == "100rel"


def test_after_stop_accepting_new_invites_get_503_and_calls_in_progress_go_on() -> None:
    h = Harness()
    call_id, tag = h.answered()  # answered, its ACK not here yet
    h.feed(invite(call_id="ringing@127.0.0.1", branch="z9hG4bK-r"))
    ringing = h.events[-1]
    assert isinstance(ringing, IncomingCall)
    assert h.core.accepting
    h.core.stop_accepting(h.now)
    h.core.stop_accepting(h.now)  # again: nothing more
    assert not h.core.accepting and h.core.data_to_send() == [] and h.core.events_received() == []
    h.feed(invite(call_id="new@127.0.0.1", branch="z9hG4bK-new"))
    refused = h.responses()[-1]
    assert (refused.status, refused.call_id, refused.headers.get("Retry-After")) == (
        503,
        "new@127.0.0.1",
        "5",
    )
    assert (h.core.stats["rejected_draining"], h.core.stats["rejected_over_limit"]) == (1, 0)
    assert h.core.call_state("new@127.0.0.1") is None
    # The calls already there: ACKed, re-INVITEd, answered, asked for OPTIONS, ended as usual.
    h.feed(ack(tag))
    assert isinstance(h.events[-1], CallConnected) and h.core.call_state(call_id) == "connected"
    h.feed(invite(to_tag=tag, cseq=2, branch="z9hG4bK-re1"))
    assert h.responses()[-1].status == 200 and h.responses()[-1].cseq == (2, "INVITE")
    h.core.answer(ringing.call_id, h.now, rtp_port=30002)
    h.collect()
    assert h.responses()[-1].status == 200 and h.responses()[-1].call_id == ringing.call_id
    h.feed(request("OPTIONS", cseq=1, branch="z9hG4bK-o", call_id=call_id, to_tag=tag))
    assert h.responses()[-1].status == 200  # inside a dialog: a keep-alive of that call
    # Outside a dialog, OPTIONS is a balancer's probe: this node takes no new calls.
    h.feed(request("OPTIONS", cseq=1, branch="z9hG4bK-probe", call_id="probe@127.0.0.1"))
    probe = h.responses()[-1]
    assert (probe.status, probe.headers.get("Retry-After")) == (503, "5")
    assert probe.headers.get("Warning") == '399 voxline "not accepting new calls"'
    h.core.hangup(call_id, h.now)
    h.collect()
    assert isinstance(h.events[-1], CallDisconnected) and h.core.stats["rejected_draining"] == 1


def test_options_gets_allow_and_accept() -> None:
    h = Harness()
    h.feed(request("OPTIONS", cseq=1))
    ok = h.responses()[-1]
    assert ok.status == 200
    assert "INVITE" in (ok.headers.get("Allow") or "") and ok.headers.get("Accept") == "application/sdp"
    h.feed(request("SUBSCRIBE", cseq=1, branch="z9hG4bK-s"))
    assert h.responses()[-1].status == 405
    h.feed(request("FOO", cseq=1, branch="z9hG4bK-f"))
    assert h.responses()[-1].status == 501


def test_reinvite_hold_resume_and_codec_change() -> None:
    h = Harness()
    call_id, tag = h.answered()
    h.feed(ack(tag))
    hold = OFFER_PCMU_PCMA.replace("a=sendrecv", "a=sendonly")
    h.feed(invite(to_tag=tag, cseq=2, branch="z9hG4bK-re1", sdp=hold))
    ok = h.responses(200)[-1]
    assert ok.cseq == (2, "INVITE")
    answer = parse_sdp(ok.body)
    assert answer.media[0].direction == "recvonly" and answer.media[0].port == 30000
    assert answer.origin[2] == 1  # o= version bumped
    event = h.events[-1]
    assert isinstance(event, CallReinvite) and event.on_hold
    h.feed(ack(tag, cseq=2, branch="z9hG4bK-ack-2"))
    pcma = OFFER_PCMU_PCMA.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")
    h.feed(invite(to_tag=tag, cseq=3, branch="z9hG4bK-re2", sdp=pcma))
    event = h.events[-1]
    assert isinstance(event, CallReinvite) and not event.on_hold and event.media.codec.name == "PCMA"
    assert parse_sdp(h.responses(200)[-1].body).origin[2] == 2
    # A re-INVITE while our 200 to the last one is not ACKed yet: 500 with Retry-After.
    h.feed(invite(to_tag=tag, cseq=4, branch="z9hG4bK-re3"))
    assert h.responses()[-1].status == 500 and h.responses()[-1].headers.get("Retry-After")
    # A re-INVITE with no usable codec: 488, and the call goes on.
    h.feed(ack(tag, cseq=3, branch="z9hG4bK-ack-3"))
    g729 = OFFER_PCMU_PCMA.replace("RTP/AVP 0 8 101", "RTP/AVP 18")
    h.feed(invite(to_tag=tag, cseq=5, branch="z9hG4bK-re4", sdp=g729))
    assert h.responses()[-1].status == 488
    assert h.core.call_state(call_id) == "connected"


def test_local_hangup_sends_bye_with_dialog_identifiers_and_retransmits_it() -> None:
    h = Harness()
    call_id, tag = h.answered()
    h.feed(ack(tag))
    h.core.hangup(call_id, h.now)
    h.collect()
    assert isinstance(h.events[-1], CallDisconnected) and h.events[-1].by == "local"
    h.run_until(40.0)
    byes = h.requests("BYE")
    assert [t for t, _ in byes][:4] == [0.0, 0.5, 1.5, 3.5]  # Timer E, no answer
    assert max(t for t, _ in byes) < 32.0
    bye = byes[0][1]
    assert bye.uri == "sip:alice@127.0.0.1:5062"  # the remote target (Contact)
    assert bye.from_.tag == tag and bye.to.tag == "caller-tag" and bye.cseq[1] == "BYE"
    with pytest.raises(CallStateError):
        h.core.answer(call_id, h.now, rtp_port=1)


def test_hangup_before_ack_waits_for_the_ack() -> None:
    h = Harness()
    call_id, tag = h.answered()
    h.core.hangup(call_id, h.now)
    h.collect()
    assert not h.requests("BYE")
    h.now = 0.2
    h.feed(ack(tag))
    assert len(h.requests("BYE")) == 1
    assert not any(isinstance(e, CallConnected) for e in h.events)


def test_info_dtmf_relay() -> None:
    h = Harness()
    _, tag = h.answered()
    h.feed(ack(tag))
    h.feed(request("INFO", to_tag=tag, cseq=3, extra="Content-Type: application/dtmf-relay\r\n",
                   body="Signal=5\r\nDuration=160\r\n"))  # fmt: skip
    assert h.responses()[-1].status == 200
    assert h.events[-1] == DtmfInfo(h.events[0].call_id, "5", 160)


def test_in_dialog_request_for_unknown_dialog_gets_481() -> None:
    h = Harness()
    h.feed(request("BYE", to_tag="nope"))
    assert h.responses()[-1].status == 481
    h.feed(invite(to_tag="nope", branch="z9hG4bK-x"))
    assert h.responses()[-1].status == 481


# ------------------------------------------------------------------------------------- outbound


def uas_response(req: SipRequest, status: int, reason: str, *, tag: str = "uas", body: str = "",
                 extra: str = "") -> bytes:  # fmt: skip
    vias = "".join(f"Via: {v}\r\n" for v in req.headers.get_all("Via"))
    to = req.headers.get("To") or ""
    if status > 100 and ";tag=" not in to:
        to += f";tag={tag}"
    data = body.encode()
    return (
        f"SIP/2.0 {status} {reason}\r\n{vias}From: {req.headers.get('From')}\r\nTo: {to}\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.headers.get('CSeq')}\r\n"
        f"Contact: <sip:bob@127.0.0.1:5070>\r\n{extra}"
        + ("Content-Type: application/sdp\r\n" if data else "")
        + f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


ANSWER = OFFER_PCMU_PCMA.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")


def test_outbound_call_invite_retransmits_then_times_out_with_408() -> None:
    h = Harness()
    call_id = h.core.call("sip:bob@127.0.0.1:5070", h.now, rtp_port=31000, caller_id="4155550100")
    h.collect()
    h.run_until(40.0)
    assert [t for t, _ in h.requests("INVITE")] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # Timer A doubles
    failed = h.events[-1]
    assert isinstance(failed, CallFailed) and (failed.call_id, failed.status, failed.by) == (
        call_id,
        408,
        "timeout",
    )


def test_outbound_call_progress_answer_ack_and_custom_headers() -> None:
    h = Harness()
    call_id = h.core.call(
        "sip:bob@127.0.0.1:5070",
        h.now,
        rtp_port=31000,
        caller_id="4155550100",
        display_name="Agent",
        headers={"X-Campaign": "spring"},
    )
    h.collect()
    inv = h.requests("INVITE")[0][1]
    assert inv.from_.uri.user == "4155550100" and inv.from_.display == "Agent"
    assert inv.headers.get("X-Campaign") == "spring"
    assert b"m=audio 31000 RTP/AVP 0 8 101" in inv.body
    h.feed(uas_response(inv, 180, "Ringing"), ("127.0.0.1", 5070))
    assert isinstance(h.events[-1], CallProgress) and h.events[-1].status == 180
    h.feed(uas_response(inv, 200, "OK", body=ANSWER), ("127.0.0.1", 5070))
    connected = h.events[-1]
    assert isinstance(connected, CallConnected) and connected.media and connected.media.codec.name == "PCMA"
    acks = h.requests("ACK")
    assert len(acks) == 1 and acks[0][1].uri == "sip:bob@127.0.0.1:5070" and acks[0][1].to.tag == "uas"
    h.feed(uas_response(inv, 200, "OK", body=ANSWER), ("127.0.0.1", 5070))  # retransmitted 200
    assert len(h.requests("ACK")) == 2
    h.core.hangup(call_id, h.now)
    h.collect()
    assert h.requests("BYE")[0][1].uri == "sip:bob@127.0.0.1:5070"


def test_outbound_401_is_answered_with_credentials_once() -> None:
    h = Harness()
    h.core.call("sip:bob@127.0.0.1:5070", h.now, rtp_port=31000, auth=("alice", "secret"))
    h.collect()
    first = h.requests("INVITE")[0][1]
    challenge = 'WWW-Authenticate: Digest realm="pbx", nonce="n1", qop="auth"\r\n'
    h.feed(uas_response(first, 401, "Unauthorized", extra=challenge), ("127.0.0.1", 5070))
    ack401 = h.requests("ACK")[0][1]
    assert ack401.vias[0].branch == first.vias[0].branch  # the transaction ACKs the 401 itself
    second = h.requests("INVITE")[-1][1]
    assert second.cseq == (2, "INVITE") and second.call_id == first.call_id
    assert second.vias[0].branch != first.vias[0].branch
    auth = second.headers.get("Authorization") or ""
    assert 'username="alice"' in auth and 'realm="pbx"' in auth and "qop=auth" in auth
    # The same nonce again: the password is wrong; no endless loop.
    h.feed(uas_response(second, 401, "Unauthorized", extra=challenge), ("127.0.0.1", 5070))
    failed = h.events[-1]
    assert isinstance(failed, CallFailed) and failed.status == 401
    assert len(h.requests("INVITE")) == 2


def test_outbound_failure_response_and_cancel() -> None:
    h = Harness()
    call_id = h.core.call("sip:bob@127.0.0.1:5070", h.now, rtp_port=31000)
    h.collect()
    inv = h.requests("INVITE")[0][1]
    h.feed(uas_response(inv, 486, "Busy Here"), ("127.0.0.1", 5070))
    assert isinstance(h.events[-1], CallFailed) and h.events[-1].status == 486
    call2 = h.core.call("sip:bob@127.0.0.1:5070", h.now, rtp_port=31002)
    h.collect()
    inv2 = h.requests("INVITE")[-1][1]
    h.core.hangup(call2, h.now)  # before any provisional: CANCEL waits for one
    h.collect()
    assert not h.requests("CANCEL")
    h.feed(uas_response(inv2, 180, "Ringing"), ("127.0.0.1", 5070))
    cancel = h.requests("CANCEL")[0][1]
    assert cancel.vias[0].branch == inv2.vias[0].branch and cancel.cseq == (1, "CANCEL")
    assert call_id != call2


def test_outbound_call_validation() -> None:
    core = UserAgentCore()
    with pytest.raises(ValueError, match="uri"):
        core.call("http://x", 0.0, rtp_port=1)
    with pytest.raises(ValueError, match="not an IP address"):
        core.call("sip:bob@pbx.example.com", 0.0, rtp_port=1)
    with pytest.raises(ValueError, match="headers"):
        core.call("sip:bob@127.0.0.1", 0.0, rtp_port=1, headers={"Bad Name": "x"})
    with pytest.raises(ValueError, match="caller_id"):
        core.call("sip:bob@127.0.0.1", 0.0, rtp_port=1, caller_id="a b")
    with pytest.raises(ValueError, match="max_calls"):
        SipConfig(max_calls=-1)


def test_delayed_offer_we_offer_in_200_and_take_the_answer_from_the_ack() -> None:
    h = Harness()
    h.feed(invite(sdp=None))
    incoming = h.events[0]
    assert isinstance(incoming, IncomingCall) and incoming.offer is None and incoming.media is None
    h.core.answer(incoming.call_id, h.now, rtp_port=30000)
    h.collect()
    ok = h.responses(200)[0]
    assert b"m=audio 30000 RTP/AVP 0 8 101" in ok.body  # our offer
    answer = OFFER_PCMU_PCMA.replace("RTP/AVP 0 8 101", "RTP/AVP 8")
    h.feed(request("ACK", cseq=1, to_tag=ok.to.tag, branch="z9hG4bK-ack", body=answer,
                   extra="Content-Type: application/sdp\r\n"))  # fmt: skip
    connected = h.events[-1]
    assert isinstance(connected, CallConnected) and connected.media and connected.media.codec.name == "PCMA"


def test_unsupported_require_on_any_method_gets_420() -> None:
    h = Harness()
    h.feed(request("OPTIONS", cseq=1, extra="Require: foo, bar\r\n"))
    resp = h.responses()[-1]
    assert resp.status == 420 and resp.headers.get("Unsupported") == "foo, bar"


def test_multipart_invite_with_sdp_and_isup_parts() -> None:
    h = Harness()
    body = (
        "--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n"
        + OFFER_PCMU_PCMA.replace("RTP/AVP 0 8 101", "RTP/AVP 8 0")
        + "\r\n--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n"
        "Content-Disposition: signal;handling=optional\r\n\r\n\x01\x00\x49\x00\x00\x03\x02\x00\x07\r\n"
        "--unique-boundary-1--\r\n"
    )
    data = invite(sdp=None).replace(b"Content-Length: 0", f"Content-Length: {len(body.encode())}".encode())
    data = data.replace(
        b"Contact:", b'Content-Type: multipart/mixed;boundary="unique-boundary-1"\r\nContact:'
    )
    h.feed(data + body.encode())
    incoming = h.events[0]
    assert isinstance(incoming, IncomingCall) and incoming.media is not None
    assert incoming.media.codec.name == "PCMA" and incoming.media.remote_port == 40000
