"""What the parts of a user agent core share: ``CoreContext``, and the shape of the messages we make.

``UserAgentCore`` (``voxline.sip.core``) owns one context and hands it to its two parts, the UAS
(``voxline.sip.uas``) and the UAC (``voxline.sip.uac``): the config, the output queues (bytes to
send, events), the dialogs by Call-ID, the transaction tables, the counters. It also builds what
every part sends the same way: responses to a request (Via with ``received``/``rport``, the To tag,
``Server``), our Via and Contact, in-dialog client transactions (BYE). Nothing here decides
anything about a call; below the UAS, the UAC and the facade, it imports none of them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping

from ..telemetry import TELEMETRY
from .config import SipConfig
from .dialog import Dialog
from .events import Address, Outgoing, SipEvent, Transport
from .message import SipParseError, SipRequest, SipResponse, parse_name_addr, parse_via, reason_phrase
from .transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
)

__all__ = ["ALLOW", "CoreContext", "txn_key"]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY"

ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction


class CoreContext:
    """The state of one user agent core that its parts share (see the module docstring)."""

    def __init__(self, config: SipConfig) -> None:
        self.config = config
        self.timers = config.timers
        self.out: list[Outgoing] = []
        self.events: list[SipEvent] = []
        self.dialogs: dict[str, Dialog] = {}  # by Call-ID
        self.server: dict[str, ServerTransaction] = {}  # by txn_key()
        self.client: dict[str, ClientTransaction] = {}  # by "branch|method"
        self.stats: dict[str, int] = {
            "received": 0,
            "malformed_dropped": 0,
            "bad_request_sent": 0,  # any error answer to a malformed message (400, 413, 416, 505, 513)
            "over_limit": 0,  # refused for a size or count limit (answered or dropped)
            "keepalives": 0,  # CRLF-only datagrams / messages
            "retransmissions_absorbed": 0,
            "stray_responses": 0,
            "rejected_over_limit": 0,  # 503: max_calls reached
            "rejected_draining": 0,  # 503: not accepting new calls (UserAgentCore.stop_accepting)
            "rejected_source": 0,  # 403: not in allow_sources
            "alerting_timeouts": 0,  # 480: neither answered nor rejected within alerting_timeout
            "ack_timeouts": 0,  # our 200 OK never ACKed (Timer H)
        }

    # ---------------------------------------------------------------------------------- output

    def send(self, data: bytes, addr: Address, transport: Transport) -> None:
        self.out.append(Outgoing(data, addr, transport))

    def sender(self, addr: Address, transport: Transport) -> Callable[[bytes], None]:
        """What a transaction sends with: bytes to ``addr`` over ``transport``."""

        def send(data: bytes) -> None:
            self.out.append(Outgoing(data, addr, transport))

        return send

    def emit(self, event: SipEvent) -> None:
        self.events.append(event)

    # ---------------------------------------------------------------------------------- dialogs

    def find_dialog(self, req: SipRequest) -> Dialog | None:
        """The dialog an in-dialog request belongs to (Call-ID and both tags), or None."""
        dialog = self.dialogs.get(req.call_id)
        return dialog if dialog is not None and dialog.matches(req) else None

    def send_bye(self, dialog: Dialog, now: float) -> None:
        """A BYE in ``dialog``, in a client transaction of its own (its response needs no action)."""
        self.start_client(self.dialog_request(dialog, "BYE"), dialog, now)

    def dialog_request(self, dialog: Dialog, method: str, cseq: int | None = None) -> SipRequest:
        via = self.via(dialog.local_host, dialog.transport, branch())
        return dialog.request(method, via=via, user_agent=self.config.user_agent, cseq=cseq)

    def start_client(self, req: SipRequest, dialog: Dialog, now: float) -> None:
        """A non-INVITE client transaction for an in-dialog request, sent to the dialog's destination."""
        sender = self.sender(dialog.destination(), dialog.transport)
        txn = ClientNonInviteTransaction(req, sender, dialog.transport != "udp", self.timers, now, ignore)
        self.client[f"{req.vias[0].branch}|{req.method}"] = txn

    # ---------------------------------------------------------------------------------- messages

    def response(
        self,
        req: SipRequest,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        source: Address | None = None,
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipResponse:
        """The response to ``req`` (§8.2.6): its Via (the top one with ``received`` / ``rport`` for
        ``source``), From, To (with ``to_tag`` unless it has one), Call-ID and CSeq, then ``extra``
        headers and an SDP ``body``."""
        resp = SipResponse(status=status, reason=reason or reason_phrase(status))
        TELEMETRY.sip_response(status)  # every response is built here once (resends reuse the bytes)
        vias = req.headers.get_all("Via")
        if vias and source is not None:
            try:
                top = parse_via(vias[0])
                if top.stamp_received(source):
                    vias = [str(top), *vias[1:]]
            except SipParseError:
                pass
        for via in vias:
            resp.headers.add("Via", via)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = req.headers.get(name)
            if value is None:
                continue
            if name == "To" and to_tag and status > 100:
                try:
                    if parse_name_addr(value).tag is None:
                        value = f"{value};tag={to_tag}"
                except SipParseError:
                    pass
            resp.headers.add(name, value)
        resp.headers.add("Server", self.config.user_agent)
        for name, value in extra:
            resp.headers.add(name, value)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = body
        return resp

    def contact(self, host: str, transport: Transport, secure: bool = False) -> str:
        """Our Contact; ``secure``: a ``sips:`` URI (§8.1.1.8, §12.1.1: the request was to one)."""
        if secure and transport == "tls":
            return f"<sips:{self.config.user}@{host_for_uri(host)}:{self.port_for(transport)}>"
        suffix = f";transport={transport}" if transport != "udp" else ""
        return f"<sip:{self.config.user}@{host_for_uri(host)}:{self.port_for(transport)}{suffix}>"

    def via(self, host: str, transport: Transport, branch: str) -> str:
        port = self.port_for(transport)
        return f"SIP/2.0/{transport.upper()} {host_for_uri(host)}:{port};branch={branch};rport"

    def port_for(self, transport: Transport) -> int:
        """The port we take ``transport`` on: the TLS listener's for TLS, else the UDP/TCP one."""
        if transport == "tls" and self.config.tls_port is not None:
            return self.config.tls_port
        return self.config.port


def txn_key(req: SipRequest) -> str:
    """The server transaction a request belongs to (an ACK: its INVITE's)."""
    method = "INVITE" if req.method == "ACK" else req.method
    via = req.headers.get_all("Via")[0]
    top = parse_via(via)
    branch = top.branch or ""
    if branch.startswith("z9hG4bK") and branch != "z9hG4bK":
        # §17.2.3: branch AND sent-by AND method. Another peer reusing a branch is another
        # transaction, not a retransmission whose stored response would go to the first peer.
        return f"{branch}|{top.sent_by}|{method}"
    # RFC 2543 peers, or the bare magic cookie (RFC 4475 badbranch): match on the request's
    # identity instead (§17.2.3); the whole top Via (sent-by included) is part of it.
    return f"{req.call_id}|{req.cseq[0]}|{req.from_.tag}|{via}|{method}"


def checked_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None, param: str = "headers"
) -> list[tuple[str, str]]:
    """Extra headers an application gives for a request, checked: a token name, no CR/LF in the
    value (a header injection). ``ValueError`` naming ``param`` otherwise."""
    extra: list[tuple[str, str]] = []
    if headers is not None:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            if not re.match(r"^[A-Za-z0-9.!%*_+`'~\-]+$", name) or "\r" in value or "\n" in value:
                raise ValueError(f"{param}: invalid header {name!r}: {value!r}")
            extra.append((name, value))
    return extra


def token(nbytes: int = 6) -> str:
    return secrets.token_hex(nbytes)


def branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def printable(text: str) -> str:
    """``text`` fit for a reason phrase or a Warning: control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in text)


def ignore(resp: SipResponse, now: float) -> None:
    """Responses to our BYE and CANCEL need no action."""
