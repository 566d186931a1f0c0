"""The UAC side of the user agent core (RFC 3261 §8.1, §13.2, §9.1, §22.2): calls we place.

``Uac.call`` checks what it is given and sends the INVITE (our offer: the configured codecs and
telephone-event). Then the responses to it: provisional ones (``CallProgress``, with early media SDP
if any), the 2xx (adopt the dialog, ACK it, re-ACK retransmissions; an unusable answer is hung up),
401/407 (digest retry, once per nonce), failures (``CallFailed``). Hanging up before the answer is
a CANCEL, sent only after a provisional response (§9.1); a 2xx that comes after we gave up is ACKed
and ended with a BYE (§15); ``invite_timeout`` without a final answer gives up with 408. It works on
the ``CoreContext`` it is given.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Literal

from .auth import DigestChallenge, DigestError, build_authorization, parse_challenge
from .context import ALLOW, CoreContext, branch, checked_headers, host_for_uri, ignore, token
from .dialog import Dialog, DialogState, is_ip, strip_tag
from .events import Address, CallConnected, CallFailed, CallProgress, Transport
from .message import SipParseError, SipRequest, SipResponse, parse_name_addr, parse_uri, reason_phrase
from .sdp import NegotiatedMedia, SdpError, accept_answer, build_offer, parse_sdp
from .transaction import ClientInviteTransaction, ClientNonInviteTransaction

__all__ = ["Uac"]

log = logging.getLogger("voxline.sip")


class Uac:
    """Calls we place, on a core's shared ``CoreContext``."""

    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx

    # ------------------------------------------------------------------------------------ commands

    def call(
        self,
        uri: str,
        now: float,
        *,
        rtp_port: int,
        rtp_host: str | None,
        caller_id: str | None,
        display_name: str | None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        auth: tuple[str, str] | None,
        target: Address | None,
        transport: Transport,
        local_host: str | None,
    ) -> str:
        """See ``UserAgentCore.call``."""
        ctx = self._ctx
        config = ctx.config
        try:
            parsed = parse_uri(uri)
        except SipParseError as exc:
            raise ValueError(f"uri: {exc}") from None
        if parsed.scheme == "tel":
            raise ValueError(f"uri: a tel: URI needs a SIP proxy; give sip:{parsed.user}@<proxy> ({uri!r})")
        if target is None:
            if not is_ip(parsed.host):
                raise ValueError(
                    f"uri: host {parsed.host!r} is not an IP address; resolve it and pass target"
                )
            target = (parsed.host, parsed.port or 5060)
        if transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"transport must be 'udp', 'tcp' or 'tls', got {transport!r}")
        if parsed.scheme == "sips" and transport != "tls":
            raise ValueError(f"uri: a sips: URI is called over TLS only, not {transport} ({uri!r})")
        extra = checked_headers(headers)
        if auth is not None and (len(auth) != 2 or not all(isinstance(x, str) for x in auth)):
            raise ValueError("auth must be a (user, password) tuple of strings")
        host = local_host or config.host
        user = caller_id or config.user
        if not re.match(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$", user):
            raise ValueError(f"caller_id: not a valid SIP user part: {user!r}")
        display = f'"{display_name}" ' if display_name else ""
        dialog = Dialog(
            call_id=f"{token(12)}@{host_for_uri(host)}",
            inbound=False,
            peer=target,
            transport=transport,
            local_host=host,
            local_tag=token(),
            local_uri=f"{display}<sip:{user}@{host_for_uri(host)}>",
            remote_uri=f"<{parsed}>",
            remote_target=uri,
            request_uri=uri,
            extra_headers=extra,
            auth=auth,
            local_rtp=(rtp_host or host, rtp_port),
            sdp_id=secrets.randbelow(2**31),
            ring_deadline=now + config.invite_timeout,
        )
        dialog.our_offer = build_offer(
            rtp_host or host,
            rtp_port,
            codecs=config.codecs,
            dtmf_payload_type=config.dtmf_payload_type,
            session_id=dialog.sdp_id,
            srtp=config.srtp_for(transport),
        )
        ctx.dialogs[dialog.call_id] = dialog
        self._send_invite(dialog, now, None)
        return dialog.call_id

    def hangup(self, dialog: Dialog, now: float, reason: str, by: Literal["local", "timeout"]) -> None:
        """Hang up a call not answered yet: ``CallFailed(487)`` and a CANCEL (when it may go)."""
        failure = "cancelled" if reason == "hangup" else reason
        self._ctx.emit(CallFailed(dialog.call_id, 487, failure, by))
        self._cancel(dialog, now)

    # ------------------------------------------------------------------------------------ timers

    def ring_timed_out(self, dialog: Dialog, now: float) -> None:
        """``invite_timeout`` passed without a final answer: give up (CANCEL) with 408."""
        self._ctx.emit(CallFailed(dialog.call_id, 408, "no answer", "timeout"))
        self._cancel(dialog, now)

    # ------------------------------------------------------------------------------------ responses

    def resend_ack(self, dialog: Dialog) -> bool:
        """A 2xx retransmitted after the INVITE transaction ended: ACK it again (§13.2.2.4). False
        when there is no ACK to send (the 2xx is a stray)."""
        if not dialog.ack_data:
            return False
        self._ctx.send(dialog.ack_data, dialog.peer, dialog.transport)
        return True

    def _on_invite_response(self, dialog: Dialog, resp: SipResponse, now: float) -> None:
        ctx = self._ctx
        status = resp.status
        if dialog.state is DialogState.ENDED:
            if status < 200 and dialog.cancel_pending:
                self._send_cancel(dialog, now)
            elif 200 <= status < 300 and (dialog.ack_data is None or resp.to.tag != dialog.remote_tag):
                # Answered after we gave up: ACK and BYE it (§15).
                self._adopt_2xx(dialog, resp)
                self._send_ack(dialog)
                ctx.send_bye(dialog, now)
            elif 200 <= status < 300 and dialog.ack_data:
                ctx.send(dialog.ack_data, dialog.peer, dialog.transport)
            return
        if status < 200:
            if status > 100:
                media: NegotiatedMedia | None = None
                if resp.body and resp.content_type == "application/sdp" and dialog.our_offer is not None:
                    try:
                        media = accept_answer(dialog.our_offer, parse_sdp(resp.body))
                    except SdpError:
                        media = None
                ctx.emit(CallProgress(dialog.call_id, status, resp.reason, media))
            dialog.move_to(DialogState.PROCEEDING)
            if dialog.cancel_pending:
                self._send_cancel(dialog, now)
            return
        if status < 300:
            if dialog.state is DialogState.CONNECTED:
                if dialog.ack_data:
                    ctx.send(dialog.ack_data, dialog.peer, dialog.transport)
                return
            self._adopt_2xx(dialog, resp)
            self._send_ack(dialog)
            dialog.ring_deadline = None
            try:
                if dialog.our_offer is None or not resp.body:
                    raise SdpError("the 200 OK has no SDP answer")
                media = accept_answer(dialog.our_offer, parse_sdp(resp.body))
            except SdpError as exc:
                log.info("unusable SDP answer on %s: %s; hanging up", dialog.call_id, str(exc))
                ctx.send_bye(dialog, now)
                ctx.emit(CallFailed(dialog.call_id, 488, f"unusable SDP answer: {exc}", "remote"))
                dialog.end(now)
                return
            dialog.media = media
            dialog.move_to(DialogState.CONNECTED)
            ctx.emit(CallConnected(dialog.call_id, media))
            return
        if status in (401, 407) and dialog.auth is not None and self._retry_with_auth(dialog, resp, now):
            return
        by = "timeout" if status == 408 and not resp.headers.get("Server") else "remote"
        ctx.emit(CallFailed(dialog.call_id, status, resp.reason or reason_phrase(status), by))  # type: ignore[arg-type]
        dialog.end(now)

    def _retry_with_auth(self, dialog: Dialog, resp: SipResponse, now: float) -> bool:
        assert dialog.auth is not None
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge: DigestChallenge | None = None
        for value in resp.headers.get_all(header):
            try:
                challenge = parse_challenge(value)
                break
            except DigestError as exc:
                log.info("ignoring challenge on %s: %s", dialog.call_id, str(exc))
        if challenge is None:
            return False
        # A second challenge for the same nonce means the credentials were wrong (unless stale).
        if dialog.auth_attempts >= 3 or (challenge.nonce == dialog.last_nonce and not challenge.stale):
            return False
        dialog.auth_attempts += 1
        dialog.last_nonce = challenge.nonce
        user, password = dialog.auth
        value = build_authorization(
            challenge,
            method="INVITE",
            uri=dialog.request_uri,
            username=user,
            password=password,
            cnonce=token(8),
        )
        name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        dialog.move_to(DialogState.CALLING)  # a new INVITE transaction
        self._send_invite(dialog, now, (name, value))
        return True

    # ------------------------------------------------------------------------------------ requests

    def _send_invite(self, dialog: Dialog, now: float, authorization: tuple[str, str] | None) -> None:
        assert dialog.our_offer is not None
        ctx = self._ctx
        dialog.local_cseq += 1
        req = SipRequest(method="INVITE", uri=dialog.request_uri)
        req.headers.add("Via", ctx.via(dialog.local_host, dialog.transport, branch()))
        req.headers.add("Max-Forwards", "70")
        req.headers.add("From", f"{dialog.local_uri};tag={dialog.local_tag}")
        req.headers.add("To", dialog.remote_uri)
        req.headers.add("Call-ID", dialog.call_id)
        req.headers.add("CSeq", f"{dialog.local_cseq} INVITE")
        secure = dialog.request_uri.lower().startswith("sips:")
        req.headers.add("Contact", ctx.contact(dialog.local_host, dialog.transport, secure))
        req.headers.add("Allow", ALLOW)
        req.headers.add("User-Agent", ctx.config.user_agent)
        if authorization is not None:
            req.headers.add(*authorization)
        for name, value in dialog.extra_headers:
            req.headers.add(name, value)
        req.headers.add("Content-Type", "application/sdp")
        req.body = dialog.our_offer.to_bytes()
        dialog.invite_out = req

        def on_response(resp: SipResponse, t: float) -> None:
            self._on_invite_response(dialog, resp, t)

        txn = ClientInviteTransaction(
            req,
            ctx.sender(dialog.peer, dialog.transport),
            dialog.transport != "udp",
            ctx.timers,
            now,
            on_response,
        )
        dialog.invite_client = txn
        ctx.client[f"{req.vias[0].branch}|INVITE"] = txn

    def _adopt_2xx(self, dialog: Dialog, resp: SipResponse) -> None:
        """The dialog as the 2xx sets it up (§12.1.2): remote tag, target and route set."""
        dialog.remote_tag = resp.to.tag
        contacts = resp.headers.get_all("Contact")
        if contacts:
            try:
                dialog.remote_target = str(parse_name_addr(contacts[0]).uri)
            except SipParseError:
                pass
        dialog.route_set = resp.headers.get_all("Record-Route")
        dialog.remote_uri = strip_tag(resp.headers.get("To") or dialog.remote_uri)

    def _send_ack(self, dialog: Dialog) -> None:
        assert dialog.invite_out is not None
        ack = self._ctx.dialog_request(dialog, "ACK", cseq=dialog.invite_out.cseq[0])
        for name in ("Authorization", "Proxy-Authorization"):
            value = dialog.invite_out.headers.get(name)
            if value is not None:
                ack.headers.add(name, value)
        dialog.ack_data = bytes(ack)
        self._ctx.send(dialog.ack_data, dialog.destination(), dialog.transport)

    def _cancel(self, dialog: Dialog, now: float) -> None:
        if dialog.state is DialogState.PROCEEDING:
            self._send_cancel(dialog, now)
        else:
            dialog.cancel_pending = True  # CANCEL only after a provisional response (§9.1)
        dialog.end(now)

    def _send_cancel(self, dialog: Dialog, now: float) -> None:
        ctx = self._ctx
        dialog.cancel_pending = False
        invite = dialog.invite_out
        if invite is None:
            return
        cancel = SipRequest(method="CANCEL", uri=invite.uri)
        cancel.headers.add("Via", invite.headers.get_all("Via")[0])
        cancel.headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            cancel.headers.add(name, invite.headers.get(name) or "")
        cancel.headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
        key = f"{invite.vias[0].branch}|CANCEL"
        txn = ClientNonInviteTransaction(
            cancel,
            ctx.sender(dialog.peer, dialog.transport),
            dialog.transport != "udp",
            ctx.timers,
            now,
            ignore,
        )
        ctx.client[key] = txn
