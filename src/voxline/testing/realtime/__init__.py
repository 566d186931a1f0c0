"""Moved to :mod:`voxline.realtime_server` (the session core and the pluggable engine).

This package re-exports those names for existing imports; ``.core`` and ``.engine`` likewise.
"""

from __future__ import annotations

from voxline.realtime_server.conversation import Truncation
from voxline.realtime_server.core import RealtimeSessionCore
from voxline.realtime_server.engine import (
    EnergySpeechDetector,
    FunctionCall,
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

__all__ = [
    "EnergySpeechDetector",
    "FunctionCall",
    "RealtimeSessionCore",
    "ResponseEngine",
    "ResponseRequest",
    "Say",
    "ScriptedEngine",
    "ScriptedResponse",
    "ScriptedTranscriber",
    "SpeechDetector",
    "Transcriber",
    "TranscriptionRequest",
    "Truncation",
]
