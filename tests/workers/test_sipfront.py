"""The SIP front core (RFC 3261 §16.11 stateless proxy): Via, Max-Forwards, Record-Route, routing by
Call-ID and by our Route, responses back, our own answers to bad input, OPTIONS and probes."""

from __future__ import annotations

import pytest

from voxline.sip.message import SipRequest, SipResponse, parse_message, parse_name_addr, parse_via
from voxline.workers.sipfront import FrontConfig, Outgoing, SipFront

PUBLIC = ("192.0.2.10", 5060)
INNER = ("127.0.0.1", 40000)
WORKERS = [("127.0.0.1", 41000), ("127.0.0.1", 41001)]
CALLER = ("198.51.100.7", 5070)


def front(allow: tuple[str, ...] | None = None) -> SipFront:
    core = SipFront(FrontConfig(public=PUBLIC, inner=INNER, workers=2, secret=b"k" * 32, allow_sources=allow))
    for i, addr in enumerate(WORKERS):
        core.set_worker(i, addr)
    return core


def invite(call_id: str, *, branch: str = "z9hG4bK-abc", extra: str = "", max_forwards: str = "70") -> bytes:
    mf = f"Max-Forwards: {max_forwards}\r\n" if max_forwards else ""
    return (
        "INVITE sip:agent@192.0.2.10:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.5:5070;branch={branch};rport\r\n"
        f"{mf}"
        "From: <sip:alice@10.0.0.5>;tag=a1\r\n"
        "To: <sip:agent@192.0.2.10>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:alice@10.0.0.5:5070>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def call_ids_for(core: SipFront) -> dict[int, str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < 2:
        n += 1
        owner = core.owner(f"call-{n}@test")
        assert owner is not None
        found.setdefault(owner, f"call-{n}@test")
    return found


def only(out: list[Outgoing]) -> Outgoing:
    assert len(out) == 1, out
    return out[0]


def request(item: Outgoing) -> SipRequest:
    msg = parse_message(item.data)
    assert isinstance(msg, SipRequest)
    return msg


def response(item: Outgoing) -> SipResponse:
    msg = parse_message(item.data)
    assert isinstance(msg, SipResponse)
    return msg


def test_an_invite_goes_to_the_worker_its_call_id_hashes_to_with_our_via_and_record_route() -> None:
    core = front()
    for index, call_id in call_ids_for(core).items():
        out = only(core.receive_outside(invite(call_id), CALLER, "udp", 0.0))
        assert (out.side, out.addr, out.transport) == ("inside", WORKERS[index], "udp")
        req = request(out)
        vias = req.vias
        assert (vias[0].host, vias[0].port) == INNER
        assert vias[0].branch is not None and vias[0].branch.startswith("z9hG4bK")
        # §18.2.1 / RFC 3581: the caller's Via says where it really is.
        assert vias[1].params["received"] == CALLER[0] and vias[1].params["rport"] == str(CALLER[1])
        assert req.headers.get("Max-Forwards") == "69"
        rr = [parse_name_addr(v).uri for v in req.headers.get_all("Record-Route")]
        assert [(u.host, u.port) for u in rr] == [INNER, PUBLIC]
        assert all("lr" in u.params and u.params["vxw"] == str(index) for u in rr)


def test_max_forwards_absent_is_added_and_zero_gets_483() -> None:
    core = front()
    req = request(only(core.receive_outside(invite("c1", max_forwards=""), CALLER, "udp", 0.0)))
    assert req.headers.get("Max-Forwards") == "70"
    resp = response(only(core.receive_outside(invite("c2", max_forwards="0"), CALLER, "udp", 0.0)))
    assert resp.status == 483
    resp = response(only(core.receive_outside(invite("c3", max_forwards="x"), CALLER, "udp", 0.0)))
    assert resp.status == 400


def test_the_branch_is_the_same_for_a_retransmission_and_its_cancel_and_differs_per_transaction() -> None:
    core = front()
    first = request(only(core.receive_outside(invite("c1"), CALLER, "udp", 0.0))).vias[0].branch
    again = request(only(core.receive_outside(invite("c1"), CALLER, "udp", 1.0))).vias[0].branch
    cancel = invite("c1").replace(b"INVITE sip:", b"CANCEL sip:").replace(b"1 INVITE", b"1 CANCEL")
    cancelled = request(only(core.receive_outside(cancel, CALLER, "udp", 2.0))).vias[0].branch
    other = request(only(core.receive_outside(invite("c1", branch="z9hG4bK-x"), CALLER, "udp", 0.0)))
    assert first == again == cancelled
    assert other.vias[0].branch != first
    # A pre-3261 peer (no magic cookie): the branch comes from the transaction's fields.
    old = request(only(core.receive_outside(invite("c9", branch="1234"), CALLER, "udp", 0.0))).vias[0].branch
    old_again = (
        request(only(core.receive_outside(invite("c9", branch="1234"), CALLER, "udp", 0.0))).vias[0].branch
    )
    assert old == old_again and old != first


def worker_ok(core: SipFront, forwarded: Outgoing, index: int) -> Outgoing:
    """The worker answers 200 to what the front forwarded: the response as the front sends it on."""
    req = request(forwarded)
    resp = SipResponse(status=200, reason="OK")
    for name in ("Via", "Record-Route", "From", "To", "Call-ID", "CSeq"):
        for value in req.headers.get_all(name):
            resp.headers.add(name, value + (";tag=w" if name == "To" else ""))
    resp.headers.add("Contact", f"<sip:voxline@127.0.0.1:{WORKERS[index][1]}>")
    return only(core.receive_inside(bytes(resp), WORKERS[index], 1.0))


def test_a_response_pops_our_via_and_goes_to_the_callers_received_and_rport() -> None:
    core = front()
    index, call_id = next(iter(call_ids_for(core).items()))
    forwarded = only(core.receive_outside(invite(call_id), CALLER, "udp", 0.0))
    out = worker_ok(core, forwarded, index)
    assert (out.side, out.addr, out.transport) == ("outside", CALLER, "udp")
    resp = response(out)
    assert [(v.host, v.port) for v in resp.vias] == [("10.0.0.5", 5070)]
    assert len(resp.headers.get_all("Record-Route")) == 2  # the caller's route set: both of ours


def test_over_tcp_the_response_goes_back_on_the_callers_connection() -> None:
    core = front()
    index, call_id = next(iter(call_ids_for(core).items()))
    data = invite(call_id).replace(b"SIP/2.0/UDP 10.0.0.5:5070", b"SIP/2.0/TCP 10.0.0.5:5070")
    forwarded = only(core.receive_outside(data, ("198.51.100.7", 40123), "tcp", 0.0))
    rr = request(forwarded).headers.get_all("Record-Route")
    assert "transport=tcp" in rr[1]
    out = worker_ok(core, forwarded, index)
    assert (out.addr, out.transport) == (("198.51.100.7", 40123), "tcp")


def test_in_dialog_requests_follow_our_route_or_the_call_id_to_the_same_worker() -> None:
    core = front()
    ids = call_ids_for(core)
    for index, call_id in ids.items():
        other = 1 - index
        # Routed: our Route entries name the worker (even against the Call-ID's hash), and are popped.
        route = (
            f"Route: <sip:{PUBLIC[0]}:{PUBLIC[1]};lr;vxw={other}>, <sip:{INNER[0]}:{INNER[1]};lr;vxw={other}>"
        )
        bye = (
            f"BYE sip:voxline@127.0.0.1:{WORKERS[index][1]} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-bye\r\n"
            f"{route}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@10.0.0.5>;tag=a1\r\nTo: <sip:agent@192.0.2.10>;tag=w\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        out = only(core.receive_outside(bye, CALLER, "udp", 0.0))
        assert out.addr == WORKERS[other]
        assert request(out).headers.get_all("Route") == []
        # Not routed (a peer that ignores Record-Route): by Call-ID.
        plain = bye.replace(f"{route}\r\n".encode(), b"")
        assert only(core.receive_outside(plain, CALLER, "udp", 0.0)).addr == WORKERS[index]


def test_a_request_for_a_dead_workers_dialog_gets_481_and_new_calls_go_to_the_survivor() -> None:
    core = front()
    ids = call_ids_for(core)
    core.set_worker(0, None)
    bye = (
        "BYE sip:voxline@127.0.0.1:41000 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-b\r\n"
        f"Route: <sip:{PUBLIC[0]}:{PUBLIC[1]};lr;vxw=0>\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n"
        "Call-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    assert response(only(core.receive_outside(bye, CALLER, "udp", 0.0))).status == 481
    assert only(core.receive_outside(invite(ids[0]), CALLER, "udp", 0.0)).addr == WORKERS[1]
    core.set_worker(1, None)
    resp = response(only(core.receive_outside(invite(ids[0]), CALLER, "udp", 0.0)))
    assert resp.status == 503 and resp.headers.get("Retry-After") == "5"


def test_a_workers_bye_goes_to_the_caller_and_the_answer_comes_back_to_that_worker() -> None:
    core = front()
    bye = (
        "BYE sip:alice@10.0.0.5:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{WORKERS[1][1]};branch=z9hG4bK-wb\r\nMax-Forwards: 70\r\n"
        f"Route: <sip:{INNER[0]}:{INNER[1]};lr;vxw=1>, <sip:{PUBLIC[0]}:{PUBLIC[1]};lr;vxw=1>\r\n"
        "From: <sip:agent@192.0.2.10>;tag=w\r\nTo: <sip:alice@10.0.0.5>;tag=a1\r\n"
        "Call-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    out = only(core.receive_inside(bye, WORKERS[1], 0.0))
    assert (out.side, out.addr, out.transport) == ("outside", ("10.0.0.5", 5070), "udp")
    req = request(out)
    assert req.headers.get_all("Route") == [] and req.headers.get("Max-Forwards") == "69"
    assert (req.vias[0].host, req.vias[0].port) == PUBLIC
    ok = SipResponse(status=200, reason="OK")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in req.headers.get_all(name):
            ok.headers.add(name, value)
    back = only(core.receive_outside(bytes(ok), ("10.0.0.5", 5070), "udp", 1.0))
    assert (back.side, back.addr) == ("inside", WORKERS[1])
    assert [v.port for v in response(back).vias] == [WORKERS[1][1]]
    # A forged Via (no valid signature) makes the front send nothing to a worker.
    forged = bytes(ok).replace(b"vxsig=", b"vxsig=0")
    assert core.receive_outside(forged, ("10.0.0.5", 5070), "udp", 1.0) == []


def test_sources_outside_the_allowlist_get_403_and_strangers_on_the_inner_address_are_ignored() -> None:
    core = front(allow=("203.0.113.0/24",))
    resp = response(only(core.receive_outside(invite("c1"), CALLER, "udp", 0.0)))
    assert resp.status == 403
    assert resp.headers.get("To", "").count("tag=") == 1
    allowed = only(core.receive_outside(invite("c1"), ("203.0.113.9", 5060), "udp", 0.0))
    assert allowed.side == "inside"
    assert core.receive_inside(invite("c1"), ("127.0.0.1", 9), 0.0) == []
    # OPTIONS outside a dialog is answered to anyone (a health probe opens nothing).
    options = invite("o1").replace(b"INVITE sip:", b"OPTIONS sip:").replace(b"1 INVITE", b"1 OPTIONS")
    assert response(only(core.receive_outside(options, CALLER, "udp", 0.0))).status == 503  # not probed yet


VIA = b"Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\r\n"
DIALOG = b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\n" + VIA + b"Content-Length: 0\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/7.0\r\n" + VIA + DIALOG + b"Content-Length: 0\r\n\r\n", 505),
        (b"INVITE sip:a@b SIP/2.0\r\n" + VIA + DIALOG + b"Max-Forwards: 0\r\nContent-Length: 0\r\n\r\n", 483),
    ],
)
def test_bad_requests_get_their_rfc_answer(data: bytes, status: int) -> None:
    out = only(front().receive_outside(data, CALLER, "udp", 0.0))
    # What the request lacks, its answer lacks too: read the status line and the Via.
    assert out.data.startswith(f"SIP/2.0 {status} ".encode()) and out.addr == ("198.51.100.7", 5060)
    assert b"received=198.51.100.7" in out.data


def test_garbage_and_answerless_input_is_dropped_not_answered() -> None:
    core = front()
    assert core.receive_outside(b"\x00\xffnot sip at all", CALLER, "udp", 0.0) == []
    ack = invite("c1", max_forwards="0").replace(b"INVITE sip:", b"ACK sip:").replace(b"1 INVITE", b"1 ACK")
    assert core.receive_outside(ack, CALLER, "udp", 0.0) == []  # an ACK is never answered
    assert core.receive_outside(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", CALLER, "udp", 0.0) == []
    assert core.stats.dropped == 3


def test_options_is_answered_from_the_workers_probe_answers() -> None:
    core = front()
    options = invite("o1").replace(b"INVITE sip:", b"OPTIONS sip:").replace(b"1 INVITE", b"1 OPTIONS")
    assert response(only(core.receive_outside(options, CALLER, "udp", 0.0))).status == 503  # none probed yet
    probes = core.tick(0.0)
    assert sorted(p.addr for p in probes) == WORKERS
    assert core.tick(0.5) == []  # not due again before the interval
    for probe in probes:
        req = request(probe)
        resp = SipResponse(status=200 if probe.addr == WORKERS[1] else 503, reason="x")
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            resp.headers.add(name, req.headers.get(name) or "")
        assert core.receive_inside(bytes(resp), probe.addr, 0.1) == []
    assert not core.worker_ready(0) and core.worker_ready(1)
    assert response(only(core.receive_outside(options, CALLER, "udp", 0.2))).status == 200
    core.tick(5.0)  # no answers for 3 intervals: not ready
    assert response(only(core.receive_outside(options, CALLER, "udp", 5.0))).status == 503
    core.draining = True
    assert not core.ready


def test_probe_via_is_parseable() -> None:
    probe = front().tick(0.0)[0]
    assert parse_via(request(probe).headers.get_all("Via")[0]).host == INNER[0]
