"""Carrier WebSocket media: Twilio Media Streams and the VoxEngine WebSocket media format.

Sans-I/O protocol cores (``twilio``, ``wsmedia``), TwiML and Twilio signatures (``twiml``), the
``CarrierStream`` the runtime gets for each accepted stream (``stream``), settings (``config``),
access control (``access``), the per-carrier wiring (``twilio_session``, ``voxengine_session``,
``webhook``), the socket I/O (``ws_server``, ``aiohttp_socket``), the endpoints tying them together
(``endpoint``), and the listener they are served on, with header and idle timeouts
(``http_guard.start_http_site``).

The endpoint's names are loaded from here on first use, so importing the package or its sans-I/O
modules does not import aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxline._lazy import lazy_names

from ._base import Ignored, ProtocolError
from .stream import CarrierStream, OnStream
from .twilio import Heard, TwilioMediaStream
from .twiml import compute_signature, connect_stream_twiml, validate_signature
from .wsmedia import VoxEngineMediaSocket

if TYPE_CHECKING:
    from .endpoint import Admit, CarrierConfig, CarrierEndpoints, TwilioCarrierStream, VoxEngineCarrierStream

__all__ = [
    "Admit",
    "CarrierConfig",
    "CarrierEndpoints",
    "CarrierStream",
    "Heard",
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

_LAZY = {
    "Admit": ".endpoint",
    "CarrierConfig": ".endpoint",
    "CarrierEndpoints": ".endpoint",
    "TwilioCarrierStream": ".endpoint",
    "VoxEngineCarrierStream": ".endpoint",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
