"""A session's configuration: the defaults OpenAI starts with, ``session.update`` checks and merging.

:class:`SessionConfig` holds the effective session object (what ``session.created`` and every
``session.updated`` carry) and reads the settings the other parts of the session use: the input and
output audio formats, turn detection, input transcription.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from voxline.audio import AudioFormat
from voxline.openai.formats import from_openai

from .validation import SchemaProblem

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "EAGERNESS_SILENCE_MS",
    "SESSION_LIFETIME_S",
    "SessionConfig",
    "default_session",
    "merge_session_update",
    "turn_detection_defaults",
]

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, witty, and friendly AI. Your voice and personality should be warm and engaging."
)
SESSION_LIFETIME_S = 3600

# semantic_vad has no silence setting; these stand in for its eagerness.
EAGERNESS_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 300}

SessionKind = Literal["realtime", "transcription"]


def turn_detection_defaults(kind: str) -> dict[str, Any]:
    """OpenAI's ``turn_detection`` object of type ``kind`` with every default filled in."""
    if kind == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def merge_session_update(base: dict[str, Any], update: Mapping[str, Any], path: str = "") -> None:
    """Merge a session update: nested session/audio objects merge, every other value is replaced."""
    for key, value in update.items():
        here = f"{path}.{key}" if path else key
        current = base.get(key)
        if here in ("audio", "audio.input", "audio.output") and isinstance(value, Mapping):
            if not isinstance(current, dict):
                current = base[key] = {}
            merge_session_update(current, value, here)
        elif here == "audio.input.turn_detection" and isinstance(value, Mapping):
            kind = value.get("type", "server_vad")
            merged = current if isinstance(current, dict) and current.get("type") == kind else None
            merged = merged if merged is not None else turn_detection_defaults(str(kind))
            merged.update(copy.deepcopy(dict(value)))
            base[key] = merged
        else:
            base[key] = copy.deepcopy(value)


def default_session(kind: str, model: str | None, now: float, instructions: str) -> dict[str, Any]:
    """The session object a new session starts with (``id`` is filled in when it starts)."""
    audio_input = {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": None,
        "noise_reduction": None,
        "turn_detection": turn_detection_defaults("server_vad"),
    }
    expires_at = int(now) + SESSION_LIFETIME_S
    if kind == "transcription":
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": "",
            "expires_at": expires_at,
            "audio": {"input": audio_input},
            "include": None,
        }
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": "",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": audio_input,
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


class SessionConfig:
    """The effective session object of one session (``kind``: a realtime or a transcription session)."""

    def __init__(self, kind: SessionKind, model: str | None, now: float, instructions: str) -> None:
        self.kind: SessionKind = kind
        self.session: dict[str, Any] = default_session(kind, model, now, instructions)

    @property
    def input_format(self) -> AudioFormat:
        return from_openai(self.session["audio"]["input"]["format"])

    @property
    def output_format(self) -> AudioFormat:
        output = self.session.get("audio", {}).get("output", {})
        return from_openai(output.get("format", {"type": "audio/pcm", "rate": 24000}))

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        value = self.session["audio"]["input"].get("turn_detection")
        return value if isinstance(value, dict) else None

    @property
    def transcription(self) -> dict[str, Any] | None:
        """``audio.input.transcription`` when the session enables input transcription."""
        value = self.session["audio"]["input"].get("transcription")
        return value if isinstance(value, dict) else None

    def update_problem(
        self, update: Mapping[str, Any], *, assistant_audio_sent: bool
    ) -> SchemaProblem | None:
        """Why OpenAI would refuse this (schema-valid) ``session.update``; None: it applies."""
        if update["type"] != self.kind:
            return SchemaProblem(
                "invalid_value",
                f"Invalid value: '{update['type']}'. Supported values are: '{self.kind}'.",
                "session.type",
            )
        voice = update.get("audio", {}).get("output", {}).get("voice")
        current_voice = self.session.get("audio", {}).get("output", {}).get("voice")
        if voice is not None and voice != current_voice and assistant_audio_sent:
            return SchemaProblem(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
        return None

    def apply(self, update: Mapping[str, Any]) -> bool:
        """Merge ``update`` into the session; True when the input audio format changed."""
        before = self.input_format
        merge_session_update(self.session, update)
        return self.input_format != before
