"""Call transfer in the user agent core (RFC 3515 REFER, RFC 3892 Referred-By), sans-I/O.

``Transfer`` is the core's part for REFER and the NOTIFYs of its implicit subscription, both ways,
on the shared ``CoreContext`` (the pure pieces are in ``voxline.sip.refer``).

We refer the peer (blind transfer, ``refer``): an in-dialog REFER with ``Refer-To: <target>`` and
``Referred-By`` (our URI). Its 2xx is ``ReferAccepted``; a failure response ends it
(``ReferEnded`` with that status). The peer's NOTIFYs (``Event: refer``, a ``message/sipfrag``
body) are answered 200 and reported: a provisional status line as ``ReferProgress`` (once per
status), the final one as ``ReferEnded``; a subscription terminated without a final status ends it
with 500, and no final NOTIFY within the timeout with 408 (``by="timeout"``). What the call does
then (hang up on success) is the application's choice. A NOTIFY that belongs to no REFER of ours
gets 481, one of another event package 489, one whose body is not a sipfrag 415 or 400.

The peer refers us: a REFER in a connected call becomes ``ReferReceived``; the application answers
it with ``accept`` (202, then a NOTIFY ``100 Trying``) and reports its call to the target with
``notify`` (a final status terminates the subscription), or ``reject`` (603 by default). A REFER
left unanswered gets 603 after ``REFER_ANSWER_S``; an accepted one whose outcome is never reported
is ended with a 408 sipfrag when its subscription expires (``REFER_EXPIRES``). A REFER outside a
dialog gets 481, one with no usable ``Refer-To`` 400, a second one while the first runs 491.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

from .context import CoreContext, checked_headers, printable
from .dialog import Dialog, DialogState
from .events import Address, ReferAccepted, ReferEnded, ReferProgress, ReferReceived
from .message import SipParseError, SipRequest, SipResponse, parse_uri
from .refer import (
    SIPFRAG,
    IncomingRefer,
    OutgoingRefer,
    ReferError,
    build_sipfrag,
    event_package,
    parse_refer_to,
    parse_sipfrag,
    parse_subscription_state,
)
from .transaction import ClientNonInviteTransaction, ServerNonInviteTransaction

__all__ = ["REFER_ANSWER_S", "REFER_EXPIRES", "Transfer"]

log = logging.getLogger("voxline.sip")

# How long a peer's REFER waits for the application's answer: well inside the peer's Timer F
# (32 s), long enough for an async handler.
REFER_ANSWER_S = 4.0
# How long the subscription of a REFER we accepted lasts (our Subscription-State expires): longer
# than an outbound call may ring (SipConfig.invite_timeout, 120 s by default).
REFER_EXPIRES = 180


class Transfer:
    """REFER and its NOTIFYs, both ways, on a core's shared ``CoreContext``."""

    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx

    # ------------------------------------------------------------------------------ we refer the peer

    def refer(
        self,
        dialog: Dialog,
        target: str,
        now: float,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        timeout: float,
    ) -> None:
        """Send a REFER to ``target`` in ``dialog`` (connected; no transfer of ours running)."""
        try:
            uri = parse_uri(target)
        except SipParseError as exc:
            raise ValueError(f"target: {exc}") from None
        if any(c in target for c in '<>\r\n"') or not target.strip():
            raise ValueError(f"target: not a plain URI: {target!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        extra = checked_headers(headers)
        ctx = self._ctx
        req = ctx.dialog_request(dialog, "REFER")
        req.headers.add("Contact", ctx.contact(dialog.local_host, dialog.transport))
        req.headers.add("Refer-To", f"<{uri}>")
        req.headers.add("Referred-By", dialog.local_uri)
        for name, value in extra:
            req.headers.add(name, value)
        dialog.refer_out = record = OutgoingRefer(req.cseq[0], str(uri), now + timeout)

        def on_response(resp: SipResponse, t: float) -> None:
            self._on_refer_response(dialog, record, resp, t)

        sender = ctx.sender(dialog.destination(), dialog.transport)
        txn = ClientNonInviteTransaction(req, sender, dialog.transport == "tcp", ctx.timers, now, on_response)
        ctx.client[f"{req.vias[0].branch}|REFER"] = txn

    def _on_refer_response(
        self, dialog: Dialog, record: OutgoingRefer, resp: SipResponse, now: float
    ) -> None:
        if record.done or resp.status < 200:
            return
        if resp.status < 300:
            if not record.accepted:
                record.accepted = True
                self._ctx.emit(ReferAccepted(dialog.call_id))
            return
        log.info("REFER of %s refused: %d %s", dialog.call_id, resp.status, resp.reason)
        # A 408 without a Server header is our transaction's own: the peer never answered.
        timed_out = resp.status == 408 and not resp.headers.get("Server")
        self._end(
            dialog, record, resp.status, resp.reason or "REFER refused", "timeout" if timed_out else "remote"
        )

    def on_notify(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        ctx = self._ctx
        dialog = ctx.find_dialog(req)
        package, event_id = event_package(req.headers.get("Event"))
        if dialog is None or (package == "refer" and dialog.refer_out is None):
            txn.respond(ctx.response(req, 481, source=src), now)
            return
        if package != "refer":
            # RFC 6665 §8.3.1: an event package we did not subscribe to.
            txn.respond(ctx.response(req, 489, source=src, extra=[("Allow-Events", "refer")]), now)
            return
        record = dialog.refer_out
        assert record is not None
        if event_id is not None and event_id != str(record.cseq):
            txn.respond(ctx.response(req, 481, "Subscription Does Not Exist", source=src), now)
            return
        try:
            state = parse_subscription_state(req.headers.get("Subscription-State"))
        except ReferError as exc:
            self._bad_notify(req, txn, src, now, 400, str(exc))
            return
        frag = None
        if req.body or not state.terminated:
            if req.content_type != SIPFRAG:
                txn.respond(ctx.response(req, 415, source=src, extra=[("Accept", SIPFRAG)]), now)
                return
            try:
                frag = parse_sipfrag(req.body)
            except ReferError as exc:
                self._bad_notify(req, txn, src, now, 400, str(exc))
                if state.terminated:
                    self._end(dialog, record, 500, f"transfer subscription ended: {exc}", "remote")
                return
        txn.respond(ctx.response(req, 200, source=src), now)
        if record.done:
            return  # its outcome is known: a late or repeated NOTIFY
        if not record.accepted:
            record.accepted = True  # the NOTIFY overtook the 202 (RFC 3515 §2.4.4 allows it)
            ctx.emit(ReferAccepted(dialog.call_id))
        if frag is not None and frag.final:
            self._end(dialog, record, frag.status, frag.reason, "remote")
        elif frag is not None and frag.status != record.last_status:
            record.last_status = frag.status
            ctx.emit(ReferProgress(dialog.call_id, frag.status, frag.reason))
        if state.terminated and not record.done:
            reason = state.reason or "no reason given"
            self._end(
                dialog,
                record,
                500,
                f"transfer subscription ended without a final status ({reason})",
                "remote",
            )

    def _bad_notify(
        self,
        req: SipRequest,
        txn: ServerNonInviteTransaction,
        src: Address,
        now: float,
        status: int,
        why: str,
    ) -> None:
        log.info("%d to NOTIFY of %s: %s", status, req.call_id, why)
        self._ctx.stats["bad_request_sent"] += 1
        reason = printable(f"Bad Request ({why})")[:120]
        txn.respond(self._ctx.response(req, status, reason, source=src), now)

    def _end(
        self,
        dialog: Dialog,
        record: OutgoingRefer,
        status: int,
        reason: str,
        by: Literal["remote", "timeout"],
    ) -> None:
        record.done = True
        record.deadline = None
        self._ctx.emit(ReferEnded(dialog.call_id, status, reason, by))

    # ------------------------------------------------------------------------------ the peer refers us

    def on_refer(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        ctx = self._ctx
        dialog = ctx.find_dialog(req)
        if dialog is None or req.to.tag is None or dialog.state is DialogState.ENDED:
            txn.respond(ctx.response(req, 481, source=src), now)
            return
        if dialog.state is not DialogState.CONNECTED:
            txn.respond(ctx.response(req, 403, "Forbidden (the call is not connected)", source=src), now)
            return
        try:
            target = parse_refer_to(req)
        except ReferError as exc:
            log.info("400 to REFER of %s: %s", dialog.call_id, str(exc))
            ctx.stats["bad_request_sent"] += 1
            txn.respond(ctx.response(req, 400, printable(f"Bad Request ({exc})")[:120], source=src), now)
            return
        running = dialog.refer_in
        if running is not None and not running.done:
            txn.respond(ctx.response(req, 491, source=src), now)
            return
        dialog.refer_in = IncomingRefer(
            cseq=req.cseq[0],
            target=target,
            referred_by=req.headers.get("Referred-By"),
            request=req,
            txn=txn,
            deadline=now + REFER_ANSWER_S,
        )
        ctx.emit(ReferReceived(dialog.call_id, target, req.headers.get("Referred-By"), req.headers.copy()))

    def accept(self, dialog: Dialog, now: float) -> None:
        record = self._pending(dialog)
        ctx = self._ctx
        extra = [("Contact", ctx.contact(dialog.local_host, dialog.transport))]
        record.txn.respond(ctx.response(record.request, 202, source=dialog.peer, extra=extra), now)
        record.accepted = True
        record.deadline = now + REFER_EXPIRES
        self._notify(dialog, record, 100, None, now)

    def reject(self, dialog: Dialog, now: float, status: int, reason: str | None) -> None:
        if not 300 <= status <= 699:
            raise ValueError(f"status must be a final failure code 300..699, got {status}")
        record = self._pending(dialog)
        record.txn.respond(self._ctx.response(record.request, status, reason, source=dialog.peer), now)
        record.done = True
        record.deadline = None

    def notify(self, dialog: Dialog, now: float, status: int, reason: str | None) -> None:
        """Report the outcome of our call to the REFER's target: a final ``status`` ends it."""
        record = dialog.refer_in
        if record is None or not record.accepted or record.done:
            raise ReferError(f"call {dialog.call_id!r} has no accepted REFER to report on")
        self._notify(dialog, record, status, reason, now)

    def _pending(self, dialog: Dialog) -> IncomingRefer:
        record = dialog.refer_in
        if record is None or record.accepted or record.done:
            raise ReferError(f"call {dialog.call_id!r} has no REFER waiting for an answer")
        return record

    def _notify(
        self, dialog: Dialog, record: IncomingRefer, status: int, reason: str | None, now: float
    ) -> None:
        body = build_sipfrag(status, reason)
        final = status >= 200
        if dialog.state is DialogState.ENDED:  # the dialog is gone: nobody to tell
            if final:
                record.done = True
                record.deadline = None
            return
        ctx = self._ctx
        req = ctx.dialog_request(dialog, "NOTIFY")
        req.headers.add("Contact", ctx.contact(dialog.local_host, dialog.transport))
        req.headers.add("Event", f"refer;id={record.cseq}")
        if final:
            req.headers.add("Subscription-State", "terminated;reason=noresource")
            record.done = True
            record.deadline = None
        else:
            left = max(1, round(record.deadline - now)) if record.deadline is not None else REFER_EXPIRES
            req.headers.add("Subscription-State", f"active;expires={left}")
        req.headers.add("Content-Type", SIPFRAG)
        req.body = body
        ctx.start_client(req, dialog, now)

    # ------------------------------------------------------------------------------ timers

    def tick(self, dialog: Dialog, now: float) -> None:
        out = dialog.refer_out
        if out is not None and out.deadline is not None and out.deadline <= now:
            log.info("transfer of %s to %s: no final NOTIFY in time", dialog.call_id, out.target)
            self._end(dialog, out, 408, "no final NOTIFY from the transferee in time", "timeout")
        incoming = dialog.refer_in
        if incoming is not None and incoming.deadline is not None and incoming.deadline <= now:
            if not incoming.accepted:
                log.info("REFER of %s to %s not answered: 603", dialog.call_id, incoming.target)
                self.reject(dialog, now, 603, "Decline (not answered)")
            else:
                self._notify(dialog, incoming, 408, None, now)
