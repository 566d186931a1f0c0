"""The SIP user agent core (RFC 3261 §8, §12-§17), sans-I/O.

Bytes in: ``receive(data, addr, now)``. Commands in: ``answer``, ``ringing``, ``reject``,
``hangup``, ``call``, ``stop_accepting``. Out: ``data_to_send()`` (datagrams / stream writes) and
``events_received()``. Time only comes in as ``now`` (seconds, any monotonic origin);
``next_deadline()`` says when ``tick(now)`` must run next. Nothing here raises on bad input from the
network: a request that can be answered gets 400 (or the fitting 4xx), anything else is dropped,
logged once and counted.

``UserAgentCore`` is the facade: it parses, checks the source, matches transactions, applies the
limits, dispatches and runs the timers. What happens to a call is in its parts, each on the shared
``CoreContext`` (``voxline.sip.context``: queues, tables, counters, response construction): the
UAS (``voxline.sip.uas``: calls coming in, requests inside a dialog), the UAC (``voxline.sip.uac``:
calls we place), transfer (``voxline.sip.transfer``: REFER and its NOTIFYs, both ways), and the
dialog record with its states (``voxline.sip.dialog``).

Routing choices: responses go back to the source address of the request (symmetric, as rport does),
and in-dialog requests go to the first Record-Route hop when there is one (as an IP address),
otherwise to the address the peer signals from; a NAT-ed or mis-advertised Contact therefore does
not break BYE. Calls are keyed by Call-ID.

Who may call: with ``SipConfig.allow_sources`` set, a request from outside those networks is
refused with a stateless 403 before it can start anything (no ``IncomingCall``, no transaction, no
retransmission), counted in ``stats['rejected_source']`` and logged once per address. Not
checked: OPTIONS (answered to anyone: it opens nothing, and health checks and keep-alive pings often
come from elsewhere than the trunk), requests inside an existing dialog that come from that dialog's
own peer (the INVITE's source, its first Record-Route hop or its Contact). A stranger's ACK is
dropped (counted, never answered).

Calls that hold a slot for nothing end by themselves: an answer never ACKed at Timer H (64*T1,
``CallFailed(408, by="timeout")`` and a BYE), an incoming call neither answered nor rejected within
``alerting_timeout`` (480, ``CallFailed(480, by="timeout")``).

New calls get ``503`` with ``Retry-After``: beyond ``SipConfig.max_calls`` (``rejected_over_limit``)
and after ``stop_accepting()``, while a server drains (``rejected_draining``).

After the allowlist, a new INVITE meets the per-source rate limit (``SipConfig.rate_limit``: a
stateless ``503`` with ``Retry-After``, ``rejected_rate``; retransmissions are absorbed before it and
cost nothing) and then digest authentication (``SipConfig.auth_users``: ``401`` challenge,
``auth_challenges``; ``403``/``400``, ``rejected_auth``), both before anything of a call exists
(``voxline.sip.access``). ``send_request`` sends a request outside any dialog (a REGISTER of
``voxline.sip.register``) in a client transaction whose responses go to the caller's callback.

Behind a SIP proxy (``SipConfig.trusted_proxies``): a request whose source is a trusted proxy has as
its caller's address the one that proxy received it from, read from the Via below the proxy's own
(``received`` and ``rport`` when the proxy added them, per RFC 3261 §18.2.1 and RFC 3581, else the
sent-by; a chain of trusted proxies is followed down). ``allow_sources`` checks that address, not
the proxy's (a proxy's own requests, OPTIONS or in-dialog ones, pass), and ``IncomingCall`` carries
it as ``caller_address``. Nothing else changes: responses go back to the proxy (the source), and
the proxy's Record-Route becomes the dialog's route set, so our BYE goes through it too. A Via
from an untrusted source is never believed: anyone can write one.

OPTIONS outside a dialog is a health probe (a proxy's keep-alive: Kamailio's dispatcher, OpenSIPS'
load balancer): ``200`` when a new call would be taken, otherwise ``503`` with ``Retry-After`` and a
``Warning`` naming the reason: not accepting, at ``max_calls``, or what the ``readiness`` hook given
to the core says (a callable the core asks on each OPTIONS: None when ready, else the reason; the
runtime's :class:`voxline.runtime.readiness.Readiness`). The reason (it may name the model's last
connect error) goes only to sources that ``allow_sources`` lets in; others get the status alone.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from .access import DigestVerifier, RateLimiter
from .config import SipConfig, source_networks
from .context import ALLOW, CoreContext, printable, token, txn_key
from .dialog import Dialog, DialogState, source_ip
from .events import Address, CallDisconnected, Outgoing, SipEvent, Transport
from .message import SipParseError, SipRequest, SipResponse, parse_message, reason_phrase, summary_request
from .transaction import (
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
)
from .transfer import Transfer
from .uac import Uac
from .uas import Uas

__all__ = ["CallStateError", "SipConfig", "UserAgentCore"]

log = logging.getLogger("voxline.sip")

_KNOWN_METHODS = {"REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "UPDATE", "PRACK", "PUBLISH"}
_SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
_LOGGED_SOURCES = 1024  # refused addresses remembered (for one log line each), oldest forgotten
_RETRY_AFTER_S = "5"  # in a 503 to a new call: over max_calls or not accepting


class CallStateError(RuntimeError):
    """A command that does not fit the call's state (answering a cancelled call, unknown call id)."""


class UserAgentCore:
    """One SIP user agent: any number of inbound and outbound calls (see the module docstring)."""

    def __init__(
        self, config: SipConfig | None = None, *, readiness: Callable[[], str | None] | None = None
    ) -> None:
        self._ctx = ctx = CoreContext(config or SipConfig())
        self._readiness = readiness
        self._uas = Uas(ctx)
        self._uac = Uac(ctx)
        self._transfer = Transfer(ctx)
        self.stats = ctx.stats
        allowed = ctx.config.allow_sources
        self._allowed = source_networks(allowed) if allowed is not None else None
        proxies = ctx.config.trusted_proxies
        self._proxies = source_networks(proxies, "trusted_proxies") if proxies else ()
        self._refused_sources: OrderedDict[str, None] = OrderedDict()
        self._accepting = True
        cfg = ctx.config
        self._verifier = (
            DigestVerifier(cfg.auth_users, cfg.auth_realm, algorithms=cfg.auth_algorithms)
            if cfg.auth_users
            else None
        )
        self._limiter = RateLimiter(cfg.rate_limit, cfg.rate_burst) if cfg.rate_limit else None
        self._rate_exempt = source_networks(cfg.rate_exempt, "rate_exempt")
        for name in ("rejected_rate", "rejected_auth", "auth_challenges"):
            self.stats.setdefault(name, 0)

    @property
    def config(self) -> SipConfig:
        return self._ctx.config

    @property
    def accepting(self) -> bool:
        """Whether a new INVITE may start a call (False after ``stop_accepting``)."""
        return self._accepting

    # ------------------------------------------------------------------------------------ outputs

    def data_to_send(self) -> list[Outgoing]:
        ctx = self._ctx
        out, ctx.out = ctx.out, []
        return out

    def events_received(self) -> list[SipEvent]:
        ctx = self._ctx
        events, ctx.events = ctx.events, []
        return events

    @property
    def active_calls(self) -> int:
        return sum(1 for d in self._ctx.dialogs.values() if d.state is not DialogState.ENDED)

    def unready_reason(self) -> str | None:
        """Why a new call would not be taken now (what a 503 to OPTIONS says), or None."""
        if not self._accepting:
            return "not accepting new calls"
        if self.active_calls >= self.config.max_calls:
            return f"at max_calls ({self.config.max_calls})"
        if self._readiness is not None:
            try:
                return self._readiness()
            except Exception:  # the hook's bug must not cost the answer: ready is the old behaviour
                log.exception("the readiness hook raised; OPTIONS answered as ready")
        return None

    def has_calls_on(self, addr: Address, transport: Transport) -> bool:
        """Whether a call not ended signals with ``addr`` over ``transport`` (a TCP connection that
        carries a call is not idle)."""
        return any(
            d.state is not DialogState.ENDED and d.transport == transport and d.peer == addr
            for d in self._ctx.dialogs.values()
        )

    def call_state(self, call_id: str) -> DialogState | None:
        dialog = self._ctx.dialogs.get(call_id)
        return dialog.state if dialog else None

    def next_deadline(self) -> float | None:
        ctx = self._ctx
        times: list[float] = []
        for txn in (*ctx.server.values(), *ctx.client.values()):
            d = txn.deadline()
            if d is not None:
                times.append(d)
        for dialog in ctx.dialogs.values():
            d = dialog.deadline()
            if d is not None:
                times.append(d)
            if dialog.ended_at is not None:
                times.append(dialog.ended_at + ctx.timers.b)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        ctx = self._ctx
        for txns in (ctx.server, ctx.client):
            for key, txn in list(txns.items()):
                d = txn.deadline()
                if d is not None and d <= now:
                    txn.tick(now)
                if txn.terminated:
                    del txns[key]
        for dialog in list(ctx.dialogs.values()):
            if dialog.ok_next is not None and dialog.ok_next <= now:
                self._uas.retransmit_ok(dialog, now)
            if dialog.ring_deadline is not None and dialog.ring_deadline <= now:
                dialog.ring_deadline = None
                if dialog.state in (DialogState.CALLING, DialogState.PROCEEDING):
                    self._uac.ring_timed_out(dialog, now)
            if dialog.alert_deadline is not None and dialog.alert_deadline <= now:
                dialog.alert_deadline = None
                if dialog.state in (DialogState.INCOMING, DialogState.EARLY):
                    self._uas.alerting_timed_out(dialog, now)
            if dialog.refer_out is not None or dialog.refer_in is not None:
                self._transfer.tick(dialog, now)
            if (
                dialog.ended_at is not None
                and now >= dialog.ended_at + ctx.timers.b
                and dialog.ok_next is None
            ):
                del ctx.dialogs[dialog.call_id]

    # ------------------------------------------------------------------------------------ input

    def receive(
        self,
        data: bytes,
        addr: Address,
        now: float,
        transport: Transport = "udp",
        local_host: str | None = None,
    ) -> None:
        """Handle one datagram or one framed stream message from ``addr``. Never raises."""
        self.stats["received"] += 1
        if not data.strip(b"\r\n\t "):
            self.stats["keepalives"] += 1  # a CRLF keep-alive (RFC 5626): nothing to say
            return
        try:
            message = parse_message(data, stream=transport != "udp", max_bytes=self.config.max_message_bytes)
        except SipParseError as exc:
            self._malformed(exc, data, addr, transport)
            return
        try:
            if isinstance(message, SipRequest):
                self._on_request(message, addr, transport, now, local_host or self.config.host)
            else:
                self._on_response(message, now)
        except Exception:  # a bug must not take the endpoint down: one message lost, logged
            log.exception("internal error handling SIP message from %s:%s", *addr)
            self.stats["malformed_dropped"] += 1

    def refuse_message(
        self, head: bytes, addr: Address, now: float, transport: Transport, status: int, reason: str
    ) -> None:
        """Answer a message that could not be framed (a stream whose Content-Length is bad, repeated or
        too large: ``StreamFramer.error``), from its header section alone. The I/O layer closes the
        connection after sending what this queues."""
        self.stats["received"] += 1
        exc = SipParseError(reason, summary_request(head), status, limit=status == 513)
        self._malformed(exc, head, addr, transport)

    def _malformed(self, exc: SipParseError, data: bytes, addr: Address, transport: Transport) -> None:
        if exc.limit:
            self.stats["over_limit"] += 1
        request = exc.request
        if request is None and transport != "udp":
            # A connection is its own way back (and its source is no spoofed one): a request
            # without a usable Via is answered there too, so the peer learns why it is closed.
            request = summary_request(data.split(b"\r\n\r\n", 1)[0], need_via=False)
        if request is not None and request.method != "ACK":
            status = exc.status
            log.info("%d to malformed SIP request from %s:%s: %s", status, addr[0], addr[1], exc.reason)
            reason = printable(f"{reason_phrase(status)} ({exc.reason})")[:120]
            resp = self._ctx.response(request, status, reason, source=addr)
            self._ctx.send(bytes(resp), addr, transport)
            self.stats["bad_request_sent"] += 1
            return
        # Log text, never the exception: a record that is kept (a queue handler, a test's capture)
        # would keep its traceback alive, and with it the frames holding up to 64 KB of input each.
        log.info("dropped malformed SIP message from %s:%s (%d bytes): %s", *addr, len(data), exc.reason)
        self.stats["malformed_dropped"] += 1

    # ------------------------------------------------------------------------------------ requests

    def _on_request(
        self, req: SipRequest, src: Address, transport: Transport, now: float, local_host: str
    ) -> None:
        ctx = self._ctx
        key = txn_key(req)
        if self._allowed is not None and req.method != "OPTIONS" and not self._may_send(req, src):
            if req.method == "ACK":
                self.stats["rejected_source"] += 1  # never answered; it must not confirm a call
            else:
                self._refuse_source(req, src, transport)
            return
        if req.method == "ACK":
            acked = ctx.server.get(key)
            if isinstance(acked, ServerInviteTransaction) and acked.state in (
                State.COMPLETED,
                State.CONFIRMED,
            ):
                acked.on_ack(now)  # ACK of a non-2xx final response
            else:
                self._uas.on_ack(req, now)
            return
        existing = ctx.server.get(key)
        if existing is not None:
            existing.on_retransmission()
            self.stats["retransmissions_absorbed"] += 1
            return
        send = ctx.sender(src, transport)
        reliable = transport != "udp"
        unsupported = self._unsupported(req) if req.method != "CANCEL" else ""
        if unsupported:
            # Not supported: answered before anything else looks at it (§8.2.2.3).
            txn_420: ServerInviteTransaction | ServerNonInviteTransaction
            if req.method == "INVITE":
                txn_420 = ServerInviteTransaction(req, send, reliable, ctx.timers)
            else:
                txn_420 = ServerNonInviteTransaction(req, send, reliable, ctx.timers)
            ctx.server[key] = txn_420
            txn_420.respond(ctx.response(req, 420, source=src, extra=[("Unsupported", unsupported)]), now)
            return
        if req.method == "INVITE" and self._limiter is not None and req.to.tag is None:
            caller = self.caller_address(req, src)[0]
            if not self._rate_exempted(caller) and not self._limiter.allow(caller, now):
                self._refuse_rate(req, src, transport, caller)
                return
        if req.method == "INVITE":
            invite_txn = ServerInviteTransaction(req, send, reliable, ctx.timers)
            ctx.server[key] = invite_txn
            self._on_invite(req, invite_txn, src, transport, now, local_host)
            return
        txn = ServerNonInviteTransaction(req, send, reliable, ctx.timers)
        ctx.server[key] = txn
        max_forwards = req.headers.get("Max-Forwards")
        if max_forwards is not None and max_forwards.strip() == "0" and req.method != "OPTIONS":
            txn.respond(ctx.response(req, 483, source=src), now)
            return
        uas = self._uas
        if req.method == "OPTIONS":
            unready = self.unready_reason() if req.to.tag is None else None
            # The reason may name an upstream error: for the sources allowed to call only.
            shown = unready if unready is None or self._allowed is None or self._may_send(req, src) else ""
            uas.on_options(req, txn, src, now, unready=shown, retry_after=_RETRY_AFTER_S)
            return
        handler = {
            "CANCEL": uas.on_cancel,
            "BYE": uas.on_bye,
            "INFO": uas.on_info,
            "REFER": self._transfer.on_refer,
            "NOTIFY": self._transfer.on_notify,
        }.get(req.method)
        if handler is not None:
            handler(req, txn, src, now)
        elif req.method in _KNOWN_METHODS:
            txn.respond(ctx.response(req, 405, source=src, extra=[("Allow", ALLOW)]), now)
        else:
            txn.respond(ctx.response(req, 501, source=src, extra=[("Allow", ALLOW)]), now)

    def caller_address(self, req: SipRequest, src: Address) -> Address:
        """Who sent ``req``: ``src``, or behind trusted proxies the address the first of them received
        it from (see the module docstring). A Via that does not parse leaves the last good address."""
        if not self._trusted(src[0]):
            return src
        addr = src
        try:
            vias = req.vias[1:]  # the top Via is the proxy's own
        except SipParseError:
            return src
        for via in vias:
            rport = via.params.get("rport")
            port = int(rport) if rport and rport.isdigit() else via.port or 5060
            addr = (via.params.get("received") or via.host, port)
            if not self._trusted(addr[0]):
                break
        return addr

    def _trusted(self, host: str) -> bool:
        ip = source_ip(host) if self._proxies else None
        return ip is not None and any(ip in net for net in self._proxies)

    def _may_send(self, req: SipRequest, src: Address) -> bool:
        """``allow_sources`` check: a listed caller (behind a trusted proxy: the address the proxy got
        the request from), a trusted proxy's own request, or a dialog's own peer inside that dialog."""
        assert self._allowed is not None
        caller = source_ip(self.caller_address(req, src)[0])
        if caller is not None and (self._trusted(str(caller)) or any(caller in net for net in self._allowed)):
            return True
        ip = source_ip(src[0])
        if ip is None:
            return False
        if req.to.tag is None:
            return False
        dialog = self._ctx.find_dialog(req)
        return dialog is not None and ip in dialog.peer_ips()

    def _refuse_source(self, req: SipRequest, src: Address, transport: Transport) -> None:
        self.stats["rejected_source"] += 1
        caller = self.caller_address(req, src)
        host = caller[0]
        if host in self._refused_sources:
            self._refused_sources.move_to_end(host)  # still at it: not logged again
        else:
            if len(self._refused_sources) >= _LOGGED_SOURCES:
                self._refused_sources.popitem(last=False)
            self._refused_sources[host] = None
            via = "" if caller == src else f" (via proxy {src[0]}:{src[1]})"
            log.info(
                "403 to %s from %s:%s%s: source not in allow_sources (further refusals not logged)",
                req.method,
                host,
                caller[1],
                via,
            )
        # Stateless (§8.2.7): no transaction, so nothing is retransmitted to a maybe spoofed source
        # (Timer G would send ~10 403s per INVITE), and a stranger's request cannot occupy the
        # transaction key (branch, sent-by, method) of a legitimate peer's.
        self._ctx.send(bytes(self._ctx.response(req, 403, source=src, to_tag=token())), src, transport)

    def _on_invite(
        self,
        req: SipRequest,
        txn: ServerInviteTransaction,
        src: Address,
        transport: Transport,
        now: float,
        local_host: str,
    ) -> None:
        ctx = self._ctx
        if not _accepts_sdp(req):
            # RFC 4475 sdp01: our answer is SDP, which the caller's Accept excludes.
            warning = '399 voxline "the answer would be application/sdp, which Accept does not list"'
            txn.respond(ctx.response(req, 406, source=src, extra=[("Warning", warning)]), now)
            return
        if req.to.tag is not None:
            dialog = ctx.find_dialog(req)
            if dialog is None or dialog.state not in (DialogState.ANSWERING, DialogState.CONNECTED):
                txn.respond(ctx.response(req, 481, source=src), now)
                return
            self._uas.on_reinvite(dialog, req, txn, src, now)
            return
        if req.call_id in ctx.dialogs:
            # Same Call-ID, no To tag, new branch: a merged or looped request (§8.2.2.2).
            txn.respond(ctx.response(req, 482, source=src, to_tag=token()), now)
            return
        if self._verifier is not None and not self._authenticated(req, txn, src, now):
            return
        if not self._accepting:
            self.stats["rejected_draining"] += 1
            txn.respond(ctx.response(req, 503, source=src, extra=[("Retry-After", _RETRY_AFTER_S)]), now)
            return
        if self.active_calls >= self.config.max_calls:
            self.stats["rejected_over_limit"] += 1
            txn.respond(ctx.response(req, 503, source=src, extra=[("Retry-After", _RETRY_AFTER_S)]), now)
            return
        self._uas.on_invite(req, txn, src, transport, now, local_host, self.caller_address(req, src))

    def _rate_exempted(self, host: str) -> bool:
        if self._trusted(host):
            return True
        ip = source_ip(host) if self._rate_exempt else None
        return ip is not None and any(ip in net for net in self._rate_exempt)

    def _refuse_rate(self, req: SipRequest, src: Address, transport: Transport, caller: str) -> None:
        assert self._limiter is not None
        self.stats["rejected_rate"] += 1
        if caller not in self._refused_sources:
            if len(self._refused_sources) >= _LOGGED_SOURCES:
                self._refused_sources.popitem(last=False)
            self._refused_sources[caller] = None
            log.info("503 to INVITE from %s: over sip_rate_limit (further refusals not logged)", caller)
        # Stateless, as the 403 of the allowlist: a flood gets no retransmissions and holds no keys.
        retry = [("Retry-After", str(self._limiter.retry_after()))]
        resp = self._ctx.response(
            req, 503, "Service Unavailable (rate limit)", source=src, to_tag=token(), extra=retry
        )
        self._ctx.send(bytes(resp), src, transport)

    def _authenticated(self, req: SipRequest, txn: ServerInviteTransaction, src: Address, now: float) -> bool:
        """Digest check of a new INVITE (``SipConfig.auth_users``): answers 401/403/400 itself when
        it fails, before anything of a call exists."""
        assert self._verifier is not None
        verdict = self._verifier.check(req.method, req.headers.get_all("Authorization"), now)
        if verdict.status == 0:
            return True
        ctx = self._ctx
        if verdict.status == 401:
            self.stats["auth_challenges"] += 1
            extra = [("WWW-Authenticate", c) for c in verdict.challenges]
            txn.respond(ctx.response(req, 401, verdict.reason, source=src, to_tag=token(), extra=extra), now)
            return False
        self.stats["rejected_auth"] += 1
        caller = self.caller_address(req, src)
        log.info("%d to INVITE from %s:%s: %s", verdict.status, *caller, verdict.reason)
        reason = printable(verdict.reason)[:120]
        txn.respond(ctx.response(req, verdict.status, reason, source=src, to_tag=token()), now)
        return False

    @staticmethod
    def _unsupported(req: SipRequest) -> str:
        required: list[str] = []
        for value in req.headers.get_all("Require"):
            required += [v.strip() for v in value.split(",") if v.strip()]
        return ", ".join(r for r in required if r.lower() not in _SUPPORTED_EXTENSIONS)

    # ------------------------------------------------------------------------------------ responses

    def _on_response(self, resp: SipResponse, now: float) -> None:
        ctx = self._ctx
        branch = resp.vias[0].branch or ""
        _, method = resp.cseq
        txn = ctx.client.get(f"{branch}|{method}")
        if txn is not None:
            txn.receive(resp, now)
            return
        # A 2xx retransmitted after the INVITE transaction ended: ACK it again (§13.2.2.4).
        dialog = ctx.dialogs.get(resp.call_id)
        is_2xx = method == "INVITE" and 200 <= resp.status < 300
        if dialog is not None and is_2xx and self._uac.resend_ack(dialog):
            return
        self.stats["stray_responses"] += 1

    # ------------------------------------------------------------------------------------ commands

    def _get(self, call_id: str, *states: DialogState) -> Dialog:
        dialog = self._ctx.dialogs.get(call_id)
        if dialog is None:
            raise CallStateError(f"call_id {call_id!r}: no such call")
        if states and dialog.state not in states:
            raise CallStateError(f"call {call_id!r} is {dialog.state}; this needs it {' or '.join(states)}")
        return dialog

    def ringing(self, call_id: str, now: float, status: int = 180) -> None:
        """Send a provisional response (180 Ringing by default) to an incoming call."""
        if not 101 <= status <= 199:
            raise ValueError(f"status must be a provisional code 101..199, got {status}")
        dialog = self._get(call_id, DialogState.INCOMING, DialogState.EARLY)
        self._uas.ringing(dialog, now, status)

    def answer(self, call_id: str, now: float, rtp_port: int, rtp_host: str | None = None) -> bytes:
        """Answer an incoming call with 200 OK carrying our SDP (media at ``rtp_host:rtp_port``).

        Returns the SDP sent. The call is connected when the ACK arrives (``CallConnected``).
        """
        dialog = self._get(call_id, DialogState.INCOMING, DialogState.EARLY)
        return self._uas.answer(dialog, now, rtp_port, rtp_host)

    def reject(self, call_id: str, now: float, status: int = 486, reason: str | None = None) -> None:
        """Reject an incoming call with a final failure response (300..699)."""
        if not 300 <= status <= 699:
            raise ValueError(f"status must be a final failure code 300..699, got {status}")
        dialog = self._get(call_id, DialogState.INCOMING, DialogState.EARLY)
        self._uas.reject(dialog, now, status, reason)

    def hangup(
        self,
        call_id: str,
        now: float,
        reason: str = "hangup",
        by: Literal["local", "timeout"] = "local",
    ) -> None:
        """End a call in any state: BYE, CANCEL or a 603 to an unanswered incoming call."""
        dialog = self._get(call_id)
        state = dialog.state
        if state is DialogState.ENDED:
            return
        if state in (DialogState.INCOMING, DialogState.EARLY):
            self.reject(call_id, now, 603, "Decline")
        elif state is DialogState.ANSWERING:
            self._uas.hang_up_answering(dialog, reason, by)
        elif state is DialogState.CONNECTED:
            self._ctx.send_bye(dialog, now)
            self._ctx.emit(CallDisconnected(call_id, by, reason))
            dialog.end(now)
        else:  # outbound, not answered yet
            self._uac.hangup(dialog, now, reason, by)

    def transfer(
        self,
        call_id: str,
        now: float,
        target: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        timeout: float = 60.0,
    ) -> None:
        """Blind transfer of a connected call: a REFER to ``target`` (a sip:, sips: or tel: URI) with
        ``Referred-By``. ``ReferAccepted``, ``ReferProgress`` and one ``ReferEnded`` follow (408 when
        no final NOTIFY came within ``timeout`` seconds); the call stays up (see
        ``voxline.sip.transfer``). One transfer at a time per call."""
        dialog = self._get(call_id, DialogState.CONNECTED)
        running = dialog.refer_out
        if running is not None and not running.done:
            raise CallStateError(f"call {call_id!r} is already being transferred to {running.target}")
        self._transfer.refer(dialog, target, now, headers, timeout)

    def accept_refer(self, call_id: str, now: float) -> None:
        """Accept the peer's REFER (``ReferReceived``): 202 and a NOTIFY ``100 Trying``."""
        self._transfer.accept(self._get(call_id), now)

    def reject_refer(self, call_id: str, now: float, status: int = 603, reason: str | None = None) -> None:
        """Refuse the peer's REFER (``ReferReceived``) with a final failure response (300..699)."""
        self._transfer.reject(self._get(call_id), now, status, reason)

    def notify_refer(self, call_id: str, now: float, status: int, reason: str | None = None) -> None:
        """Report to the peer how our call to its REFER's target goes: a NOTIFY with the sipfrag
        ``status`` (a final one, 200..699, ends the subscription)."""
        if not 100 <= status <= 699:
            raise ValueError(f"status must be a SIP status 100..699, got {status}")
        self._transfer.notify(self._get(call_id), now, status, reason)

    def stop_accepting(self, now: float) -> None:
        """Take no new calls (a server draining before it stops): from now on an INVITE that would
        start one gets ``503`` with ``Retry-After``, counted in ``stats['rejected_draining']``. Calls
        already there go on: they can be answered, re-INVITEd and hung up. Nothing is sent now
        (``now`` as every command has it). There is no way back: a new core accepts again."""
        if self._accepting:
            log.info("not accepting new calls (%d running)", self.active_calls)
        self._accepting = False

    def send_request(
        self,
        req: SipRequest,
        target: Address,
        now: float,
        on_response: Callable[[SipResponse, float], None],
        transport: Transport = "udp",
    ) -> None:
        """Send ``req`` (a non-INVITE outside any dialog, e.g. a REGISTER with its own Via) in a client
        transaction: retransmitted over UDP, its final response (or a 408 at Timer F) and provisional
        ones go to ``on_response``."""
        if req.method in ("INVITE", "ACK", "CANCEL"):
            raise ValueError(f"send_request is for non-INVITE requests, not {req.method}")
        vias = req.vias
        if not vias or not vias[0].branch:
            raise ValueError("send_request: the request needs a Via with a branch")
        sender = self._ctx.sender(target, transport)
        txn = ClientNonInviteTransaction(req, sender, transport != "udp", self._ctx.timers, now, on_response)
        self._ctx.client[f"{vias[0].branch}|{req.method}"] = txn

    def call(
        self,
        uri: str,
        now: float,
        *,
        rtp_port: int,
        rtp_host: str | None = None,
        caller_id: str | None = None,
        display_name: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        auth: tuple[str, str] | None = None,
        target: Address | None = None,
        transport: Transport = "udp",
        local_host: str | None = None,
    ) -> str:
        """Start an outbound call; returns its Call-ID. ``target`` is where to send the INVITE (default:
        the URI's host, which must then be an IP address); ``auth`` = (user, password) for digest."""
        return self._uac.call(
            uri,
            now,
            rtp_port=rtp_port,
            rtp_host=rtp_host,
            caller_id=caller_id,
            display_name=display_name,
            headers=headers,
            auth=auth,
            target=target,
            transport=transport,
            local_host=local_host,
        )


def _accepts_sdp(req: SipRequest) -> bool:
    """False when the request has an Accept header that lists media types, none of them SDP (an
    empty or absent Accept is taken as no restriction)."""
    values = req.headers.get_all("Accept")
    ranges = [r.split(";", 1)[0].strip().lower() for value in values for r in value.split(",")]
    ranges = [r for r in ranges if r]
    return not ranges or any(r in ("application/sdp", "application/*", "*/*") for r in ranges)
