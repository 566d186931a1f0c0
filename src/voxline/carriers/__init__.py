"""Carrier WebSocket media: Twilio Media Streams and the VoxEngine WebSocket media format.

Sans-I/O protocol cores (``twilio``, ``wsmedia``), TwiML and Twilio signatures (``twiml``), the
``CarrierStream`` the runtime gets for each accepted stream (``stream``), settings (``config``),
access control (``access``), the per-carrier wiring (``twilio_session``, ``voxengine_session``,
``webhook``), the socket I/O (``ws_server``, ``aiohttp_socket``), the endpoints tying them together
(``endpoint``), and the listener they are served on, with header and idle timeouts
(``http_guard.start_http_site``).

These names are loaded on first use; importing the package, its sans-I/O cores or its wiring does
not import aiohttp or websockets (only ``CarrierEndpoints`` does).
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
    from .config import Admit, CarrierConfig
    from .endpoint import CarrierEndpoints
    from .twilio_session import TwilioCarrierStream
    from .voxengine_session import VoxEngineCarrierStream

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

# Only CarrierEndpoints needs aiohttp and websockets; the others load without them.
_LAZY = {
    "Admit": ".config",
    "CarrierConfig": ".config",
    "CarrierEndpoints": ".endpoint",
    "TwilioCarrierStream": ".twilio_session",
    "VoxEngineCarrierStream": ".voxengine_session",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
