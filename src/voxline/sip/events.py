"""Events the SIP user agent core reports (sans-I/O), one dataclass per kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .message import NameAddr, SipHeaders, SipUri
from .sdp import NegotiatedMedia, SessionDescription

__all__ = [
    "Address",
    "CallConnected",
    "CallDisconnected",
    "CallFailed",
    "CallProgress",
    "CallReinvite",
    "DtmfInfo",
    "IncomingCall",
    "Outgoing",
    "ReferAccepted",
    "ReferEnded",
    "ReferProgress",
    "ReferReceived",
    "SipEvent",
]

Address = tuple[str, int]
Transport = Literal["udp", "tcp", "tls"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes the I/O layer must write: a datagram (udp) or onto the connection to ``addr`` (tcp, tls)."""

    data: bytes
    addr: Address
    transport: Transport = "udp"


@dataclass(slots=True)
class IncomingCall:
    """A new INVITE that passed the checks (limits, SDP). Answer, ring or reject it by ``call_id``."""

    call_id: str
    caller: NameAddr  # the From header
    callee: SipUri  # the Request-URI
    caller_id: str  # From user part (the number), or "" when absent
    display_name: str | None
    destination: str  # Request-URI user part (the dialled number), or "" when absent
    headers: SipHeaders  # all headers of the INVITE, as received
    offer: SessionDescription | None  # None: the caller wants our offer (delayed offer)
    media: NegotiatedMedia | None  # what we will answer with
    source: Address  # where the INVITE came from (behind a proxy: the proxy)
    transport: Transport
    # Who called: ``source``, or behind a trusted proxy the address it received the INVITE from.
    caller_address: Address | None = None


@dataclass(slots=True)
class CallProgress:
    """A provisional response to our INVITE (180, 183, ...); ``media`` when it carried an answer."""

    call_id: str
    status: int
    reason: str
    media: NegotiatedMedia | None = None


@dataclass(slots=True)
class CallConnected:
    """Inbound: our 200 was ACKed. Outbound: the callee answered (and we ACKed)."""

    call_id: str
    media: NegotiatedMedia | None


@dataclass(slots=True)
class CallReinvite:
    """The peer sent a new offer in the dialog (hold, resume, codec change); we already answered it."""

    call_id: str
    media: NegotiatedMedia
    on_hold: bool


@dataclass(slots=True)
class CallDisconnected:
    """A connected call ended. ``by``: "remote" (their BYE), "local" (our hangup) or "timeout"."""

    call_id: str
    by: Literal["remote", "local", "timeout"]
    reason: str
    status: int | None = None


@dataclass(slots=True)
class CallFailed:
    """A call that never connected ended: outbound failure response or timeout, inbound cancel by the
    caller (487), a rejection we sent, or an answer that was never ACKed."""

    call_id: str
    status: int
    reason: str
    by: Literal["remote", "local", "timeout"] = "remote"


@dataclass(slots=True)
class DtmfInfo:
    """A digit sent in a SIP INFO (application/dtmf-relay or application/dtmf)."""

    call_id: str
    digit: str
    duration_ms: int


@dataclass(slots=True)
class ReferAccepted:
    """The peer accepted our REFER (``UserAgentCore.transfer``): a 2xx, or a NOTIFY that came first."""

    call_id: str


@dataclass(slots=True)
class ReferProgress:
    """A NOTIFY of our REFER with a provisional sipfrag: the peer's INVITE to the target got ``status``."""

    call_id: str
    status: int
    reason: str


@dataclass(slots=True)
class ReferEnded:
    """Our REFER's outcome: the final sipfrag (2xx: the peer reached the target), a rejection of the
    REFER itself, the subscription ended without a final status, or ``by="timeout"`` (408)."""

    call_id: str
    status: int
    reason: str
    by: Literal["remote", "timeout"] = "remote"

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class ReferReceived:
    """The peer sent a REFER in a connected call: answer it with ``accept_refer`` (then report the
    outcome with ``notify_refer``) or ``reject_refer``; unanswered, it gets 603 after a few seconds."""

    call_id: str
    refer_to: str  # the target URI, as in Refer-To (embedded headers kept)
    referred_by: str | None  # the Referred-By value, if any
    headers: SipHeaders  # all headers of the REFER


SipEvent = (
    IncomingCall
    | CallProgress
    | CallConnected
    | CallReinvite
    | CallDisconnected
    | CallFailed
    | DtmfInfo
    | ReferAccepted
    | ReferProgress
    | ReferEnded
    | ReferReceived
)
