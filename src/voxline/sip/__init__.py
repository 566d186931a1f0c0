"""SIP (RFC 3261) for voice calls: a sans-I/O message/SDP/transaction/user-agent core and a thin
asyncio endpoint (UDP + TCP) whose call legs carry G.711 RTP.

Layers, each usable alone:

- ``message``: parse/serialize SIP messages, URIs, name-addr, Via; TCP stream framing.
- ``sdp``: SDP parse/build and offer/answer for PCMU/PCMA + telephone-event.
- ``auth``: digest credentials (MD5, SHA-256, qop=auth) for outbound calls.
- ``transaction``: the four RFC 3261 transaction state machines with timers on injected time.
- ``core``: ``UserAgentCore``, the user agent (calls both ways) — bytes and commands in,
  bytes and events out, ``next_deadline()``/``tick(now)``. It is the facade of its parts:
  ``config`` (``SipConfig``), ``dialog`` (``Dialog`` and ``DialogState`` with its transition table),
  ``context`` (what the parts share), ``uas`` (calls coming in, requests inside a dialog) and
  ``uac`` (calls we place), ``transfer`` (REFER both ways, with ``refer``'s sipfrag and
  Subscription-State parsers).
- ``endpoint``: ``SipEndpoint`` and ``SipCallLeg`` on asyncio.
"""

from .auth import DigestChallenge, DigestError, build_authorization, digest_response, parse_challenge
from .core import CallStateError, SipConfig, UserAgentCore
from .dialog import DialogState
from .endpoint import CallFailedError, SipCallLeg, SipEndpoint
from .events import (
    CallConnected,
    CallDisconnected,
    CallFailed,
    CallProgress,
    CallReinvite,
    DtmfInfo,
    IncomingCall,
    Outgoing,
    ReferAccepted,
    ReferEnded,
    ReferProgress,
    ReferReceived,
    SipEvent,
)
from .message import (
    NameAddr,
    SipHeaders,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    StreamFramer,
    Via,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from .sdp import (
    Codec,
    NegotiatedMedia,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
    parse_sdp,
)
from .transaction import Timers

__all__ = [
    "CallConnected",
    "CallDisconnected",
    "CallFailed",
    "CallFailedError",
    "CallProgress",
    "CallReinvite",
    "CallStateError",
    "Codec",
    "DialogState",
    "DigestChallenge",
    "DigestError",
    "DtmfInfo",
    "IncomingCall",
    "NameAddr",
    "NegotiatedMedia",
    "NoCommonCodec",
    "Outgoing",
    "ReferAccepted",
    "ReferEnded",
    "ReferProgress",
    "ReferReceived",
    "SdpError",
    "SessionDescription",
    "SipCallLeg",
    "SipConfig",
    "SipEndpoint",
    "SipEvent",
    "SipHeaders",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "Timers",
    "UserAgentCore",
    "Via",
    "accept_answer",
    "answer_offer",
    "build_authorization",
    "build_offer",
    "digest_response",
    "parse_challenge",
    "parse_message",
    "parse_name_addr",
    "parse_sdp",
    "parse_uri",
    "parse_via",
]
