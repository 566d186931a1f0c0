"""``DialogState`` and its transition table: every move the core makes is in the table (and every
move in the table is one the core makes), moves not in it raise, and each state maps to the
``CallState`` a ``Call`` shows."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from voxline.callstate import CallState
from voxline.sip import SipRequest
from voxline.sip import dialog as dialog_module
from voxline.sip.dialog import TRANSITIONS, DialogState, DialogTransitionError, transition

from .messages import invite, request
from .test_core import ANSWER, Harness, ack, uas_response

S = DialogState
UAS_PEER = ("127.0.0.1", 5070)
Move = tuple[DialogState, DialogState]


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> list[Move]:
    """Every (from, to) that goes through ``transition`` while the test runs."""
    seen: list[Move] = []
    original = dialog_module.transition

    def recording(current: DialogState, new: DialogState) -> DialogState:
        result = original(current, new)
        seen.append((current, new))
        return result

    for name, module in list(sys.modules.items()):
        if name.startswith("voxline.sip") and getattr(module, "transition", None) is original:
            monkeypatch.setattr(module, "transition", recording)
    return seen


def test_the_table_covers_every_state_and_ended_is_final() -> None:
    assert set(TRANSITIONS) == set(DialogState)
    assert TRANSITIONS[S.ENDED] == frozenset()
    for state, targets in TRANSITIONS.items():
        assert state is S.ENDED or S.ENDED in targets, f"{state} cannot end"
    inbound = {S.INCOMING, S.EARLY, S.ANSWERING}
    outbound = {S.CALLING, S.PROCEEDING}
    for state in inbound:
        assert not TRANSITIONS[state] & outbound
    for state in outbound:
        assert not TRANSITIONS[state] & inbound


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.ENDED, S.CONNECTED),
        (S.ENDED, S.ENDED),
        (S.CONNECTED, S.ANSWERING),
        (S.CONNECTED, S.PROCEEDING),
        (S.INCOMING, S.CONNECTED),  # answered without the ACK
        (S.INCOMING, S.INCOMING),
        (S.CALLING, S.EARLY),
        (S.ANSWERING, S.EARLY),
    ],
)
def test_a_move_not_in_the_table_raises(current: DialogState, new: DialogState) -> None:
    with pytest.raises(DialogTransitionError, match=f"{current.value} -> {new.value}"):
        transition(current, new)


def test_call_state_of_each_dialog_state() -> None:
    assert {s: s.call_state for s in DialogState} == {
        S.INCOMING: CallState.ALERTING,
        S.EARLY: CallState.ALERTING,
        S.ANSWERING: CallState.ALERTING,  # a Call is connected with CallConnected, on the ACK
        S.CONNECTED: CallState.CONNECTED,
        S.CALLING: CallState.PROGRESSING,
        S.PROCEEDING: CallState.PROGRESSING,
        S.ENDED: CallState.ENDED,
    }


# ------------------------------------------------------------------------------ what the core does


def _incoming(h: Harness, n: int) -> str:
    call_id = f"call-{n}@127.0.0.1"
    h.feed(invite(call_id=call_id, branch=f"z9hG4bK-inv-{n}"))
    return call_id


def _ok_tag(h: Harness, call_id: str) -> str:
    tag = next(r.to.tag for r in reversed(h.responses(200)) if r.call_id == call_id)
    assert tag is not None
    return tag


def _inbound_paths(h: Harness) -> None:
    # incoming -> early -> early -> answering -> connected -> ended (their BYE)
    call = _incoming(h, 1)
    h.core.ringing(call, h.now)
    h.core.ringing(call, h.now, 183)
    h.core.answer(call, h.now, rtp_port=30000)
    h.collect()
    tag = _ok_tag(h, call)
    h.feed(request("ACK", call_id=call, to_tag=tag, cseq=1, branch="z9hG4bK-ack-1"))
    h.feed(request("BYE", call_id=call, to_tag=tag, branch="z9hG4bK-bye-1"))
    # incoming -> answering -> (our hangup waits for the ACK) -> ended on the ACK
    call = _incoming(h, 2)
    h.core.answer(call, h.now, rtp_port=30002)
    h.collect()
    h.core.hangup(call, h.now)
    h.feed(request("ACK", call_id=call, to_tag=_ok_tag(h, call), cseq=1, branch="z9hG4bK-ack-2"))
    # incoming -> ended (reject); early -> ended (hangup: 603)
    h.core.reject(_incoming(h, 3), h.now)
    call = _incoming(h, 4)
    h.core.ringing(call, h.now)
    h.core.hangup(call, h.now)
    # incoming -> ended (CANCEL)
    call = _incoming(h, 5)
    h.feed(request("CANCEL", call_id=call, branch="z9hG4bK-inv-5", cseq=1))
    assert h.core.call_state(call) is S.ENDED


def _outbound(h: Harness, **kwargs: object) -> tuple[str, Callable[[], SipRequest]]:
    call_id = h.core.call("sip:bob@127.0.0.1:5070", h.now, rtp_port=31000, **kwargs)  # type: ignore[arg-type]
    h.collect()

    def last_invite() -> SipRequest:
        return next(r for _, r in reversed(h.requests("INVITE")) if r.call_id == call_id)

    return call_id, last_invite


def _outbound_paths(h: Harness) -> None:
    challenge = 'WWW-Authenticate: Digest realm="pbx", nonce="n1", qop="auth"\r\n'
    # calling -> calling (401: a new INVITE) -> proceeding -> proceeding -> calling (407 again) ->
    # connected -> ended (our BYE)
    call, inv = _outbound(h, auth=("alice", "secret"))
    h.feed(uas_response(inv(), 401, "Unauthorized", extra=challenge), UAS_PEER)
    h.feed(uas_response(inv(), 180, "Ringing"), UAS_PEER)
    h.feed(uas_response(inv(), 183, "Session Progress"), UAS_PEER)
    proxy = 'Proxy-Authenticate: Digest realm="pbx", nonce="n2", qop="auth"\r\n'
    h.feed(uas_response(inv(), 407, "Proxy Authentication Required", extra=proxy), UAS_PEER)
    h.feed(uas_response(inv(), 180, "Ringing"), UAS_PEER)
    h.feed(uas_response(inv(), 200, "OK", body=ANSWER), UAS_PEER)
    h.core.hangup(call, h.now)
    h.collect()
    # calling -> connected -> ended (their BYE)
    call, inv = _outbound(h)
    h.feed(uas_response(inv(), 200, "OK", body=ANSWER), UAS_PEER)
    ok = inv()
    bye = request("BYE", call_id=call, to_tag=ok.from_.tag, from_tag="uas", branch="z9hG4bK-obye")
    h.feed(bye, UAS_PEER)
    # calling -> ended (486); proceeding -> ended (our hangup: CANCEL)
    _, inv = _outbound(h)
    h.feed(uas_response(inv(), 486, "Busy Here"), UAS_PEER)
    call, inv = _outbound(h)
    h.feed(uas_response(inv(), 180, "Ringing"), UAS_PEER)
    h.core.hangup(call, h.now)
    h.collect()


def test_every_move_the_core_makes_is_in_the_table_and_each_one_is_made(moves: list[Move]) -> None:
    h = Harness()
    _inbound_paths(h)
    _outbound_paths(h)
    # answering -> ended without an ACK (Timer H); incoming -> ended at alerting_timeout
    call = _incoming(h, 6)
    h.core.answer(call, h.now, rtp_port=30006)
    h.collect()
    _incoming(h, 7)
    h.run_until(h.now + 70.0)
    assert h.core.active_calls == 0
    # Every move made was allowed (transition() raised on none: the core logs what a handler
    # raises, and conftest fails the test on it) and every move in the table was made.
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert set(moves) == table, (table - set(moves), set(moves) - table)
    assert h.core.stats["malformed_dropped"] == 0


def test_state_seen_from_outside_is_the_dialog_state() -> None:
    h = Harness()
    call = _incoming(h, 1)
    assert h.core.call_state(call) is S.INCOMING
    h.core.ringing(call, h.now)
    assert h.core.call_state(call) is S.EARLY
    h.core.answer(call, h.now, rtp_port=30000)
    h.collect()
    assert h.core.call_state(call) is S.ANSWERING
    h.feed(ack(_ok_tag(h, call)))
    assert h.core.call_state(call) is S.CONNECTED and h.core.call_state(call) == "connected"
