"""RTP for G.711 audio (RFC 3550) with RFC 4733 DTMF: a sans-I/O session core plus asyncio UDP I/O.

``RtpSession`` is the core (receive with latching and reordering, paced sending driven by an outside
20 ms tick, DTMF both ways, inactivity timeout); ``RtpEndpoint`` binds it to a UDP socket and sends
on the ticks of the shared media clock (``voxline.media.clock``), right after the playouts that feed it.
"""

from .dtmf import DtmfDigit, DtmfReceiver
from .endpoint import RtpEndpoint
from .jitter import JitterBuffer
from .packet import RtpError, RtpPacket, build_packet
from .session import RtpEvent, RtpSession, RtpTimeout

__all__ = [
    "DtmfDigit",
    "DtmfReceiver",
    "JitterBuffer",
    "RtpEndpoint",
    "RtpError",
    "RtpEvent",
    "RtpPacket",
    "RtpSession",
    "RtpTimeout",
    "build_packet",
]
