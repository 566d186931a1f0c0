"""Test doubles for voxline and for users' own tests (needs the ``voxline[testing]`` extra)."""

from __future__ import annotations

try:
    import jsonschema as _jsonschema  # noqa: F401
    import referencing as _referencing  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "voxline.testing needs the optional dependencies of the 'voxline[testing]' extra "
        f"(missing: {exc.name}); install them with: pip install 'voxline[testing]'"
    ) from exc

from .realtime.engine import (
    EnergySpeechDetector,
    FunctionCall,
    ResponseEngine,
    ResponseRequest,
    Say,
    ScriptedResponse,
    SpeechDetector,
    Transcriber,
    TranscriptionRequest,
)
from .realtime_server import FakeRealtimeServer, HandshakeRejection, RealtimeConnection
from .schema import ClientEventValidator, SchemaProblem

__all__ = [
    "ClientEventValidator",
    "EnergySpeechDetector",
    "FakeRealtimeServer",
    "FunctionCall",
    "HandshakeRejection",
    "RealtimeConnection",
    "ResponseEngine",
    "ResponseRequest",
    "Say",
    "SchemaProblem",
    "ScriptedResponse",
    "SpeechDetector",
    "Transcriber",
    "TranscriptionRequest",
]
