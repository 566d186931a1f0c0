"""``Call.transfer`` and the peer's transfer requests over a leg with no network: the events, the hang-up
on success, the call kept after a failure, 603 without a handler, and the outcome of the scenario's
call to the target reported back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from voxline import CallEvents
from voxline.runtime.call import Call, CallState, TransferLeg

from .test_call import MemoryLeg, collect


class TransferMemoryLeg(MemoryLeg):
    """A MemoryLeg that can transfer: records the REFER-side commands."""

    def transfer(self, target: str, headers: Mapping[str, str] | None, timeout: float) -> None:
        self.actions.append(("transfer", target, headers, timeout))

    def accept_transfer(self) -> None:
        self.actions.append("accept")

    def reject_transfer(self, code: int) -> None:
        self.actions.append(("refuse", code))

    def report_transfer(self, code: int, reason: str | None) -> None:
        self.actions.append(("report", code))


ALL = (
    CallEvents.TransferAccepted,
    CallEvents.TransferProgress,
    CallEvents.TransferComplete,
    CallEvents.TransferFailed,
    CallEvents.Disconnected,
)


def names(events: list[Any]) -> list[str]:
    return [e.name for e in events]


def test_successful_transfer_reports_progress_then_hangs_up() -> None:
    leg = TransferMemoryLeg()
    assert isinstance(leg, TransferLeg)
    call = Call(leg)
    events = collect(call, *ALL)
    call.answer()
    call.transfer("sip:human@127.0.0.1:5090", {"X-Why": "sales"}, timeout=5)
    assert leg.actions[-1] == ("transfer", "sip:human@127.0.0.1:5090", {"X-Why": "sales"}, 5)
    leg.call.transfer_accepted()
    leg.call.transfer_progress(180, "Ringing")
    leg.call.transfer_ended(200, "OK")
    assert names(events) == [
        CallEvents.TransferAccepted,
        CallEvents.TransferProgress,
        CallEvents.TransferComplete,
        CallEvents.Disconnected,
    ]
    assert (events[1].code, events[1].reason) == (180, "Ringing")
    assert (events[3].reason, events[3].initiator) == ("transferred", "local")
    assert leg.actions[-1] == "hangup" and call.state() is CallState.ENDED


def answered_and_transferring(leg: TransferMemoryLeg) -> tuple[Call, list[Any]]:
    """A call on ``leg``, answered and asked to transfer to sip:human@127.0.0.1:5090; its events."""
    call = Call(leg)
    events = collect(call, *ALL)
    call.answer()
    call.transfer("sip:human@127.0.0.1:5090")
    return call, events


def test_failed_transfer_leaves_the_call_up() -> None:
    leg = TransferMemoryLeg()
    call, events = answered_and_transferring(leg)
    leg.call.transfer_accepted()
    leg.call.transfer_ended(486, "Busy Here")
    assert names(events) == [CallEvents.TransferAccepted, CallEvents.TransferFailed]
    assert (events[1].code, events[1].reason) == (486, "Busy Here")
    assert call.state() is CallState.CONNECTED and "hangup" not in leg.actions


def test_transfer_needs_a_connected_call_a_uri_and_a_leg_that_can() -> None:
    call = Call(TransferMemoryLeg())
    with pytest.raises(RuntimeError, match="alerting"):
        call.transfer("sip:human@127.0.0.1")
    call.answer()
    for bad in ("human", "http://x", 42):
        with pytest.raises(ValueError, match="target"):
            call.transfer(bad)  # type: ignore[arg-type]
    plain = Call(MemoryLeg())
    plain.answer()
    with pytest.raises(RuntimeError, match="local calls have no SIP dialog"):
        plain.transfer("sip:human@127.0.0.1")
    call.hangup()
    call.transfer("sip:human@127.0.0.1")  # ended: a no-op, as other operations on it


class AckLaterLeg(TransferMemoryLeg):
    """Connects when the test says so, as a SIP leg does on the caller's ACK after our 200 OK."""

    def answer(self, headers: Mapping[str, str] | None) -> None:
        self.actions.append("answer")


def test_a_transfer_asked_for_before_the_caller_confirms_the_answer_goes_out_on_connect() -> None:
    # A fast model can call its transfer tool between our 200 OK and the caller's ACK.
    leg = AckLaterLeg()
    call = Call(leg)
    events = collect(call, CallEvents.Connected, *ALL)
    call.answer()
    call.transfer("sip:human@127.0.0.1:5090", {"X-Why": "sales"}, timeout=5)
    assert leg.actions == ["answer"] and call.state() is CallState.ALERTING  # not sent yet
    with pytest.raises(RuntimeError, match="already waits"):
        call.transfer("sip:other@127.0.0.1")  # one at a time, as on a connected call
    leg.call.connected()  # the ACK
    assert leg.actions == ["answer", ("transfer", "sip:human@127.0.0.1:5090", {"X-Why": "sales"}, 5)]
    leg.call.transfer_ended(200, "OK")
    assert names(events) == [CallEvents.Connected, CallEvents.TransferComplete, CallEvents.Disconnected]


def test_a_waiting_transfer_is_dropped_when_the_call_ends_before_it_connects() -> None:
    leg = AckLaterLeg()
    _, events = answered_and_transferring(leg)
    leg.call.disconnected("CANCEL", "remote")  # the caller gave up before the ACK
    assert names(events) == [CallEvents.Disconnected]
    assert not any(isinstance(a, tuple) and a[0] == "transfer" for a in leg.actions)


def test_a_waiting_transfer_the_leg_refuses_on_connect_is_reported_as_failed() -> None:
    class Refusing(AckLaterLeg):
        def transfer(self, target: str, headers: Mapping[str, str] | None, timeout: float) -> None:
            raise RuntimeError("the dialog cannot carry a REFER")

    leg = Refusing()
    call, events = answered_and_transferring(leg)
    leg.call.connected()
    assert names(events) == [CallEvents.TransferFailed]
    assert (events[0].code, events[0].reason) == (500, "the dialog cannot carry a REFER")
    assert call.state() is CallState.CONNECTED  # the call goes on


def test_transfer_request_without_a_handler_is_refused_603() -> None:
    leg = TransferMemoryLeg()
    call = Call(leg)
    call.answer()
    leg.call.transfer_requested("sip:bob@127.0.0.1", None)
    assert leg.actions[-1] == ("refuse", 603)


def test_transfer_request_accepted_reports_the_outcome_of_the_scenarios_call() -> None:
    leg = TransferMemoryLeg()
    call = Call(leg)
    call.answer()
    requests = collect(call, CallEvents.TransferRequested)
    leg.call.transfer_requested("sip:bob@127.0.0.1", "<sip:alice@127.0.0.1>")
    request = requests[0]
    assert (request.target, request.referred_by) == ("sip:bob@127.0.0.1", "<sip:alice@127.0.0.1>")
    with pytest.raises(TypeError, match="Call placed to the target"):
        request.accept("sip:bob@127.0.0.1")
    target_leg = MemoryLeg()
    target = Call(target_leg, outbound=True)
    request.accept(target)
    assert leg.actions[-1] == "accept"
    with pytest.raises(RuntimeError, match="already answered"):
        request.reject()
    target_leg.call.connected()
    target_leg.call.disconnected("BYE")
    assert [a for a in leg.actions if isinstance(a, tuple) and a[0] == "report"] == [("report", 200)]

    leg.call.transfer_requested("sip:carol@127.0.0.1", None)
    busy_leg = MemoryLeg()
    busy = Call(busy_leg, outbound=True)
    requests[1].accept(busy)
    busy_leg.call.failed(486, "Busy Here")
    assert leg.actions[-1] == ("report", 486)

    leg.call.transfer_requested("sip:dave@127.0.0.1", None)
    with pytest.raises(ValueError, match="code"):
        requests[2].reject(200)
    requests[2].reject(403)
    assert leg.actions[-1] == ("refuse", 403)
