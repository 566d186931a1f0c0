"""A SIP call's dialog (RFC 3261 §12): its record, its states and the one table of moves between them.

``DialogState`` is the one vocabulary for where a SIP call is: the core's dialogs and the endpoint's
``SipCallLeg.state`` both use it. Every state change goes through ``transition()``, which refuses
(``DialogTransitionError``: a bug in voxline, never the peer's doing) a move ``TRANSITIONS`` does
not list. ``DialogState.call_state`` says what a ``voxline.runtime.call.Call`` shows meanwhile.

``Dialog`` is the record the core keeps per call, inbound or outbound, keyed by Call-ID from the
first INVITE on (RFC 3261 speaks of a dialog only once the To tag is known; the record is the same
before): identifiers, route set and remote target, CSeqs, what the UAS and UAC parts track
(``voxline.sip.uas``, ``voxline.sip.uac``), the in-dialog requests built from it and where they go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

from ..callstate import CallState
from .events import Address, Transport
from .message import SipParseError, SipRequest, parse_name_addr, parse_uri
from .refer import IncomingRefer, OutgoingRefer
from .sdp import NegotiatedMedia, SessionDescription
from .transaction import ClientInviteTransaction, ServerInviteTransaction

__all__ = ["TRANSITIONS", "Dialog", "DialogState", "DialogTransitionError", "transition"]


class DialogState(StrEnum):
    """Where a SIP call is. Inbound: incoming → (early) → answering → connected. Outbound: calling →
    (proceeding) → connected. Both end in ended."""

    INCOMING = "incoming"  # inbound: INVITE received (100 Trying sent), no answer yet
    EARLY = "early"  # inbound: a provisional response (180 Ringing, 183) sent
    ANSWERING = "answering"  # inbound: our 200 OK sent, its ACK not here yet
    CONNECTED = "connected"  # both: the 2xx is ACKed (inbound) / we ACKed it (outbound)
    CALLING = "calling"  # outbound: INVITE sent, no response to it yet
    PROCEEDING = "proceeding"  # outbound: a provisional response came
    ENDED = "ended"  # both: over (BYE, CANCEL, a failure response, a timeout)

    @property
    def call_state(self) -> CallState:
        """What a ``Call`` shows in this state. A call is answered when it is connected: until the ACK
        of our 200 OK comes (answering) an inbound call is still alerting, as ``Call`` shows it
        (``CallEvents.Connected`` comes with ``CallConnected``)."""
        return _CALL_STATES[self]


_CALL_STATES: dict[DialogState, CallState] = {
    DialogState.INCOMING: CallState.ALERTING,
    DialogState.EARLY: CallState.ALERTING,
    DialogState.ANSWERING: CallState.ALERTING,
    DialogState.CONNECTED: CallState.CONNECTED,
    DialogState.CALLING: CallState.PROGRESSING,
    DialogState.PROCEEDING: CallState.PROGRESSING,
    DialogState.ENDED: CallState.ENDED,
}

_S = DialogState

TRANSITIONS: dict[DialogState, frozenset[DialogState]] = {
    # ringing(): 180/183, again for a second provisional; answer(); reject, hangup, CANCEL, 480.
    _S.INCOMING: frozenset({_S.EARLY, _S.ANSWERING, _S.ENDED}),
    _S.EARLY: frozenset({_S.EARLY, _S.ANSWERING, _S.ENDED}),
    # the ACK; BYE, no ACK (Timer H), a bad SDP answer in the ACK, a hangup waiting for the ACK.
    _S.ANSWERING: frozenset({_S.CONNECTED, _S.ENDED}),
    _S.CONNECTED: frozenset({_S.ENDED}),
    # a provisional response; the 2xx; a failure response, hangup, invite_timeout, an unusable
    # answer. A digest retry (401/407) is a new INVITE: calling again, also from proceeding.
    _S.CALLING: frozenset({_S.CALLING, _S.PROCEEDING, _S.CONNECTED, _S.ENDED}),
    _S.PROCEEDING: frozenset({_S.PROCEEDING, _S.CALLING, _S.CONNECTED, _S.ENDED}),
    _S.ENDED: frozenset(),
}


class DialogTransitionError(RuntimeError):
    """A state change ``TRANSITIONS`` does not allow: a bug in voxline, never the peer's doing (the
    peer's messages are checked against the state before anything moves)."""


def transition(current: DialogState, new: DialogState) -> DialogState:
    """``new``, when ``TRANSITIONS`` allows ``current`` → ``new``; raises ``DialogTransitionError``
    otherwise. Every change of a ``DialogState`` goes through here."""
    if new not in TRANSITIONS[current]:
        raise DialogTransitionError(f"no transition {current.value} -> {new.value}")
    return new


@dataclass(slots=True)
class Dialog:
    """One call's dialog and what the core tracks about it. The state starts at ``incoming`` (inbound)
    or ``calling`` (outbound) and changes only through ``move_to`` (see ``TRANSITIONS``)."""

    call_id: str
    inbound: bool
    peer: Address  # where the peer signals from (inbound: the INVITE's source; outbound: the target)
    transport: Transport
    local_host: str
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
    # transfer (voxline.sip.transfer): our REFER to the peer, the peer's REFER to us
    refer_out: OutgoingRefer | None = None
    refer_in: IncomingRefer | None = None
    _state: DialogState = field(init=False)

    def __post_init__(self) -> None:
        self._state = DialogState.INCOMING if self.inbound else DialogState.CALLING

    @property
    def state(self) -> DialogState:
        return self._state

    def move_to(self, new: DialogState) -> None:
        """The one way the state changes: refused (``DialogTransitionError``) unless in ``TRANSITIONS``."""
        self._state = transition(self._state, new)

    def end(self, now: float) -> None:
        """Ended (once: ending an ended dialog changes nothing); its ring and alert timers stop. The
        record stays (absorbing retransmissions) until Timer B after ``ended_at``."""
        if self._state is not DialogState.ENDED:
            self.move_to(DialogState.ENDED)
        self.ring_deadline = None
        self.alert_deadline = None
        if self.ended_at is None:
            self.ended_at = now

    def deadline(self) -> float | None:
        times = [t for t in (self.ok_next, self.ring_deadline, self.alert_deadline) if t is not None]
        if self.refer_out is not None or self.refer_in is not None:  # rare: no cost for other calls
            for r in (self.refer_out, self.refer_in):
                if r is not None and r.deadline is not None:
                    times.append(r.deadline)
        return min(times) if times else None

    def matches(self, req: SipRequest) -> bool:
        """Whether an in-dialog request (same Call-ID) carries this dialog's tags."""
        if req.to.tag != self.local_tag:
            return False
        return self.remote_tag is None or req.from_.tag == self.remote_tag

    @property
    def routes(self) -> list[str]:
        """The route set in the order our requests carry it (§12.1: reversed on the UAC side)."""
        return self.route_set if self.inbound else list(reversed(self.route_set))

    def request(self, method: str, *, via: str, user_agent: str, cseq: int | None = None) -> SipRequest:
        """An in-dialog request (§12.2.1.1); a new local CSeq unless ``cseq`` is given (the ACK)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        req = SipRequest(method=method, uri=self.remote_target)
        req.headers.add("Via", via)
        req.headers.add("Max-Forwards", "70")
        for route in self.routes:
            req.headers.add("Route", route)
        req.headers.add("From", f"{self.local_uri};tag={self.local_tag}")
        to = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        req.headers.add("To", to)
        req.headers.add("Call-ID", self.call_id)
        req.headers.add("CSeq", f"{cseq} {method}")
        req.headers.add("User-Agent", user_agent)
        return req

    def destination(self) -> Address:
        """Where in-dialog requests go: the first route hop when it is an IP address (over UDP),
        otherwise the address the peer signals from (a NAT-ed or wrong Contact does not matter)."""
        routes = self.routes
        if routes and self.transport == "udp":
            try:
                uri = parse_name_addr(routes[0]).uri
                if is_ip(uri.host):
                    return (uri.host, uri.port or 5060)
            except SipParseError:
                pass
        return self.peer

    def peer_ips(self) -> set[IPv4Address | IPv6Address]:
        """Where this dialog's in-dialog requests legitimately come from: the INVITE's source, the
        first route hop, the peer's Contact (each when it is an IP address)."""
        hosts = [self.peer[0], self.destination()[0]]
        try:
            hosts.append(parse_uri(self.remote_target).host)
        except SipParseError:
            pass
        return {ip for ip in map(source_ip, hosts) if ip is not None}


def is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def source_ip(host: str) -> IPv4Address | IPv6Address | None:
    """The IP address of a source or URI host (None for a name); IPv4-mapped IPv6 as IPv4."""
    try:
        ip = ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d: match them against IPv4 networks.
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def strip_tag(value: str) -> str:
    """A From/To value without its tag parameter (unchanged when it does not parse)."""
    try:
        addr = parse_name_addr(value)
    except SipParseError:
        return value
    addr.params.pop("tag", None)
    return str(addr)
