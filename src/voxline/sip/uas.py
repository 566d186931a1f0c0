"""The UAS side of the user agent core (RFC 3261 §8.2, §13.3, §15-§16): calls coming in, and the
requests a peer sends inside any dialog.

``Uas`` takes a new INVITE that passed the core's checks (source, limits) and makes its dialog:
SDP checks, 100 Trying, ``IncomingCall``. Then the application's commands (``ringing``, ``answer``,
``reject``) and the peer's requests: the 200 OK retransmitted until its ACK (T1 doubling to T2,
given up at Timer H with a BYE), ACK (a delayed offer's answer), CANCEL (487), BYE, INFO (DTMF),
OPTIONS and re-INVITE (hold, resume, new codec or address). An incoming call neither answered nor
rejected within ``alerting_timeout`` gets 480. It works on the ``CoreContext`` it is given.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Literal

from .context import ALLOW, CoreContext, printable, token, txn_key
from .dialog import Dialog, DialogState, strip_tag
from .events import (
    Address,
    CallConnected,
    CallDisconnected,
    CallFailed,
    CallReinvite,
    DtmfInfo,
    IncomingCall,
    Transport,
)
from .message import SipParseError, SipRequest, SipResponse, parse_name_addr, parse_uri, reason_phrase
from .sdp import (
    MAX_SDP_BYTES,
    NegotiatedMedia,
    NotAcceptable,
    SdpError,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
    parse_sdp,
)
from .transaction import ServerInviteTransaction, ServerNonInviteTransaction, State

__all__ = ["Uas"]

log = logging.getLogger("voxline.sip")

_DTMF_SIGNALS = set("0123456789*#ABCD")


class Uas:
    """Incoming calls and in-dialog requests from the peer, on a core's shared ``CoreContext``."""

    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx

    # ------------------------------------------------------------------------------------ INVITE

    def on_invite(
        self,
        req: SipRequest,
        txn: ServerInviteTransaction,
        src: Address,
        transport: Transport,
        now: float,
        local_host: str,
        caller_address: Address | None = None,
    ) -> None:
        """A new INVITE (no To tag) that may start a call: its SDP is checked, then the call exists.
        ``caller_address``: who called, when not ``src`` (behind a trusted proxy)."""
        ctx = self._ctx
        offer: SessionDescription | None = None
        media: NegotiatedMedia | None = None
        if req.body:
            sdp_body = sdp_of(req)
            if sdp_body is None:
                resp = ctx.response(req, 415, source=src, extra=[("Accept", "application/sdp")])
                txn.respond(resp, now)
                return
            if len(sdp_body) > MAX_SDP_BYTES:
                log.info("413 to INVITE %s: SDP of %d bytes", req.call_id, len(sdp_body))
                ctx.stats["over_limit"] += 1
                txn.respond(ctx.response(req, 413, source=src), now)
                return
            try:
                offer = parse_sdp(sdp_body)
                _, media = answer_offer(
                    offer, local_host, 9, codecs=ctx.config.codecs, srtp=ctx.config.srtp_for(transport)
                )
            except NotAcceptable as exc:
                log.info("488 to INVITE %s from %s:%s: %s", req.call_id, src[0], src[1], str(exc))
                warning = f'{exc.warn_code} voxline "' + printable(str(exc)).replace('"', "'") + '"'
                txn.respond(ctx.response(req, 488, source=src, extra=[("Warning", warning[:200])]), now)
                return
            except SdpError as exc:
                log.info("400 to INVITE %s with bad SDP: %s", req.call_id, str(exc))
                ctx.stats["bad_request_sent"] += 1
                reason = printable(f"Bad Request (SDP: {exc})")[:120]
                txn.respond(ctx.response(req, 400, reason, source=src), now)
                return
        local_tag = token()
        txn.respond(ctx.response(req, 100, source=src), now)
        caller = req.from_
        callee = parse_uri(req.uri)
        contact_values = req.headers.get_all("Contact")
        remote_target = req.uri
        if contact_values:
            try:
                remote_target = str(parse_name_addr(contact_values[0]).uri)
            except SipParseError:
                pass
        dialog = Dialog(
            call_id=req.call_id,
            inbound=True,
            peer=src,
            transport=transport,
            local_host=local_host,
            local_tag=local_tag,
            remote_tag=caller.tag,
            local_uri=strip_tag(req.headers.get("To") or ""),
            remote_uri=strip_tag(req.headers.get("From") or ""),
            remote_target=remote_target,
            route_set=req.headers.get_all("Record-Route"),
            remote_cseq=req.cseq[0],
            invite=req,
            invite_txn=txn,
            offer=offer,
            media=media,
            sdp_id=secrets.randbelow(2**31),
        )
        if ctx.config.alerting_timeout is not None:
            dialog.alert_deadline = now + ctx.config.alerting_timeout
        ctx.dialogs[req.call_id] = dialog
        ctx.emit(
            IncomingCall(
                call_id=req.call_id,
                caller=caller,
                callee=callee,
                caller_id=caller.uri.user or "",
                display_name=caller.display,
                destination=callee.user or "",
                headers=req.headers.copy(),
                offer=offer,
                media=media,
                source=src,
                transport=transport,
                caller_address=caller_address or src,
            )
        )

    def on_reinvite(
        self, dialog: Dialog, req: SipRequest, txn: ServerInviteTransaction, src: Address, now: float
    ) -> None:
        """A re-INVITE in an answered (answering or connected) dialog."""
        ctx = self._ctx
        if dialog.ok_next is not None:
            # Our 2xx to the previous INVITE is not ACKed yet (§14.2).
            txn.respond(ctx.response(req, 500, source=src, extra=[("Retry-After", "1")]), now)
            return
        if req.cseq[0] <= dialog.remote_cseq:
            txn.respond(ctx.response(req, 500, "Server Internal Error (CSeq out of order)", source=src), now)
            return
        dialog.remote_cseq = req.cseq[0]
        host, port = dialog.local_rtp or (dialog.local_host, 9)
        sdp_body = sdp_of(req) if req.body else None
        if sdp_body is None:
            # Offer in our 200, answer in the ACK.
            dialog.sdp_version += 1
            dialog.our_offer = build_offer(
                host,
                port,
                codecs=ctx.config.codecs,
                dtmf_payload_type=ctx.config.dtmf_payload_type,
                session_id=dialog.sdp_id,
                session_version=dialog.sdp_version,
                srtp=ctx.config.srtp_for(dialog.transport),
            )
            self._send_ok(dialog, req, txn, dialog.our_offer.to_bytes(), now, initial=False)
            return
        try:
            offer = parse_sdp(sdp_body)
            answer, media = answer_offer(
                offer,
                host,
                port,
                codecs=ctx.config.codecs,
                session_id=dialog.sdp_id,
                session_version=dialog.sdp_version + 1,
                srtp=ctx.config.srtp_for(dialog.transport),
                local_key=_local_key(dialog),
            )
        except SdpError as exc:
            status = 488 if isinstance(exc, NotAcceptable) else 400
            log.info("%d to re-INVITE of %s: %s", status, dialog.call_id, str(exc))
            txn.respond(ctx.response(req, status, source=src), now)
            return
        dialog.sdp_version += 1
        dialog.offer = offer
        dialog.media = media
        self._send_ok(dialog, req, txn, answer.to_bytes(), now, initial=False)
        ctx.emit(CallReinvite(dialog.call_id, media, media.on_hold))

    # ------------------------------------------------------------------------------------ commands

    def ringing(self, dialog: Dialog, now: float, status: int) -> None:
        assert dialog.invite is not None and dialog.invite_txn is not None
        resp = self._ctx.response(
            dialog.invite,
            status,
            to_tag=dialog.local_tag,
            source=dialog.peer,
            extra=[("Contact", self._ctx.contact(dialog.local_host, dialog.transport, _secure(dialog)))],
        )
        dialog.invite_txn.respond(resp, now)
        dialog.move_to(DialogState.EARLY)

    def answer(self, dialog: Dialog, now: float, rtp_port: int, rtp_host: str | None) -> bytes:
        assert dialog.invite is not None and dialog.invite_txn is not None
        config = self._ctx.config
        host = rtp_host or dialog.local_host
        dialog.local_rtp = (host, rtp_port)
        if dialog.offer is not None:
            sdp, dialog.media = answer_offer(
                dialog.offer,
                host,
                rtp_port,
                codecs=config.codecs,
                session_id=dialog.sdp_id,
                srtp=config.srtp_for(dialog.transport),
                local_key=_local_key(dialog),  # the key the leg's SRTP already protects with
            )
        else:
            sdp = build_offer(
                host,
                rtp_port,
                codecs=config.codecs,
                dtmf_payload_type=config.dtmf_payload_type,
                session_id=dialog.sdp_id,
                srtp=config.srtp_for(dialog.transport),
            )
            dialog.our_offer = sdp
        body = sdp.to_bytes()
        dialog.move_to(DialogState.ANSWERING)
        dialog.alert_deadline = None
        self._send_ok(dialog, dialog.invite, dialog.invite_txn, body, now, initial=True)
        return body

    def reject(self, dialog: Dialog, now: float, status: int, reason: str | None) -> None:
        assert dialog.invite is not None and dialog.invite_txn is not None
        resp = self._ctx.response(dialog.invite, status, reason, to_tag=dialog.local_tag, source=dialog.peer)
        dialog.invite_txn.respond(resp, now)
        self._ctx.emit(CallFailed(dialog.call_id, status, reason or reason_phrase(status), "local"))
        dialog.end(now)

    def hang_up_answering(self, dialog: Dialog, reason: str, by: Literal["local", "timeout"]) -> None:
        """Hang up an answered call whose ACK has not come: no BYE before the ACK (§15), it goes out
        when the ACK (or the ACK timeout) comes."""
        dialog.bye_pending = True
        self._ctx.emit(CallDisconnected(dialog.call_id, by, reason))

    # ------------------------------------------------------------------------------------ timers

    def alerting_timed_out(self, dialog: Dialog, now: float) -> None:
        assert dialog.invite is not None and dialog.invite_txn is not None
        ctx = self._ctx
        timeout = ctx.config.alerting_timeout
        log.info("call %s not answered within %g s: 480", dialog.call_id, timeout)
        ctx.stats["alerting_timeouts"] += 1
        resp = ctx.response(dialog.invite, 480, to_tag=dialog.local_tag, source=dialog.peer)
        dialog.invite_txn.respond(resp, now)
        ctx.emit(CallFailed(dialog.call_id, 480, f"not answered within {timeout:g} s", "timeout"))
        dialog.end(now)

    def retransmit_ok(self, dialog: Dialog, now: float) -> None:
        """Timer G for our 2xx (§13.3.1.4): again, or at Timer H the end of the dialog with a BYE."""
        ctx = self._ctx
        if now >= dialog.ok_give_up:
            # Timer H for the 2xx: the peer never ACKed. End the dialog with BYE (§13.3.1.4).
            dialog.ok_next = None
            dialog.ok_data = None
            log.info("no ACK for the 200 of %s: ending the call", dialog.call_id)
            ctx.stats["ack_timeouts"] += 1
            was_initial = dialog.ok_initial
            ctx.send_bye(dialog, now)
            if dialog.state is not DialogState.ENDED:
                if was_initial and not dialog.bye_pending:
                    ctx.emit(CallFailed(dialog.call_id, 408, "no ACK for our 200 OK", "timeout"))
                elif not dialog.bye_pending:
                    ctx.emit(CallDisconnected(dialog.call_id, "timeout", "no ACK for our 200 OK"))
                dialog.end(now)
            return
        if dialog.ok_data is not None:
            ctx.send(dialog.ok_data, dialog.peer, dialog.transport)
        dialog.ok_interval = min(2 * dialog.ok_interval, ctx.timers.t2)
        dialog.ok_next = min(now + dialog.ok_interval, dialog.ok_give_up)

    # ------------------------------------------------------------------------------------ requests

    def on_ack(self, req: SipRequest, now: float) -> None:
        """An ACK that is not for a non-2xx final response (those end in their transaction)."""
        ctx = self._ctx
        dialog = ctx.dialogs.get(req.call_id)
        if dialog is None or dialog.ok_next is None or req.cseq[0] != dialog.ok_cseq:
            return  # a stray or retransmitted ACK: nothing to answer
        dialog.ok_next = None
        dialog.ok_data = None
        if dialog.our_offer is not None and req.body:
            try:
                dialog.media = accept_answer(dialog.our_offer, parse_sdp(req.body))
            except SdpError as exc:
                log.info("unusable SDP answer in ACK of %s: %s; ending the call", dialog.call_id, str(exc))
                ctx.send_bye(dialog, now)
                if dialog.ok_initial:
                    ctx.emit(CallFailed(dialog.call_id, 488, f"bad SDP answer in ACK: {exc}", "remote"))
                dialog.end(now)
                return
            dialog.our_offer = None
            if not dialog.ok_initial:
                ctx.emit(CallReinvite(dialog.call_id, dialog.media, dialog.media.on_hold))
        if dialog.bye_pending:
            ctx.send_bye(dialog, now)
            dialog.end(now)
            return
        if dialog.ok_initial and dialog.state is DialogState.ANSWERING:
            dialog.move_to(DialogState.CONNECTED)
            ctx.emit(CallConnected(dialog.call_id, dialog.media))

    def on_cancel(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        ctx = self._ctx
        invite_key = txn_key(req).rsplit("|", 1)[0] + "|INVITE"
        invite_txn = ctx.server.get(invite_key)
        if not isinstance(invite_txn, ServerInviteTransaction):
            txn.respond(ctx.response(req, 481, source=src), now)
            return
        dialog = ctx.dialogs.get(req.call_id)
        txn.respond(ctx.response(req, 200, source=src, to_tag=dialog.local_tag if dialog else None), now)
        if invite_txn.state is State.PROCEEDING:
            tag = dialog.local_tag if dialog else token()
            invite_txn.respond(ctx.response(invite_txn.request, 487, source=src, to_tag=tag), now)
            if dialog is not None and dialog.state is not DialogState.ENDED:
                ctx.emit(CallFailed(dialog.call_id, 487, "cancelled by the caller", "remote"))
                dialog.end(now)

    def on_bye(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        ctx = self._ctx
        dialog = ctx.find_dialog(req)
        if dialog is None:
            txn.respond(ctx.response(req, 481, source=src), now)
            return
        txn.respond(ctx.response(req, 200, source=src), now)
        if dialog.state in (DialogState.ANSWERING, DialogState.CONNECTED):
            dialog.ok_next = None
            dialog.ok_data = None
            if not dialog.bye_pending:
                ctx.emit(CallDisconnected(dialog.call_id, "remote", "BYE"))
            dialog.end(now)

    def on_options(
        self,
        req: SipRequest,
        txn: ServerNonInviteTransaction,
        src: Address,
        now: float,
        *,
        unready: str | None = None,
        retry_after: str = "5",
    ) -> None:
        """200 with what we support; 503 with ``Retry-After`` when ``unready`` (the reason, in a
        ``Warning`` unless empty) says new calls would not be taken."""
        extra = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Accept-Language", "en")]
        if unready is None:
            txn.respond(self._ctx.response(req, 200, source=src, to_tag=token(), extra=extra), now)
            return
        extra.append(("Retry-After", retry_after))
        if unready:
            text = printable(unready).replace("\\", "\\\\").replace('"', '\\"')
            extra.append(("Warning", f'399 voxline "{text}"'))
        txn.respond(self._ctx.response(req, 503, source=src, to_tag=token(), extra=extra), now)

    def on_info(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        ctx = self._ctx
        dialog = ctx.find_dialog(req)
        if dialog is None:
            txn.respond(ctx.response(req, 481, source=src), now)
            return
        txn.respond(ctx.response(req, 200, source=src), now)
        digit, duration = _parse_dtmf_info(req)
        if digit is not None and dialog.state in (DialogState.ANSWERING, DialogState.CONNECTED):
            ctx.emit(DtmfInfo(dialog.call_id, digit, duration))

    # ------------------------------------------------------------------------------------ internals

    def _send_ok(
        self,
        dialog: Dialog,
        req: SipRequest,
        txn: ServerInviteTransaction,
        body: bytes,
        now: float,
        *,
        initial: bool,
    ) -> None:
        ctx = self._ctx
        extra = [
            ("Contact", ctx.contact(dialog.local_host, dialog.transport, _secure(dialog))),
            ("Allow", ALLOW),
        ]
        for rr in req.headers.get_all("Record-Route"):
            extra.append(("Record-Route", rr))
        resp = ctx.response(req, 200, to_tag=dialog.local_tag, source=dialog.peer, extra=extra, body=body)
        txn.respond(resp, now)
        dialog.ok_data = bytes(resp)
        dialog.ok_cseq = req.cseq[0]
        dialog.ok_interval = ctx.timers.t1
        dialog.ok_next = now + dialog.ok_interval
        dialog.ok_give_up = now + ctx.timers.b
        dialog.ok_initial = initial


def sdp_of(message: SipRequest | SipResponse) -> bytes | None:
    """The SDP of a message: the body itself, or the application/sdp part of a multipart/mixed body
    (carriers add ISUP or other parts next to it). None when there is no SDP."""
    kind = message.content_type
    if kind == "application/sdp":
        return message.body
    if kind != "multipart/mixed":
        return None
    m = re.search(r'boundary="?([^";]+)"?', message.headers.get("Content-Type") or "", re.IGNORECASE)
    if not m:
        return None
    for part in message.body.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if sep and re.search(rb"^content-type:\s*application/sdp", head, re.IGNORECASE | re.MULTILINE):
            return content.removesuffix(b"\r\n")
    return None


_SIGNAL = re.compile(r"^\s*signal\s*=\s*(\S)", re.IGNORECASE | re.MULTILINE)
_DURATION = re.compile(r"^\s*duration\s*=\s*(\d+)", re.IGNORECASE | re.MULTILINE)


def _parse_dtmf_info(req: SipRequest) -> tuple[str | None, int]:
    try:
        text = req.body.decode("ascii")
    except UnicodeDecodeError:
        return None, 0
    kind = req.content_type
    digit: str | None = None
    if kind == "application/dtmf-relay":
        m = _SIGNAL.search(text)
        digit = m.group(1).upper() if m else None
    elif kind == "application/dtmf":
        digit = text.strip()[:1].upper() or None
    if digit is None or digit not in _DTMF_SIGNALS:
        return None, 0
    dm = _DURATION.search(text)
    return digit, int(dm.group(1)) if dm else 250


def _secure(dialog: Dialog) -> bool:
    """Whether the INVITE was to a ``sips:`` URI: our Contact is one too (§12.1.1)."""
    return dialog.invite is not None and dialog.invite.uri.lower().startswith("sips:")


def _local_key(dialog: Dialog) -> bytes | None:
    """Our SRTP key of the call so far (answers made again keep it), or None."""
    media = dialog.media
    return media.srtp.local_key if media is not None and media.srtp is not None else None
