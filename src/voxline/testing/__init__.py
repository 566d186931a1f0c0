"""Test doubles for voxline and for users' own tests.

``FakeRealtimeServer`` stands in for OpenAI's Realtime GA WebSocket API on 127.0.0.1: it validates every
client event against OpenAI's official schemas, keeps session/conversation/audio state, runs server VAD
on the audio's sample clock and streams scripted responses in OpenAI's event order::

    async with FakeRealtimeServer() as server:
        server.script(ScriptedResponse(text="Hi!"), ScriptedResponse(function_calls=[FunctionCall("f")]))
        ...  # point the client under test at server.base_url
        await server.wait_for_sent("response.done")
        server.assert_no_violations()

See ``voxline.testing.realtime_server`` for the testing surface. The protocol itself, the pluggable
engine and the schema validator moved to :mod:`voxline.realtime_server` (the embedded offline backend
runs the same server); the names below are re-exported from there. Also here:
``voxline.testing.carrier_callers`` (Twilio and VoxEngine test callers),
``voxline.testing.openai_http`` (fake Chat Completions and Responses servers),
``voxline.testing.openai_calls`` (``FakeOpenAICalls``: OpenAI SIP calls' signed webhooks and REST
endpoints; its sideband is the ``FakeRealtimeServer``'s) and ``voxline.testing.tts_servers`` (fake
ElevenLabs, Cartesia and OpenAI speech services).

Names load on first use, so ``import voxline.testing.carrier_callers`` needs no optional package; the
schema-validating parts (``FakeRealtimeServer``, ``ClientEventValidator``) need ``jsonschema`` and
raise an ImportError naming ``pip install 'voxline[testing]'`` without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxline._lazy import lazy_names

if TYPE_CHECKING:
    from voxline.realtime_server.engine import (
        EnergySpeechDetector,
        FunctionCall,
        MCPCall,
        ResponseEngine,
        ResponseRequest,
        Say,
        ScriptedResponse,
        SpeechDetector,
        Transcriber,
        TranscriptionRequest,
    )
    from voxline.realtime_server.records import HandshakeRejection
    from voxline.realtime_server.server import RealtimeConnection
    from voxline.realtime_server.validation import SchemaProblem

    from .openai_calls import FakeOpenAICalls
    from .realtime_server import FakeRealtimeServer
    from .schema import ClientEventValidator
    from .tts_servers import FakeCartesiaServer, FakeElevenLabsServer, FakeOpenAISpeechServer

__all__ = [
    "ClientEventValidator",
    "EnergySpeechDetector",
    "FakeCartesiaServer",
    "FakeElevenLabsServer",
    "FakeOpenAICalls",
    "FakeOpenAISpeechServer",
    "FakeRealtimeServer",
    "FunctionCall",
    "HandshakeRejection",
    "MCPCall",
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

_ENGINE = "voxline.realtime_server.engine"
_WHERE = {
    "ClientEventValidator": "voxline.testing.schema",
    "FakeOpenAICalls": "voxline.testing.openai_calls",
    "FakeRealtimeServer": "voxline.testing.realtime_server",
    "FakeCartesiaServer": "voxline.testing.tts_servers",
    "FakeElevenLabsServer": "voxline.testing.tts_servers",
    "FakeOpenAISpeechServer": "voxline.testing.tts_servers",
    "HandshakeRejection": "voxline.realtime_server.records",
    "RealtimeConnection": "voxline.realtime_server.server",
    "SchemaProblem": "voxline.realtime_server.validation",
    **{
        name: _ENGINE
        for name in (
            "EnergySpeechDetector",
            "FunctionCall",
            "MCPCall",
            "ResponseEngine",
            "ResponseRequest",
            "Say",
            "ScriptedResponse",
            "SpeechDetector",
            "Transcriber",
            "TranscriptionRequest",
        )
    },
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())
