"""Test doubles for voxline and for users' own tests (needs the ``voxline[testing]`` extra).

``FakeRealtimeServer`` stands in for OpenAI's Realtime GA WebSocket API on 127.0.0.1: it validates every
client event against OpenAI's official schemas, keeps session/conversation/audio state, runs server VAD
on the audio's sample clock and streams scripted responses in OpenAI's event order::

    async with FakeRealtimeServer() as server:
        server.script(ScriptedResponse(text="Hi!"), ScriptedResponse(function_calls=[FunctionCall("f")]))
        ...  # point the client under test at server.base_url
        await server.wait_for_sent("response.done")
        server.assert_no_violations()

See ``voxline.testing.realtime_server`` for the full surface and the pluggable engine.
"""

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
