"""The fake Realtime server's protocol core and its pluggable engine (see ``voxline.testing``)."""

from __future__ import annotations

from .core import RealtimeSessionCore, Truncation
from .engine import (
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
