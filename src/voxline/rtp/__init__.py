"""RTP for G.711 audio (RFC 3550) with RFC 4733 DTMF: a sans-I/O session core plus asyncio UDP I/O.

``RtpSession`` is the core (receive with latching and reordering, paced sending driven by an outside
20 ms tick, DTMF both ways, inactivity timeout); ``RtpEndpoint`` binds it to a UDP socket and
``RtpClock`` drives any number of endpoints from one absolute 20 ms schedule.
"""

from .dtmf import DtmfDigit, DtmfReceiver
from .endpoint import MediaClock, RtpClock, RtpEndpoint, Tickable
from .jitter import JitterBuffer
from .packet import RtpError, RtpPacket, build_packet
from .session import RtpEvent, RtpSession, RtpTimeout

__all__ = [
    "DtmfDigit",
    "DtmfReceiver",
    "JitterBuffer",
    "MediaClock",
    "RtpClock",
    "RtpEndpoint",
    "RtpError",
    "RtpEvent",
    "RtpPacket",
    "RtpSession",
    "RtpTimeout",
    "Tickable",
    "build_packet",
]
