"""Moved to :mod:`voxline.realtime_server.engine`; this module re-exports its names for existing imports."""

from __future__ import annotations

from voxline.realtime_server.engine import (
    DEFAULT_REPLY,
    EnergySpeechDetector,
    FunctionCall,
    Output,
    ResponseEngine,
    ResponseRequest,
    Say,
    ScriptedEngine,
    ScriptedResponse,
    ScriptedTranscriber,
    SpeechDetector,
    Transcriber,
    TranscriptionRequest,
    session_detector,
    speech_like_audio,
)

__all__ = [
    "DEFAULT_REPLY",
    "EnergySpeechDetector",
    "FunctionCall",
    "Output",
    "ResponseEngine",
    "ResponseRequest",
    "Say",
    "ScriptedEngine",
    "ScriptedResponse",
    "ScriptedTranscriber",
    "SpeechDetector",
    "Transcriber",
    "TranscriptionRequest",
    "session_detector",
    "speech_like_audio",
]
