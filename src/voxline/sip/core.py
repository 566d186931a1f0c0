"""The SIP user agent core (RFC 3261 §8, §12-§17), sans-I/O.

Bytes in: ``receive(data, addr, now)``. Commands in: ``answer``, ``ringing``, ``reject``,
``hangup``, ``call``. Out: ``data_to_send()`` (datagrams / stream writes) and ``events_received()``.
Time only comes in as ``now`` (seconds, any monotonic origin); ``next_deadline()`` says when
``tick(now)`` must run next. Nothing here raises on bad input from the network: a request that can
be answered gets 400 (or the fitting 4xx), anything else is dropped, logged once and counted.

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
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal

from .auth import DigestChallenge, DigestError, build_authorization, parse_challenge
from .events import (
    Address,
    CallConnected,
    CallDisconnected,
    CallFailed,
    CallProgress,
    CallReinvite,
    DtmfInfo,
    IncomingCall,
    Outgoing,
    SipEvent,
    Transport,
)
from .message import (
    MAX_MESSAGE_BYTES,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    reason_phrase,
    summary_request,
)
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
from .transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    Timers,
)

__all__ = ["CallStateError", "SipConfig", "UserAgentCore"]

log = logging.getLogger("voxline.sip")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
_KNOWN_METHODS = {"REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "UPDATE", "PRACK", "PUBLISH"}
_SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
_DTMF_SIGNALS = set("0123456789*#ABCD")


class CallStateError(RuntimeError):
    """A command that does not fit the call's state (answering a cancelled call, unknown call id)."""


@dataclass(slots=True)
class SipConfig:
    """Settings of one user agent. ``host``/``port`` are what we advertise in Via, Contact and SDP.

    ``allow_sources``: the IP addresses and CIDR networks (IPv4 and IPv6, e.g. ``"203.0.113.0/24"``,
    ``"2001:db8::1"``) that may send requests outside a dialog; None lets anyone in, ``()`` nobody
    (see the module docstring for what is and is not checked). A single string is one entry.
    ``alerting_timeout``: seconds an incoming call may stay unanswered before it is refused with 480
    (None: forever). ``max_message_bytes``: larger messages are refused with 513.
    """

    host: str = "127.0.0.1"
    port: int = 5060
    user: str = "voxline"
    user_agent: str = "voxline"
    max_calls: int = 100
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    dtmf_payload_type: int = 101
    timers: Timers = field(default_factory=Timers)
    invite_timeout: float = 120.0  # outbound: give up (CANCEL) when unanswered this long
    # Inbound: refused (480) when neither answered nor rejected this long. 60 s is what callers and
    # carriers expect of a ringing phone; a call the application forgot must not hold a slot forever.
    alerting_timeout: float | None = 60.0
    allow_sources: Sequence[str] | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        if self.allow_sources is not None:
            entries = (self.allow_sources,) if isinstance(self.allow_sources, str) else self.allow_sources
            self.allow_sources = tuple(str(e) if not isinstance(e, str) else e for e in entries)
            source_networks(self.allow_sources)  # validates: ValueError naming the bad entry
        if self.alerting_timeout is not None and not self.alerting_timeout > 0:
            raise ValueError(f"alerting_timeout must be > 0 seconds or None, got {self.alerting_timeout}")
        if not 1024 <= self.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ValueError(
                f"max_message_bytes must be 1024..{MAX_MESSAGE_BYTES}, got {self.max_message_bytes}"
            )
        if self.max_calls < 0:
            raise ValueError(f"max_calls must be >= 0, got {self.max_calls}")
        if not self.codecs or any(c not in ("PCMU", "PCMA") for c in self.codecs):
            raise ValueError(f"codecs must be a non-empty subset of ('PCMU', 'PCMA'), got {self.codecs}")
        if not 96 <= self.dtmf_payload_type <= 127:
            raise ValueError(f"dtmf_payload_type must be dynamic (96..127), got {self.dtmf_payload_type}")
        if self.invite_timeout <= 0:
            raise ValueError(f"invite_timeout must be > 0, got {self.invite_timeout}")


Network = IPv4Network | IPv6Network


def source_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Parse ``allow_sources`` entries (IPs or CIDRs). Raises ValueError naming the bad entry."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ip_network(entry.strip(), strict=False))
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"allow_sources: {entry!r} is not an IP address or CIDR network (e.g. 203.0.113.7, "
                "198.51.100.0/24, 2001:db8::/32)"
            ) from None
    return tuple(networks)


def _source_ip(host: str) -> IPv4Address | IPv6Address | None:
    try:
        ip = ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d: match them against IPv4 networks.
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


_LOGGED_SOURCES = 1024  # refused addresses remembered (for one log line each), oldest forgotten


def _printable(text: str) -> str:
    """``text`` fit for a reason phrase or a Warning: control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _token(nbytes: int = 6) -> str:
    return secrets.token_hex(nbytes)


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(slots=True)
class _Call:
    call_id: str
    inbound: bool
    peer: Address
    transport: Transport
    local_host: str
    state: str  # incoming, early, answering, connected | calling, proceeding | ended
    local_tag: str
    remote_tag: str | None = None
    local_uri: str = ""  # our From/To value without tag
    remote_uri: str = ""  # their From/To value without tag
    remote_target: str = ""  # Contact URI of the peer
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int = 0
    # inbound
    invite: SipRequest | None = None
    invite_txn: ServerInviteTransaction | None = None
    offer: SessionDescription | None = None
    our_offer: SessionDescription | None = None  # delayed offer: answer comes in the ACK
    # media
    media: NegotiatedMedia | None = None
    local_rtp: Address | None = None
    sdp_id: int = 0
    sdp_version: int = 0
    # 2xx retransmission until ACK (§13.3.1.4)
    ok_data: bytes | None = None
    ok_cseq: int = 0
    ok_next: float | None = None
    ok_interval: float = 0.5
    ok_give_up: float = 0.0
    ok_initial: bool = True
    bye_pending: bool = False
    # outbound
    request_uri: str = ""
    invite_out: SipRequest | None = None
    invite_client: ClientInviteTransaction | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    auth: tuple[str, str] | None = None
    auth_attempts: int = 0
    last_nonce: str | None = None
    cancel_pending: bool = False
    ring_deadline: float | None = None
    alert_deadline: float | None = None  # inbound: alerting_timeout while incoming / early
    ack_data: bytes | None = None
    ended_at: float | None = None

    def deadline(self) -> float | None:
        times = [t for t in (self.ok_next, self.ring_deadline, self.alert_deadline) if t is not None]
        return min(times) if times else None


class UserAgentCore:
    """One SIP user agent: any number of inbound and outbound calls (see the module docstring)."""

    def __init__(self, config: SipConfig | None = None) -> None:
        self.config = config or SipConfig()
        self._timers = self.config.timers
        self._out: list[Outgoing] = []
        self._events: list[SipEvent] = []
        self._calls: dict[str, _Call] = {}
        self._server: dict[str, ServerInviteTransaction | ServerNonInviteTransaction] = {}
        self._client: dict[str, ClientInviteTransaction | ClientNonInviteTransaction] = {}
        allowed = self.config.allow_sources
        self._allowed = source_networks(allowed) if allowed is not None else None
        self._refused_sources: OrderedDict[str, None] = OrderedDict()
        self.stats: dict[str, int] = {
            "received": 0,
            "malformed_dropped": 0,
            "bad_request_sent": 0,  # any error answer to a malformed message (400, 413, 416, 505, 513)
            "over_limit": 0,  # refused for a size or count limit (answered or dropped)
            "keepalives": 0,  # CRLF-only datagrams / messages
            "retransmissions_absorbed": 0,
            "stray_responses": 0,
            "rejected_over_limit": 0,  # 503: max_calls reached
            "rejected_source": 0,  # 403: not in allow_sources
            "alerting_timeouts": 0,  # 480: neither answered nor rejected within alerting_timeout
            "ack_timeouts": 0,  # our 200 OK never ACKed (Timer H)
        }

    # ------------------------------------------------------------------------------------ outputs

    def data_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[SipEvent]:
        events, self._events = self._events, []
        return events

    @property
    def active_calls(self) -> int:
        return sum(1 for c in self._calls.values() if c.state != "ended")

    def has_calls_on(self, addr: Address, transport: Transport) -> bool:
        """Whether a call not ended signals with ``addr`` over ``transport`` (a TCP connection that
        carries a call is not idle)."""
        return any(
            c.state != "ended" and c.transport == transport and c.peer == addr for c in self._calls.values()
        )

    def call_state(self, call_id: str) -> str | None:
        call = self._calls.get(call_id)
        return call.state if call else None

    def next_deadline(self) -> float | None:
        times: list[float] = []
        for txn in (*self._server.values(), *self._client.values()):
            d = txn.deadline()
            if d is not None:
                times.append(d)
        for call in self._calls.values():
            d = call.deadline()
            if d is not None:
                times.append(d)
            if call.ended_at is not None:
                times.append(call.ended_at + self._timers.b)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        for txns in (self._server, self._client):
            for key, txn in list(txns.items()):
                d = txn.deadline()
                if d is not None and d <= now:
                    txn.tick(now)
                if txn.terminated:
                    del txns[key]
        for call in list(self._calls.values()):
            if call.ok_next is not None and call.ok_next <= now:
                self._retransmit_ok(call, now)
            if call.ring_deadline is not None and call.ring_deadline <= now:
                call.ring_deadline = None
                if call.state in ("calling", "proceeding"):
                    self._give_up_outbound(call, now, 408, "no answer", "timeout")
            if call.alert_deadline is not None and call.alert_deadline <= now:
                call.alert_deadline = None
                if call.state in ("incoming", "early"):
                    self._alerting_timed_out(call, now)
            if call.ended_at is not None and now >= call.ended_at + self._timers.b and call.ok_next is None:
                del self._calls[call.call_id]

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
            message = parse_message(data, stream=transport == "tcp", max_bytes=self.config.max_message_bytes)
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
        if request is None and transport == "tcp":
            # A connection is its own way back (and its source is no spoofed one): a request
            # without a usable Via is answered there too, so the peer learns why it is closed.
            request = summary_request(data.split(b"\r\n\r\n", 1)[0], need_via=False)
        if request is not None and request.method != "ACK":
            status = exc.status
            log.info("%d to malformed SIP request from %s:%s: %s", status, addr[0], addr[1], exc.reason)
            reason = _printable(f"{reason_phrase(status)} ({exc.reason})")[:120]
            resp = self._response(request, status, reason, source=addr)
            self._send(bytes(resp), addr, transport)
            self.stats["bad_request_sent"] += 1
            return
        # Log text, never the exception: a record that is kept (a queue handler, a test's capture)
        # would keep its traceback alive, and with it the frames holding up to 64 KB of input each.
        log.info("dropped malformed SIP message from %s:%s (%d bytes): %s", *addr, len(data), exc.reason)
        self.stats["malformed_dropped"] += 1

    def _send(self, data: bytes, addr: Address, transport: Transport) -> None:
        self._out.append(Outgoing(data, addr, transport))

    def _sender(self, addr: Address, transport: Transport) -> Callable[[bytes], None]:
        def send(data: bytes) -> None:
            self._out.append(Outgoing(data, addr, transport))

        return send

    # ------------------------------------------------------------------------------------ messages

    def _response(
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
        resp = SipResponse(status=status, reason=reason or reason_phrase(status))
        vias = req.headers.get_all("Via")
        if vias and source is not None:
            try:
                top = parse_via(vias[0])
                changed = False
                if top.host != source[0]:
                    top.params["received"] = source[0]
                    changed = True
                if "rport" in top.params and top.params["rport"] is None:
                    top.params["rport"] = str(source[1])
                    changed = True
                if changed:
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

    def _contact(self, host: str, transport: Transport) -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{self.config.user}@{_host_for_uri(host)}:{self.config.port}{suffix}>"

    def _via(self, host: str, transport: Transport, branch: str) -> str:
        return f"SIP/2.0/{transport.upper()} {_host_for_uri(host)}:{self.config.port};branch={branch};rport"

    # ------------------------------------------------------------------------------------ requests

    @staticmethod
    def _txn_key(req: SipRequest) -> str:
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

    def _on_request(
        self, req: SipRequest, src: Address, transport: Transport, now: float, local_host: str
    ) -> None:
        key = self._txn_key(req)
        if self._allowed is not None and req.method != "OPTIONS" and not self._may_send(req, src):
            if req.method == "ACK":
                self.stats["rejected_source"] += 1  # never answered; it must not confirm a call
            else:
                self._refuse_source(req, src, transport)
            return
        if req.method == "ACK":
            self._on_ack(req, key, now)
            return
        existing = self._server.get(key)
        if existing is not None:
            existing.on_retransmission()
            self.stats["retransmissions_absorbed"] += 1
            return
        send = self._sender(src, transport)
        reliable = transport == "tcp"
        unsupported = self._unsupported(req) if req.method != "CANCEL" else ""
        if unsupported:
            # Not supported: answered before anything else looks at it (§8.2.2.3).
            txn_420: ServerInviteTransaction | ServerNonInviteTransaction
            if req.method == "INVITE":
                txn_420 = ServerInviteTransaction(req, send, reliable, self._timers)
            else:
                txn_420 = ServerNonInviteTransaction(req, send, reliable, self._timers)
            self._server[key] = txn_420
            txn_420.respond(self._response(req, 420, source=src, extra=[("Unsupported", unsupported)]), now)
            return
        if req.method == "INVITE":
            invite_txn = ServerInviteTransaction(req, send, reliable, self._timers)
            self._server[key] = invite_txn
            self._on_invite(req, invite_txn, src, transport, now, local_host)
            return
        txn = ServerNonInviteTransaction(req, send, reliable, self._timers)
        self._server[key] = txn
        max_forwards = req.headers.get("Max-Forwards")
        if max_forwards is not None and max_forwards.strip() == "0" and req.method != "OPTIONS":
            txn.respond(self._response(req, 483, source=src), now)
            return
        handler = {
            "CANCEL": self._on_cancel,
            "BYE": self._on_bye,
            "OPTIONS": self._on_options,
            "INFO": self._on_info,
        }.get(req.method)
        if handler is not None:
            handler(req, txn, src, now)
        elif req.method in _KNOWN_METHODS:
            txn.respond(self._response(req, 405, source=src, extra=[("Allow", ALLOW)]), now)
        else:
            txn.respond(self._response(req, 501, source=src, extra=[("Allow", ALLOW)]), now)

    def _may_send(self, req: SipRequest, src: Address) -> bool:
        """``allow_sources`` check: a listed source, or a dialog's own peer inside that dialog."""
        assert self._allowed is not None
        ip = _source_ip(src[0])
        if ip is None:
            return False
        if any(ip in net for net in self._allowed):
            return True
        if req.to.tag is None:
            return False
        call = self._dialog_call(req)
        return call is not None and ip in self._dialog_peers(call)

    def _dialog_peers(self, call: _Call) -> set[IPv4Address | IPv6Address]:
        """Where a dialog's in-dialog requests legitimately come from: the INVITE's source, the first
        route hop, the peer's Contact (each when it is an IP address)."""
        hosts = [call.peer[0], self._dialog_destination(call)[0]]
        try:
            hosts.append(parse_uri(call.remote_target).host)
        except SipParseError:
            pass
        return {ip for ip in map(_source_ip, hosts) if ip is not None}

    def _refuse_source(self, req: SipRequest, src: Address, transport: Transport) -> None:
        self.stats["rejected_source"] += 1
        host = src[0]
        if host in self._refused_sources:
            self._refused_sources.move_to_end(host)  # still at it: not logged again
        else:
            if len(self._refused_sources) >= _LOGGED_SOURCES:
                self._refused_sources.popitem(last=False)
            self._refused_sources[host] = None
            log.info(
                "403 to %s from %s:%s: source not in allow_sources (further refusals not logged)",
                req.method,
                host,
                src[1],
            )
        # Stateless (§8.2.7): no transaction, so nothing is retransmitted to a maybe spoofed source
        # (Timer G would send ~10 403s per INVITE), and a stranger's request cannot occupy the
        # transaction key (branch, sent-by, method) of a legitimate peer's.
        self._send(bytes(self._response(req, 403, source=src, to_tag=_token())), src, transport)

    def _dialog_call(self, req: SipRequest) -> _Call | None:
        call = self._calls.get(req.call_id)
        if call is None:
            return None
        to_tag = req.to.tag
        from_tag = req.from_.tag
        if to_tag != call.local_tag or (call.remote_tag is not None and from_tag != call.remote_tag):
            return None
        return call

    def _on_invite(
        self,
        req: SipRequest,
        txn: ServerInviteTransaction,
        src: Address,
        transport: Transport,
        now: float,
        local_host: str,
    ) -> None:
        if not _accepts_sdp(req):
            # RFC 4475 sdp01: our answer is SDP, which the caller's Accept excludes.
            warning = '399 voxline "the answer would be application/sdp, which Accept does not list"'
            txn.respond(self._response(req, 406, source=src, extra=[("Warning", warning)]), now)
            return
        if req.to.tag is not None:
            call = self._dialog_call(req)
            if call is None or call.state not in ("answering", "connected"):
                txn.respond(self._response(req, 481, source=src), now)
                return
            self._on_reinvite(call, req, txn, src, now)
            return
        if req.call_id in self._calls:
            # Same Call-ID, no To tag, new branch: a merged or looped request (§8.2.2.2).
            txn.respond(self._response(req, 482, source=src, to_tag=_token()), now)
            return
        if self.active_calls >= self.config.max_calls:
            self.stats["rejected_over_limit"] += 1
            txn.respond(self._response(req, 503, source=src, extra=[("Retry-After", "5")]), now)
            return
        offer: SessionDescription | None = None
        media: NegotiatedMedia | None = None
        if req.body:
            sdp_body = _sdp_body(req)
            if sdp_body is None:
                resp = self._response(req, 415, source=src, extra=[("Accept", "application/sdp")])
                txn.respond(resp, now)
                return
            if len(sdp_body) > MAX_SDP_BYTES:
                log.info("413 to INVITE %s: SDP of %d bytes", req.call_id, len(sdp_body))
                self.stats["over_limit"] += 1
                txn.respond(self._response(req, 413, source=src), now)
                return
            try:
                offer = parse_sdp(sdp_body)
                _, media = answer_offer(offer, local_host, 9, codecs=self.config.codecs)
            except NotAcceptable as exc:
                log.info("488 to INVITE %s from %s:%s: %s", req.call_id, src[0], src[1], str(exc))
                warning = f'{exc.warn_code} voxline "' + _printable(str(exc)).replace('"', "'") + '"'
                txn.respond(self._response(req, 488, source=src, extra=[("Warning", warning[:200])]), now)
                return
            except SdpError as exc:
                log.info("400 to INVITE %s with bad SDP: %s", req.call_id, str(exc))
                self.stats["bad_request_sent"] += 1
                reason = _printable(f"Bad Request (SDP: {exc})")[:120]
                txn.respond(self._response(req, 400, reason, source=src), now)
                return
        local_tag = _token()
        txn.respond(self._response(req, 100, source=src), now)
        caller = req.from_
        callee = parse_uri(req.uri)
        contact_values = req.headers.get_all("Contact")
        remote_target = req.uri
        if contact_values:
            try:
                remote_target = str(parse_name_addr(contact_values[0]).uri)
            except SipParseError:
                pass
        call = _Call(
            call_id=req.call_id,
            inbound=True,
            peer=src,
            transport=transport,
            local_host=local_host,
            state="incoming",
            local_tag=local_tag,
            remote_tag=caller.tag,
            local_uri=_strip_tag(req.headers.get("To") or ""),
            remote_uri=_strip_tag(req.headers.get("From") or ""),
            remote_target=remote_target,
            route_set=req.headers.get_all("Record-Route"),
            remote_cseq=req.cseq[0],
            invite=req,
            invite_txn=txn,
            offer=offer,
            media=media,
            sdp_id=secrets.randbelow(2**31),
        )
        if self.config.alerting_timeout is not None:
            call.alert_deadline = now + self.config.alerting_timeout
        self._calls[req.call_id] = call
        self._events.append(
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
            )
        )

    @staticmethod
    def _unsupported(req: SipRequest) -> str:
        required: list[str] = []
        for value in req.headers.get_all("Require"):
            required += [v.strip() for v in value.split(",") if v.strip()]
        return ", ".join(r for r in required if r.lower() not in _SUPPORTED_EXTENSIONS)

    def _on_reinvite(
        self, call: _Call, req: SipRequest, txn: ServerInviteTransaction, src: Address, now: float
    ) -> None:
        if call.ok_next is not None:
            # Our 2xx to the previous INVITE is not ACKed yet (§14.2).
            txn.respond(self._response(req, 500, source=src, extra=[("Retry-After", "1")]), now)
            return
        if req.cseq[0] <= call.remote_cseq:
            txn.respond(
                self._response(req, 500, "Server Internal Error (CSeq out of order)", source=src), now
            )
            return
        call.remote_cseq = req.cseq[0]
        host, port = call.local_rtp or (call.local_host, 9)
        sdp_body = _sdp_body(req) if req.body else None
        if sdp_body is None:
            # Offer in our 200, answer in the ACK.
            call.sdp_version += 1
            call.our_offer = build_offer(
                host,
                port,
                codecs=self.config.codecs,
                dtmf_payload_type=self.config.dtmf_payload_type,
                session_id=call.sdp_id,
                session_version=call.sdp_version,
            )
            self._send_ok(call, req, txn, call.our_offer.to_bytes(), now, initial=False)
            return
        try:
            offer = parse_sdp(sdp_body)
            answer, media = answer_offer(
                offer,
                host,
                port,
                codecs=self.config.codecs,
                session_id=call.sdp_id,
                session_version=call.sdp_version + 1,
            )
        except SdpError as exc:
            status = 488 if isinstance(exc, NotAcceptable) else 400
            log.info("%d to re-INVITE of %s: %s", status, call.call_id, str(exc))
            txn.respond(self._response(req, status, source=src), now)
            return
        call.sdp_version += 1
        call.offer = offer
        call.media = media
        self._send_ok(call, req, txn, answer.to_bytes(), now, initial=False)
        self._events.append(CallReinvite(call.call_id, media, media.on_hold))

    def _send_ok(
        self,
        call: _Call,
        req: SipRequest,
        txn: ServerInviteTransaction,
        body: bytes,
        now: float,
        *,
        initial: bool,
    ) -> None:
        extra = [("Contact", self._contact(call.local_host, call.transport)), ("Allow", ALLOW)]
        for rr in req.headers.get_all("Record-Route"):
            extra.append(("Record-Route", rr))
        resp = self._response(req, 200, to_tag=call.local_tag, source=call.peer, extra=extra, body=body)
        txn.respond(resp, now)
        call.ok_data = bytes(resp)
        call.ok_cseq = req.cseq[0]
        call.ok_interval = self._timers.t1
        call.ok_next = now + call.ok_interval
        call.ok_give_up = now + self._timers.b
        call.ok_initial = initial

    def _retransmit_ok(self, call: _Call, now: float) -> None:
        if now >= call.ok_give_up:
            # Timer H for the 2xx: the peer never ACKed. End the dialog with BYE (§13.3.1.4).
            call.ok_next = None
            call.ok_data = None
            log.info("no ACK for the 200 of %s: ending the call", call.call_id)
            self.stats["ack_timeouts"] += 1
            was_initial = call.ok_initial
            self._send_bye(call, now)
            if call.state != "ended":
                if was_initial and not call.bye_pending:
                    self._events.append(CallFailed(call.call_id, 408, "no ACK for our 200 OK", "timeout"))
                elif not call.bye_pending:
                    self._events.append(CallDisconnected(call.call_id, "timeout", "no ACK for our 200 OK"))
                self._end(call, now)
            return
        if call.ok_data is not None:
            self._send(call.ok_data, call.peer, call.transport)
        call.ok_interval = min(2 * call.ok_interval, self._timers.t2)
        call.ok_next = min(now + call.ok_interval, call.ok_give_up)

    def _on_ack(self, req: SipRequest, key: str, now: float) -> None:
        txn = self._server.get(key)
        if isinstance(txn, ServerInviteTransaction) and txn.state in (State.COMPLETED, State.CONFIRMED):
            txn.on_ack(now)  # ACK of a non-2xx final response
            return
        call = self._calls.get(req.call_id)
        if call is None or call.ok_next is None or req.cseq[0] != call.ok_cseq:
            return  # a stray or retransmitted ACK: nothing to answer
        call.ok_next = None
        call.ok_data = None
        if call.our_offer is not None and req.body:
            try:
                call.media = accept_answer(call.our_offer, parse_sdp(req.body))
            except SdpError as exc:
                log.info("unusable SDP answer in ACK of %s: %s; ending the call", call.call_id, str(exc))
                self._send_bye(call, now)
                if call.ok_initial:
                    self._events.append(
                        CallFailed(call.call_id, 488, f"bad SDP answer in ACK: {exc}", "remote")
                    )
                self._end(call, now)
                return
            call.our_offer = None
            if not call.ok_initial:
                self._events.append(CallReinvite(call.call_id, call.media, call.media.on_hold))
        if call.bye_pending:
            self._send_bye(call, now)
            self._end(call, now)
            return
        if call.ok_initial and call.state == "answering":
            call.state = "connected"
            self._events.append(CallConnected(call.call_id, call.media))

    def _on_cancel(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        invite_key = self._txn_key(req).rsplit("|", 1)[0] + "|INVITE"
        invite_txn = self._server.get(invite_key)
        if not isinstance(invite_txn, ServerInviteTransaction):
            txn.respond(self._response(req, 481, source=src), now)
            return
        call = self._calls.get(req.call_id)
        txn.respond(self._response(req, 200, source=src, to_tag=call.local_tag if call else None), now)
        if invite_txn.state is State.PROCEEDING:
            tag = call.local_tag if call else _token()
            invite_txn.respond(self._response(invite_txn.request, 487, source=src, to_tag=tag), now)
            if call is not None and call.state != "ended":
                self._events.append(CallFailed(call.call_id, 487, "cancelled by the caller", "remote"))
                self._end(call, now)

    def _on_bye(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        call = self._dialog_call(req)
        if call is None:
            txn.respond(self._response(req, 481, source=src), now)
            return
        txn.respond(self._response(req, 200, source=src), now)
        if call.state in ("answering", "connected"):
            call.ok_next = None
            call.ok_data = None
            if not call.bye_pending:
                self._events.append(CallDisconnected(call.call_id, "remote", "BYE"))
            self._end(call, now)

    def _on_options(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        extra = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Accept-Language", "en")]
        txn.respond(self._response(req, 200, source=src, to_tag=_token(), extra=extra), now)

    def _on_info(self, req: SipRequest, txn: ServerNonInviteTransaction, src: Address, now: float) -> None:
        call = self._dialog_call(req)
        if call is None:
            txn.respond(self._response(req, 481, source=src), now)
            return
        txn.respond(self._response(req, 200, source=src), now)
        digit, duration = _parse_dtmf_info(req)
        if digit is not None and call.state in ("answering", "connected"):
            self._events.append(DtmfInfo(call.call_id, digit, duration))

    # ------------------------------------------------------------------------------------ responses

    def _on_response(self, resp: SipResponse, now: float) -> None:
        branch = resp.vias[0].branch or ""
        _, method = resp.cseq
        txn = self._client.get(f"{branch}|{method}")
        if txn is not None:
            txn.receive(resp, now)
            return
        # A 2xx retransmitted after the INVITE transaction ended: ACK it again (§13.2.2.4).
        call = self._calls.get(resp.call_id)
        if call is not None and method == "INVITE" and 200 <= resp.status < 300 and call.ack_data:
            self._send(call.ack_data, call.peer, call.transport)
            return
        self.stats["stray_responses"] += 1

    # ------------------------------------------------------------------------------------ commands

    def _get(self, call_id: str, *states: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise CallStateError(f"call_id {call_id!r}: no such call")
        if states and call.state not in states:
            raise CallStateError(f"call {call_id!r} is {call.state}; this needs it {' or '.join(states)}")
        return call

    def ringing(self, call_id: str, now: float, status: int = 180) -> None:
        """Send a provisional response (180 Ringing by default) to an incoming call."""
        if not 101 <= status <= 199:
            raise ValueError(f"status must be a provisional code 101..199, got {status}")
        call = self._get(call_id, "incoming", "early")
        assert call.invite is not None and call.invite_txn is not None
        resp = self._response(
            call.invite,
            status,
            to_tag=call.local_tag,
            source=call.peer,
            extra=[("Contact", self._contact(call.local_host, call.transport))],
        )
        call.invite_txn.respond(resp, now)
        call.state = "early"

    def answer(self, call_id: str, now: float, rtp_port: int, rtp_host: str | None = None) -> bytes:
        """Answer an incoming call with 200 OK carrying our SDP (media at ``rtp_host:rtp_port``).

        Returns the SDP sent. The call is connected when the ACK arrives (``CallConnected``).
        """
        call = self._get(call_id, "incoming", "early")
        assert call.invite is not None and call.invite_txn is not None
        host = rtp_host or call.local_host
        call.local_rtp = (host, rtp_port)
        if call.offer is not None:
            sdp, call.media = answer_offer(
                call.offer, host, rtp_port, codecs=self.config.codecs, session_id=call.sdp_id
            )
        else:
            sdp = build_offer(
                host,
                rtp_port,
                codecs=self.config.codecs,
                dtmf_payload_type=self.config.dtmf_payload_type,
                session_id=call.sdp_id,
            )
            call.our_offer = sdp
        body = sdp.to_bytes()
        call.state = "answering"
        call.alert_deadline = None
        self._send_ok(call, call.invite, call.invite_txn, body, now, initial=True)
        return body

    def _alerting_timed_out(self, call: _Call, now: float) -> None:
        assert call.invite is not None and call.invite_txn is not None
        timeout = self.config.alerting_timeout
        log.info("call %s not answered within %g s: 480", call.call_id, timeout)
        self.stats["alerting_timeouts"] += 1
        resp = self._response(call.invite, 480, to_tag=call.local_tag, source=call.peer)
        call.invite_txn.respond(resp, now)
        self._events.append(CallFailed(call.call_id, 480, f"not answered within {timeout:g} s", "timeout"))
        self._end(call, now)

    def reject(self, call_id: str, now: float, status: int = 486, reason: str | None = None) -> None:
        """Reject an incoming call with a final failure response (300..699)."""
        if not 300 <= status <= 699:
            raise ValueError(f"status must be a final failure code 300..699, got {status}")
        call = self._get(call_id, "incoming", "early")
        assert call.invite is not None and call.invite_txn is not None
        resp = self._response(call.invite, status, reason, to_tag=call.local_tag, source=call.peer)
        call.invite_txn.respond(resp, now)
        self._events.append(CallFailed(call_id, status, reason or reason_phrase(status), "local"))
        self._end(call, now)

    def hangup(
        self,
        call_id: str,
        now: float,
        reason: str = "hangup",
        by: Literal["local", "timeout"] = "local",
    ) -> None:
        """End a call in any state: BYE, CANCEL or a 603 to an unanswered incoming call."""
        call = self._get(call_id)
        if call.state == "ended":
            return
        if call.state in ("incoming", "early"):
            self.reject(call_id, now, 603, "Decline")
            return
        if call.state == "answering":
            # No BYE before the ACK (§15): it goes out when the ACK (or the ACK timeout) comes.
            call.bye_pending = True
            self._events.append(CallDisconnected(call_id, by, reason))
            return
        if call.state == "connected":
            self._send_bye(call, now)
            self._events.append(CallDisconnected(call_id, by, reason))
            self._end(call, now)
            return
        # Outbound, not answered yet.
        self._events.append(CallFailed(call_id, 487, "cancelled" if reason == "hangup" else reason, by))
        self._cancel_outbound(call, now)

    def _end(self, call: _Call, now: float) -> None:
        call.state = "ended"
        call.ring_deadline = None
        call.alert_deadline = None
        if call.ended_at is None:
            call.ended_at = now

    # ------------------------------------------------------------------------------------ in-dialog

    def _dialog_request(self, call: _Call, method: str, cseq: int | None = None) -> SipRequest:
        if cseq is None:
            call.local_cseq += 1
            cseq = call.local_cseq
        req = SipRequest(method=method, uri=call.remote_target)
        req.headers.add("Via", self._via(call.local_host, call.transport, _branch()))
        req.headers.add("Max-Forwards", "70")
        routes = call.route_set if call.inbound else list(reversed(call.route_set))
        for route in routes:
            req.headers.add("Route", route)
        req.headers.add("From", f"{call.local_uri};tag={call.local_tag}")
        to = call.remote_uri + (f";tag={call.remote_tag}" if call.remote_tag else "")
        req.headers.add("To", to)
        req.headers.add("Call-ID", call.call_id)
        req.headers.add("CSeq", f"{cseq} {method}")
        req.headers.add("User-Agent", self.config.user_agent)
        return req

    def _dialog_destination(self, call: _Call) -> Address:
        routes = call.route_set if call.inbound else list(reversed(call.route_set))
        if routes and call.transport == "udp":
            try:
                uri = parse_name_addr(routes[0]).uri
                if _is_ip(uri.host):
                    return (uri.host, uri.port or 5060)
            except SipParseError:
                pass
        return call.peer

    def _send_bye(self, call: _Call, now: float) -> None:
        bye = self._dialog_request(call, "BYE")
        self._start_client(bye, call, now)

    def _start_client(self, req: SipRequest, call: _Call, now: float) -> None:
        dest = self._dialog_destination(call)
        key = f"{req.vias[0].branch}|{req.method}"
        txn = ClientNonInviteTransaction(
            req, self._sender(dest, call.transport), call.transport == "tcp", self._timers, now, _ignore
        )
        self._client[key] = txn

    # ------------------------------------------------------------------------------------ outbound

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
        try:
            parsed = parse_uri(uri)
        except SipParseError as exc:
            raise ValueError(f"uri: {exc}") from None
        if parsed.scheme == "tel":
            raise ValueError(f"uri: a tel: URI needs a SIP proxy; give sip:{parsed.user}@<proxy> ({uri!r})")
        if target is None:
            if not _is_ip(parsed.host):
                raise ValueError(
                    f"uri: host {parsed.host!r} is not an IP address; resolve it and pass target"
                )
            target = (parsed.host, parsed.port or 5060)
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
        extra: list[tuple[str, str]] = []
        if headers is not None:
            items = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in items:
                if not re.match(r"^[A-Za-z0-9.!%*_+`'~\-]+$", name) or "\r" in value or "\n" in value:
                    raise ValueError(f"headers: invalid header {name!r}: {value!r}")
                extra.append((name, value))
        if auth is not None and (len(auth) != 2 or not all(isinstance(x, str) for x in auth)):
            raise ValueError("auth must be a (user, password) tuple of strings")
        host = local_host or self.config.host
        user = caller_id or self.config.user
        if not re.match(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$", user):
            raise ValueError(f"caller_id: not a valid SIP user part: {user!r}")
        display = f'"{display_name}" ' if display_name else ""
        call = _Call(
            call_id=f"{_token(12)}@{_host_for_uri(host)}",
            inbound=False,
            peer=target,
            transport=transport,
            local_host=host,
            state="calling",
            local_tag=_token(),
            local_uri=f"{display}<sip:{user}@{_host_for_uri(host)}>",
            remote_uri=f"<{parsed}>",
            remote_target=uri,
            request_uri=uri,
            extra_headers=extra,
            auth=auth,
            local_rtp=(rtp_host or host, rtp_port),
            sdp_id=secrets.randbelow(2**31),
            ring_deadline=now + self.config.invite_timeout,
        )
        call.our_offer = build_offer(
            rtp_host or host,
            rtp_port,
            codecs=self.config.codecs,
            dtmf_payload_type=self.config.dtmf_payload_type,
            session_id=call.sdp_id,
        )
        self._calls[call.call_id] = call
        self._send_invite(call, now, None)
        return call.call_id

    def _send_invite(self, call: _Call, now: float, authorization: tuple[str, str] | None) -> None:
        assert call.our_offer is not None
        call.local_cseq += 1
        req = SipRequest(method="INVITE", uri=call.request_uri)
        req.headers.add("Via", self._via(call.local_host, call.transport, _branch()))
        req.headers.add("Max-Forwards", "70")
        req.headers.add("From", f"{call.local_uri};tag={call.local_tag}")
        req.headers.add("To", call.remote_uri)
        req.headers.add("Call-ID", call.call_id)
        req.headers.add("CSeq", f"{call.local_cseq} INVITE")
        req.headers.add("Contact", self._contact(call.local_host, call.transport))
        req.headers.add("Allow", ALLOW)
        req.headers.add("User-Agent", self.config.user_agent)
        if authorization is not None:
            req.headers.add(*authorization)
        for name, value in call.extra_headers:
            req.headers.add(name, value)
        req.headers.add("Content-Type", "application/sdp")
        req.body = call.our_offer.to_bytes()
        call.invite_out = req
        call.state = "calling"

        def on_response(resp: SipResponse, t: float) -> None:
            self._on_invite_response(call, resp, t)

        txn = ClientInviteTransaction(
            req,
            self._sender(call.peer, call.transport),
            call.transport == "tcp",
            self._timers,
            now,
            on_response,
        )
        call.invite_client = txn
        self._client[f"{req.vias[0].branch}|INVITE"] = txn

    def _on_invite_response(self, call: _Call, resp: SipResponse, now: float) -> None:
        status = resp.status
        if call.state == "ended":
            if status < 200 and call.cancel_pending:
                self._send_cancel(call, now)
            elif 200 <= status < 300 and (call.ack_data is None or resp.to.tag != call.remote_tag):
                # Answered after we gave up: ACK and BYE it (§15).
                self._adopt_2xx(call, resp)
                self._send_ack(call, now)
                self._send_bye(call, now)
            elif 200 <= status < 300 and call.ack_data:
                self._send(call.ack_data, call.peer, call.transport)
            return
        if status < 200:
            if status > 100:
                media: NegotiatedMedia | None = None
                if resp.body and resp.content_type == "application/sdp" and call.our_offer is not None:
                    try:
                        media = accept_answer(call.our_offer, parse_sdp(resp.body))
                    except SdpError:
                        media = None
                self._events.append(CallProgress(call.call_id, status, resp.reason, media))
            call.state = "proceeding"
            if call.cancel_pending:
                self._send_cancel(call, now)
            return
        if status < 300:
            if call.state == "connected":
                if call.ack_data:
                    self._send(call.ack_data, call.peer, call.transport)
                return
            self._adopt_2xx(call, resp)
            self._send_ack(call, now)
            call.ring_deadline = None
            try:
                if call.our_offer is None or not resp.body:
                    raise SdpError("the 200 OK has no SDP answer")
                media = accept_answer(call.our_offer, parse_sdp(resp.body))
            except SdpError as exc:
                log.info("unusable SDP answer on %s: %s; hanging up", call.call_id, str(exc))
                self._send_bye(call, now)
                self._events.append(CallFailed(call.call_id, 488, f"unusable SDP answer: {exc}", "remote"))
                self._end(call, now)
                return
            call.media = media
            call.state = "connected"
            self._events.append(CallConnected(call.call_id, media))
            return
        if status in (401, 407) and call.auth is not None and self._retry_with_auth(call, resp, now):
            return
        by = "timeout" if status == 408 and not resp.headers.get("Server") else "remote"
        self._events.append(CallFailed(call.call_id, status, resp.reason or reason_phrase(status), by))  # type: ignore[arg-type]
        self._end(call, now)

    def _retry_with_auth(self, call: _Call, resp: SipResponse, now: float) -> bool:
        assert call.auth is not None
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge: DigestChallenge | None = None
        for value in resp.headers.get_all(header):
            try:
                challenge = parse_challenge(value)
                break
            except DigestError as exc:
                log.info("ignoring challenge on %s: %s", call.call_id, str(exc))
        if challenge is None:
            return False
        # A second challenge for the same nonce means the credentials were wrong (unless stale).
        if call.auth_attempts >= 3 or (challenge.nonce == call.last_nonce and not challenge.stale):
            return False
        call.auth_attempts += 1
        call.last_nonce = challenge.nonce
        user, password = call.auth
        value = build_authorization(
            challenge,
            method="INVITE",
            uri=call.request_uri,
            username=user,
            password=password,
            cnonce=_token(8),
        )
        name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        self._send_invite(call, now, (name, value))
        return True

    def _adopt_2xx(self, call: _Call, resp: SipResponse) -> None:
        call.remote_tag = resp.to.tag
        contacts = resp.headers.get_all("Contact")
        if contacts:
            try:
                call.remote_target = str(parse_name_addr(contacts[0]).uri)
            except SipParseError:
                pass
        call.route_set = resp.headers.get_all("Record-Route")
        call.remote_uri = _strip_tag(resp.headers.get("To") or call.remote_uri)

    def _send_ack(self, call: _Call, now: float) -> None:
        assert call.invite_out is not None
        ack = self._dialog_request(call, "ACK", cseq=call.invite_out.cseq[0])
        for name in ("Authorization", "Proxy-Authorization"):
            value = call.invite_out.headers.get(name)
            if value is not None:
                ack.headers.add(name, value)
        call.ack_data = bytes(ack)
        self._send(call.ack_data, self._dialog_destination(call), call.transport)

    def _cancel_outbound(self, call: _Call, now: float) -> None:
        if call.state == "proceeding":
            self._send_cancel(call, now)
        else:
            call.cancel_pending = True  # CANCEL only after a provisional response (§9.1)
        self._end(call, now)

    def _send_cancel(self, call: _Call, now: float) -> None:
        call.cancel_pending = False
        invite = call.invite_out
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
            self._sender(call.peer, call.transport),
            call.transport == "tcp",
            self._timers,
            now,
            _ignore,
        )
        self._client[key] = txn

    def _give_up_outbound(self, call: _Call, now: float, status: int, reason: str, by: str) -> None:
        self._events.append(CallFailed(call.call_id, status, reason, by))  # type: ignore[arg-type]
        self._cancel_outbound(call, now)


def _sdp_body(message: SipRequest | SipResponse) -> bytes | None:
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


def _accepts_sdp(req: SipRequest) -> bool:
    """False when the request has an Accept header that lists media types, none of them SDP (an
    empty or absent Accept is taken as no restriction)."""
    values = req.headers.get_all("Accept")
    ranges = [r.split(";", 1)[0].strip().lower() for value in values for r in value.split(",")]
    ranges = [r for r in ranges if r]
    return not ranges or any(r in ("application/sdp", "application/*", "*/*") for r in ranges)


def _ignore(resp: SipResponse, now: float) -> None:
    """Responses to our BYE and CANCEL need no action."""


def _strip_tag(value: str) -> str:
    try:
        addr = parse_name_addr(value)
    except SipParseError:
        return value
    addr.params.pop("tag", None)
    return str(addr)


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
