"""OpenAI's Realtime GA server protocol, as voxline serves it: the testing fake and the offline backend.

``voxline.testing.FakeRealtimeServer`` (tests) and ``voxline.local.server`` (the embedded offline
backend) are both this package with different plug-ins. The protocol itself is sans-I/O, one module
per concept:

- :mod:`.core` -- :class:`RealtimeSessionCore`, one session's state machine in the shape of every
  voxline core: client frames in with the time (``receive_text``/``receive_binary``), what to send
  out (``data_to_send()``: server events, raw frames, close, abort), the engine work to await
  (``events_received()``, handed back with ``resolve``), and the paced response's ``next_deadline()``
  and ``tick()``.
- :mod:`.session` -- the session object: OpenAI's defaults, ``session.update`` checks and merging.
- :mod:`.input_audio` -- the input audio buffer, turn detection (VAD) on the sample clock, commits,
  input transcription.
- :mod:`.conversation` -- the conversation's items and their audio, ``conversation.item.*``.
- :mod:`.responses` -- responses streamed in OpenAI's event order, cancellation, usage.
- :mod:`.events` -- the session's output channel, ids and ``error`` events.
- :mod:`.formats` -- audio in the session's formats.
- :mod:`.engine` -- the pluggable brain: :class:`ResponseEngine`, :class:`SpeechDetector`,
  :class:`Transcriber`, and the scripted and energy-based defaults.
- :mod:`.validation` -- :class:`EventValidator`, what the core asks of a client-event validator.
- :mod:`.records` -- the server-wide records and waiting on them.

Two modules need more than the standard library and numpy: :mod:`.server` (:class:`RealtimeServer`,
the asyncio WebSocket I/O, on ``websockets``) and :mod:`.schema` (:class:`ClientEventValidator`,
OpenAI's official schemas, on ``jsonschema``). Their names are loaded from here on first use, so
importing the package or its sans-I/O modules needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxline._lazy import lazy_names

from .conversation import Truncation
from .core import RealtimeSessionCore
from .engine import (
    EnergySpeechDetector,
    FunctionCall,
    MCPCall,
    ResponseEngine,
    ResponseRequest,
    Say,
    ScriptedEngine,
    ScriptedResponse,
    ScriptedTranscriber,
    SpeechDetector,
    Transcriber,
    TranscriptionRequest,
)
from .events import Abort, Close, PendingWork, RawFrame
from .records import HandshakeRejection
from .validation import EventValidator, SchemaProblem

if TYPE_CHECKING:
    from .schema import ClientEventValidator, default_validator
    from .server import RealtimeConnection, RealtimeServer

__all__ = [
    "Abort",
    "ClientEventValidator",
    "Close",
    "EnergySpeechDetector",
    "EventValidator",
    "FunctionCall",
    "HandshakeRejection",
    "MCPCall",
    "PendingWork",
    "RawFrame",
    "RealtimeConnection",
    "RealtimeServer",
    "RealtimeSessionCore",
    "ResponseEngine",
    "ResponseRequest",
    "Say",
    "SchemaProblem",
    "ScriptedEngine",
    "ScriptedResponse",
    "ScriptedTranscriber",
    "SpeechDetector",
    "Transcriber",
    "TranscriptionRequest",
    "Truncation",
    "default_validator",
]

_LAZY = {
    "RealtimeConnection": ".server",
    "RealtimeServer": ".server",
    "ClientEventValidator": ".schema",
    "default_validator": ".schema",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
