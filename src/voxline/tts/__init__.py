"""Streaming speech providers for :class:`voxline.media.tts.TTSPlayer`, and the cascades.

- :class:`~voxline.tts.elevenlabs.ElevenLabsTTS` (``stream-input`` WebSocket, character alignment),
- :class:`~voxline.tts.cartesia.CartesiaTTS` (WebSocket contexts, word timestamps),
- :class:`~voxline.tts.openai_speech.OpenAITTS` (``/v1/audio/speech``, streaming PCM),
- :class:`voxline.local.tts_player.EspeakTTS` (the embedded espeak-ng voice, offline),
- :class:`~voxline.tts.cascade.HalfCascade` (a text-mode Realtime client speaking through a player,
  its interrupted items cut to what was heard), :class:`~voxline.tts.cascade.FullCascade`
  (transcription, Chat Completions, a player; the history cut the same way) and
  :func:`~voxline.tts.cascade.speak_text_stream` (any text stream into a player).

See docs/tts.md. Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voxline._lazy import lazy_names

if TYPE_CHECKING:
    from .cartesia import CartesiaTTS
    from .cascade import FullCascade, HalfCascade, speak_text_stream
    from .elevenlabs import ElevenLabsTTS
    from .openai_speech import OpenAITTS

__all__ = ["CartesiaTTS", "ElevenLabsTTS", "FullCascade", "HalfCascade", "OpenAITTS", "speak_text_stream"]

_WHERE = {
    "CartesiaTTS": "voxline.tts.cartesia",
    "ElevenLabsTTS": "voxline.tts.elevenlabs",
    "OpenAITTS": "voxline.tts.openai_speech",
    "HalfCascade": "voxline.tts.cascade",
    "FullCascade": "voxline.tts.cascade",
    "speak_text_stream": "voxline.tts.cascade",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())
