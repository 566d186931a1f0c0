"""Carrier WebSocket media: Twilio Media Streams and the VoxEngine WebSocket media format.

Sans-I/O protocol cores (``twilio``, ``wsmedia``), TwiML and Twilio signatures (``twiml``), the
``CarrierStream`` the runtime gets for each accepted stream (``stream``), the aiohttp
handlers (``endpoint``), and the listener they are served on, with header and idle timeouts
(``http_guard.start_http_site``).
"""

from __future__ import annotations

from ._base import Ignored, ProtocolError
from .endpoint import Admit, CarrierConfig, CarrierEndpoints, TwilioCarrierStream, VoxEngineCarrierStream
from .stream import CarrierStream, OnStream
from .twilio import TwilioMediaStream
from .twiml import compute_signature, connect_stream_twiml, validate_signature
from .wsmedia import VoxEngineMediaSocket

__all__ = [
    "Admit",
    "CarrierConfig",
    "CarrierEndpoints",
    "CarrierStream",
    "Ignored",
    "OnStream",
    "ProtocolError",
    "TwilioCarrierStream",
    "TwilioMediaStream",
    "VoxEngineCarrierStream",
    "VoxEngineMediaSocket",
    "compute_signature",
    "connect_stream_twiml",
    "validate_signature",
]
