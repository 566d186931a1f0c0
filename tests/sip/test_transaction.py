"""The RFC 3261 §17 transaction machines alone, on a virtual clock."""

from __future__ import annotations

from voxline.sip import SipRequest, SipResponse, Timers, parse_message
from voxline.sip.transaction import (
    ClientNonInviteTransaction,
    ServerNonInviteTransaction,
    State,
)

from .messages import request


def drive(txn: ClientNonInviteTransaction | ServerNonInviteTransaction, until: float) -> list[float]:
    """Tick at every deadline up to ``until``; returns the tick times."""
    times = []
    while (d := txn.deadline()) is not None and d <= until:
        txn.tick(d)
        times.append(d)
    return times


def response(req: SipRequest, status: int) -> SipResponse:
    resp = SipResponse(status=status, reason="x")
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        resp.headers.add(name, req.headers.get(name) or "")
    return resp


def test_client_non_invite_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    sent: list[float] = []
    now = [0.0]
    results: list[int] = []
    req = parse_message(request("BYE"))
    assert isinstance(req, SipRequest)

    def send(_: bytes) -> None:
        sent.append(now[0])

    txn = ClientNonInviteTransaction(req, send, False, Timers(), 0.0, lambda r, t: results.append(r.status))
    while (d := txn.deadline()) is not None:
        now[0] = d
        txn.tick(d)
    assert sent == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert results == [408] and txn.state is State.TERMINATED


def test_client_non_invite_provisional_slows_to_t2_and_final_waits_timer_k() -> None:
    sent: list[float] = []
    now = [0.0]
    req = parse_message(request("OPTIONS", cseq=1))
    assert isinstance(req, SipRequest)
    txn = ClientNonInviteTransaction(
        req, lambda _: sent.append(now[0]), False, Timers(), 0.0, lambda r, t: None
    )
    txn.receive(response(req, 100), 0.2)
    now[0] = 4.2
    txn.tick(4.2)
    assert sent == [0.0, 4.2]
    txn.receive(response(req, 200), 5.0)
    assert txn.state is State.COMPLETED and txn.deadline() == 10.0  # Timer K = T4
    txn.tick(10.0)
    assert txn.terminated


def test_reliable_transport_never_retransmits_and_waits_zero() -> None:
    sent: list[bytes] = []
    req = parse_message(request("OPTIONS", cseq=1))
    assert isinstance(req, SipRequest)
    txn = ClientNonInviteTransaction(req, sent.append, True, Timers(), 0.0, lambda r, t: None)
    assert txn.deadline() == 32.0  # only Timer F
    txn.receive(response(req, 200), 1.0)
    assert txn.deadline() == 1.0 and len(sent) == 1


def test_server_non_invite_absorbs_retransmissions_until_timer_j() -> None:
    sent: list[bytes] = []
    req = parse_message(request("BYE"))
    assert isinstance(req, SipRequest)
    txn = ServerNonInviteTransaction(req, sent.append, False, Timers())
    txn.respond(response(req, 200), 0.0)
    txn.on_retransmission()
    assert len(sent) == 2 and sent[0] == sent[1]
    assert drive(txn, 100.0) == [32.0] and txn.terminated
