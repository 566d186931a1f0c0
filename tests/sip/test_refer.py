"""REFER (RFC 3515) in the core on a virtual clock: sipfrag parsing, our REFER and the NOTIFYs of its
subscription, the peer's REFER answered 202 + NOTIFYs or refused, and bad input."""

from __future__ import annotations

import pytest

from voxline.sip import CallStateError, SipRequest, SipResponse, parse_name_addr
from voxline.sip.events import ReferAccepted, ReferEnded, ReferProgress, ReferReceived
from voxline.sip.refer import (
    ReferError,
    build_sipfrag,
    event_package,
    parse_sipfrag,
    parse_subscription_state,
)
from voxline.sip.transfer import REFER_ANSWER_S, REFER_EXPIRES

from .messages import request
from .test_core import Harness, ack

# -------------------------------------------------------------------------------------- sipfrag


def test_sipfrag_status_lines_are_parsed() -> None:
    frag = parse_sipfrag(b"SIP/2.0 100 Trying\r\n")
    assert (frag.status, frag.reason, frag.final) == (100, "Trying", False)
    frag = parse_sipfrag(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n")
    assert (frag.status, frag.reason, frag.final) == (486, "Busy Here", True)
    assert parse_sipfrag(b"sip/2.0 200\n").reason == "OK"  # no reason phrase: the standard one
    assert parse_sipfrag(build_sipfrag(503)) == parse_sipfrag(b"SIP/2.0 503 Service Unavailable\r\n")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"INVITE sip:bob@example.com SIP/2.0\r\n",  # a request line: not what a REFER NOTIFY carries
        b"SIP/2.0 99 Weird\r\n",
        b"SIP/2.0 700 Beyond\r\n",
        b"SIP/3.0 200 OK\r\n",
        b"SIP/2.0 2000 OK\r\n",
        b"\xff\xfe",
        b"SIP/2.0 200 OK" + b"x" * 5000,
    ],
)
def test_malformed_sipfrag_is_refused_with_the_reason(body: bytes) -> None:
    with pytest.raises(ReferError):
        parse_sipfrag(body)


def test_subscription_state_and_event_headers() -> None:
    state = parse_subscription_state("terminated;reason=noresource")
    assert (state.state, state.reason, state.expires, state.terminated) == (
        "terminated",
        "noresource",
        None,
        True,
    )
    assert parse_subscription_state("Active ; expires=60").expires == 60
    for bad in (None, "", "  ;expires=3", "act ive"):
        with pytest.raises(ReferError):
            parse_subscription_state(bad)
    assert event_package("refer;id=93809824") == ("refer", "93809824")
    assert event_package("Refer") == ("refer", None)
    assert event_package(None) == ("", None)
    with pytest.raises(ValueError, match="status"):
        build_sipfrag(42)


# -------------------------------------------------------------------------------------- we refer


def connected(h: Harness) -> tuple[str, str]:
    call_id, tag = h.answered()
    h.feed(ack(tag))
    return call_id, tag


def notify(
    tag: str, body: str, state: str, *, cseq: int = 10, event: str = "refer", branch: str = ""
) -> bytes:
    extra = f"Event: {event}\r\nSubscription-State: {state}\r\n"
    if body:
        extra += "Content-Type: message/sipfrag\r\n"
    return request(
        "NOTIFY", to_tag=tag, cseq=cseq, body=body, extra=extra, branch=branch or f"z9hG4bK-notify-{cseq}"
    )


def our_refer(h: Harness) -> SipRequest:
    refers = h.requests("REFER")
    assert refers, "no REFER sent"
    return refers[-1][1]


def answer(h: Harness, req: SipRequest, status: int, reason: str = "") -> None:
    resp = SipResponse(status=status, reason=reason or "Accepted")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in req.headers.get_all(name):
            resp.headers.add(name, value)
    resp.headers.add("Server", "peer")
    h.feed(bytes(resp))


def test_blind_transfer_refer_202_notifies_and_success() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090", headers={"X-Reason": "sales"})
    h.collect()
    refer = our_refer(h)
    assert refer.uri == "sip:alice@127.0.0.1:5062"  # the caller's Contact: in the dialog
    assert refer.headers.get("Refer-To") == "<sip:human@127.0.0.1:5090>"
    assert parse_name_addr(refer.headers.get("Referred-By") or "").uri.user == "agent"
    assert refer.headers.get("X-Reason") == "sales" and refer.headers.get("Contact")
    assert refer.to.tag == "caller-tag" and refer.from_.tag == tag
    with pytest.raises(CallStateError, match="already being transferred"):
        h.core.transfer(call_id, h.now, "sip:other@127.0.0.1")
    answer(h, refer, 202)
    assert h.events[-1] == ReferAccepted(call_id)
    event = f"refer;id={refer.cseq[0]}"
    h.feed(notify(tag, "SIP/2.0 100 Trying\r\n", "active;expires=60", event=event))
    h.feed(notify(tag, "SIP/2.0 100 Trying\r\n", "active;expires=60", event=event, cseq=11))  # no news
    h.feed(notify(tag, "SIP/2.0 180 Ringing\r\n", "active;expires=60", event=event, cseq=12))
    h.feed(notify(tag, "SIP/2.0 200 OK\r\n", "terminated;reason=noresource", event=event, cseq=13))
    assert [r.status for r in h.responses() if r.cseq[1] == "NOTIFY"] == [200, 200, 200, 200]
    assert h.events[-4:] == [
        ReferAccepted(call_id),
        ReferProgress(call_id, 100, "Trying"),
        ReferProgress(call_id, 180, "Ringing"),
        ReferEnded(call_id, 200, "OK"),
    ]
    assert h.events[-1].succeeded  # type: ignore[union-attr]
    assert h.core.call_state(call_id) == "connected"  # hanging up is the application's choice
    h.run_until(200.0)
    assert sum(isinstance(e, ReferEnded) for e in h.events) == 1  # no timeout after the outcome


def test_target_busy_is_reported_and_the_call_stays_up() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090")
    h.collect()
    # The NOTIFY may overtake the 202 (RFC 3515 §2.4.4): it implies the acceptance.
    h.feed(notify(tag, "SIP/2.0 486 Busy Here\r\n", "terminated;reason=noresource"))
    assert h.events[-2:] == [ReferAccepted(call_id), ReferEnded(call_id, 486, "Busy Here")]
    answer(h, our_refer(h), 202)
    assert isinstance(h.events[-1], ReferEnded)  # the late 202 adds nothing
    assert h.core.call_state(call_id) == "connected"
    h.core.transfer(call_id, h.now, "sip:other@127.0.0.1")  # another try is allowed after an outcome
    h.collect()
    assert len(h.requests("REFER")) == 2


def test_refer_rejected_and_refer_never_answered() -> None:
    h = Harness()
    call_id, _ = connected(h)
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090")
    h.collect()
    answer(h, our_refer(h), 603, "Decline")
    assert h.events[-1] == ReferEnded(call_id, 603, "Decline")
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090")
    h.collect()
    h.run_until(h.now + 40.0)  # Timer F: the transaction's own 408
    assert h.events[-1] == ReferEnded(call_id, 408, "Request Timeout", "timeout")


def test_no_final_notify_in_time_is_a_408_timeout() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090", timeout=5.0)
    h.collect()
    answer(h, our_refer(h), 202)
    h.feed(notify(tag, "SIP/2.0 100 Trying\r\n", "active;expires=60"))
    h.run_until(4.9)
    assert not isinstance(h.events[-1], ReferEnded)
    h.run_until(5.1)
    ended = h.events[-1]
    assert isinstance(ended, ReferEnded) and (ended.status, ended.by) == (408, "timeout")
    assert h.core.call_state(call_id) == "connected"


def test_subscription_terminated_without_a_final_status_fails() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090")
    h.collect()
    h.feed(notify(tag, "", "terminated;reason=timeout"))
    assert h.responses()[-1].status == 200
    ended = h.events[-1]
    assert isinstance(ended, ReferEnded) and ended.status == 500 and "timeout" in ended.reason


def test_bad_notifies_get_their_error_answers() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.feed(notify(tag, "SIP/2.0 200 OK\r\n", "active"))  # no REFER of ours: no subscription
    assert h.responses()[-1].status == 481
    h.feed(notify("other-tag", "SIP/2.0 200 OK\r\n", "active", cseq=11))  # another dialog
    assert h.responses()[-1].status == 481
    h.core.transfer(call_id, h.now, "sip:human@127.0.0.1:5090")
    h.collect()
    refer_cseq = our_refer(h).cseq[0]
    h.feed(notify(tag, "SIP/2.0 200 OK\r\n", "active", cseq=12, event="presence"))
    assert h.responses()[-1].status == 489
    h.feed(notify(tag, "SIP/2.0 200 OK\r\n", "active", cseq=13, event=f"refer;id={refer_cseq + 7}"))
    assert h.responses()[-1].status == 481
    h.feed(notify(tag, "garbage\r\n", "active", cseq=14))
    bad = h.responses()[-1]
    assert bad.status == 400 and "status line" in bad.reason
    h.feed(request("NOTIFY", to_tag=tag, cseq=15, body="SIP/2.0 200 OK\r\n", extra="Event: refer\r\n"))
    assert h.responses()[-1].status == 400 and "Subscription-State" in h.responses()[-1].reason
    extra = "Event: refer\r\nSubscription-State: active\r\nContent-Type: text/plain\r\n"
    h.feed(
        request("NOTIFY", to_tag=tag, cseq=16, body="SIP/2.0 200 OK\r\n", extra=extra, branch="z9hG4bK-n16")
    )
    assert h.responses()[-1].status == 415
    assert not any(isinstance(e, (ReferAccepted, ReferEnded)) for e in h.events)  # none of it counted
    h.feed(notify(tag, "garbage\r\n", "terminated", cseq=17))  # a bad final NOTIFY ends it
    ended = h.events[-1]
    assert isinstance(ended, ReferEnded) and ended.status == 500


def test_transfer_needs_a_connected_call_and_a_good_target() -> None:
    h = Harness()
    call_id, tag = h.answered()  # not ACKed yet
    with pytest.raises(CallStateError, match="connected"):
        h.core.transfer(call_id, h.now, "sip:human@127.0.0.1")
    h.feed(ack(tag))
    for bad in ("human", "http://example.com/", "sip:a@b>;x", ""):
        with pytest.raises(ValueError, match="target"):
            h.core.transfer(call_id, h.now, bad)
    with pytest.raises(ValueError, match="headers"):
        h.core.transfer(call_id, h.now, "sip:human@127.0.0.1", headers={"X-Bad": "a\r\nBYE: x"})
    with pytest.raises(ValueError, match="timeout"):
        h.core.transfer(call_id, h.now, "sip:human@127.0.0.1", timeout=0)
    with pytest.raises(CallStateError, match="no such call"):
        h.core.transfer("nope", h.now, "sip:human@127.0.0.1")
    h.collect()
    assert not h.requests("REFER")


# -------------------------------------------------------------------------------------- the peer refers us


def refer_in(tag: str, target: str = "<sip:bob@127.0.0.1:5070>", cseq: int = 5, extra: str = "") -> bytes:
    headers = f"Refer-To: {target}\r\nReferred-By: <sip:15551230000@127.0.0.1>\r\n{extra}"
    return request("REFER", to_tag=tag, cseq=cseq, extra=headers, branch=f"z9hG4bK-refer-{cseq}")


def our_notifies(h: Harness) -> list[SipRequest]:
    return [m for _, m in h.requests("NOTIFY")]


def test_incoming_refer_accepted_202_then_notifies_of_the_outcome() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.feed(refer_in(tag))
    received = h.events[-1]
    assert isinstance(received, ReferReceived)
    assert (received.refer_to, received.referred_by) == (
        "sip:bob@127.0.0.1:5070",
        "<sip:15551230000@127.0.0.1>",
    )
    assert not [r for r in h.responses() if r.cseq[1] == "REFER"]  # waits for the application
    h.core.accept_refer(call_id, h.now)
    h.collect()
    assert [r.status for r in h.responses() if r.cseq[1] == "REFER"] == [202]
    first = our_notifies(h)[0]
    assert first.headers.get("Event") == "refer;id=5"
    assert first.headers.get("Subscription-State") == f"active;expires={REFER_EXPIRES}"
    assert first.content_type == "message/sipfrag" and parse_sipfrag(first.body).status == 100
    h.core.notify_refer(call_id, h.now, 180)
    h.core.notify_refer(call_id, h.now, 200)
    h.collect()
    last = our_notifies(h)[-1]
    assert [parse_sipfrag(n.body).status for n in our_notifies(h)] == [100, 180, 200]
    assert last.headers.get("Subscription-State") == "terminated;reason=noresource"
    with pytest.raises(ReferError, match="no accepted REFER"):
        h.core.notify_refer(call_id, h.now, 200)
    h.feed(refer_in(tag, cseq=6))  # a new REFER after the first ended
    assert isinstance(h.events[-1], ReferReceived)


def test_incoming_refer_rejected_or_unanswered_gets_603() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.feed(refer_in(tag))
    h.feed(refer_in(tag, cseq=6))  # while the first waits
    assert h.responses()[-1].status == 491
    h.core.reject_refer(call_id, h.now)
    h.collect()
    assert h.responses()[-1].status == 603 and h.responses()[-1].cseq == (5, "REFER")
    with pytest.raises(ReferError, match="no REFER waiting"):
        h.core.accept_refer(call_id, h.now)
    h.feed(refer_in(tag, cseq=7))
    h.run_until(h.now + REFER_ANSWER_S + 0.1)
    assert h.responses()[-1].status == 603 and h.responses()[-1].cseq == (7, "REFER")
    assert not h.requests("NOTIFY")


def test_accepted_refer_never_reported_ends_with_408_at_expiry() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.feed(refer_in(tag))
    h.core.accept_refer(call_id, h.now)
    h.run_until(REFER_EXPIRES + 1.0)
    last = our_notifies(h)[-1]
    assert parse_sipfrag(last.body).status == 408
    assert last.headers.get("Subscription-State", "").startswith("terminated")


def test_bad_incoming_refers() -> None:
    h = Harness()
    call_id, tag = connected(h)
    h.feed(request("REFER", to_tag=tag, cseq=5, branch="z9hG4bK-r1"))  # no Refer-To
    assert h.responses()[-1].status == 400 and "Refer-To" in h.responses()[-1].reason
    h.feed(refer_in(tag, target="<http://example.com/>", cseq=6))
    assert h.responses()[-1].status == 400
    h.feed(refer_in(tag, cseq=7, extra="Refer-To: <sip:carol@127.0.0.1>\r\n"))  # two of them
    assert h.responses()[-1].status == 400
    h.feed(refer_in("wrong-tag", cseq=8))
    assert h.responses()[-1].status == 481
    h.feed(request("REFER", cseq=9, branch="z9hG4bK-r9", extra="Refer-To: <sip:bob@127.0.0.1>\r\n"))
    assert h.responses()[-1].status == 481  # outside any dialog
    assert not any(isinstance(e, ReferReceived) for e in h.events)
    assert call_id


def test_refer_before_the_ack_or_after_the_bye() -> None:
    h = Harness()
    _, tag = h.answered()  # our 200 is not ACKed yet: not connected
    h.feed(refer_in(tag))
    assert h.responses()[-1].status == 403 and "not connected" in h.responses()[-1].reason
    h.feed(ack(tag))
    h.feed(request("BYE", to_tag=tag, cseq=6, branch="z9hG4bK-bye"))
    h.feed(refer_in(tag, cseq=7))
    assert h.responses()[-1].status == 481
    assert not any(isinstance(e, ReferReceived) for e in h.events)
