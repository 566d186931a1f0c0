"""ElevenLabs realtime speech: the ``stream-input`` WebSocket, one connection per turn, with alignment.

The connection for a turn opens at its first text (text appended meanwhile is held and sent in
order after the BOS). ``end()`` sends EOS; the turn is done at ``isFinal``. ``cancel()`` closes the
socket, which is how this endpoint stops a generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from voxline._tasks import background
from voxline.audio import PCMU_8K, AudioFormat
from voxline.logs import mask_secret
from voxline.media.tts import SpeechSink
from voxline.openai.websocket import WebSocketClient

from ._connect import SpeechConnectError, check_param, connect
from .wire import ElevenLabsTurn, elevenlabs_output_format

__all__ = ["ElevenLabsTTS"]

log = logging.getLogger("voxline.tts.elevenlabs")
DEFAULT_BASE_URL = "wss://api.elevenlabs.io"


class ElevenLabsTTS:
    """A :class:`~voxline.media.tts.SpeechProvider` for ElevenLabs' ``stream-input`` WebSocket.

    ``voice_id``, ``model_id`` (``eleven_flash_v2_5``), ``language`` (ISO 639-1, optional),
    ``media_format`` (μ-law 8 kHz by default: a phone call's own format, no transcoding),
    ``voice_settings``, ``generation_config``; ``base_url`` for a proxy or the fake.
    """

    def __init__(
        self,
        *,
        api_key: str,
        voice_id: str,
        model_id: str = "eleven_flash_v2_5",
        language: str | None = None,
        media_format: AudioFormat = PCMU_8K,
        voice_settings: Mapping[str, Any] | None = None,
        generation_config: Mapping[str, Any] | None = None,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        check_param(api_key, "api_key")
        check_param(voice_id, "voice_id")
        check_param(model_id, "model_id")
        check_param(language, "language", optional=True)
        if not base_url.startswith(("ws://", "wss://")):
            raise ValueError(f"parameter 'base_url' must be a ws:// or wss:// URL, got {base_url!r}")
        self._output_format = elevenlabs_output_format(media_format)
        mask_secret(api_key)
        self._api_key = api_key
        self._format = media_format
        self._voice_settings = voice_settings
        self._generation_config = generation_config
        query = {"model_id": model_id, "output_format": self._output_format, "sync_alignment": "true"}
        if language:
            query["language_code"] = language
        self.url = f"{base_url.rstrip('/')}/v1/text-to-speech/{voice_id}/stream-input?{urlencode(query)}"
        self._streams: set[_ElevenLabsStream] = set()

    @property
    def media_format(self) -> AudioFormat:
        return self._format

    def open_stream(self, sink: SpeechSink) -> _ElevenLabsStream:
        core = ElevenLabsTurn(
            self._format,
            api_key=self._api_key,
            voice_settings=self._voice_settings,
            generation_config=self._generation_config,
        )
        stream = _ElevenLabsStream(self, core, sink)
        self._streams.add(stream)
        return stream

    def stream_over(self, stream: _ElevenLabsStream) -> None:
        self._streams.discard(stream)

    def close(self) -> None:
        for stream in tuple(self._streams):
            stream.cancel()


class _ElevenLabsStream:
    def __init__(self, provider: ElevenLabsTTS, core: ElevenLabsTurn, sink: SpeechSink) -> None:
        self._provider = provider
        self._core = core
        self._sink = sink
        self._held: list[str] = []  # messages before the socket is open
        self._ws: WebSocketClient | None = None
        self._cancelled = False
        self._task: asyncio.Task[None] | None = background(self._run(), name="voxline-tts-elevenlabs")

    def send_text(self, text: str) -> None:
        if text and not self._cancelled:
            self._send(self._core.text_message(text))

    def end(self) -> None:
        if not self._cancelled:
            self._send(self._core.eos())

    def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        if self._ws is not None:
            self._ws.close()  # stream-input has no cancel message: closing stops the generation
        elif self._task is not None:
            self._task.cancel()
        self._provider.stream_over(self)

    def _send(self, message: str) -> None:
        ws = self._ws
        if ws is None:
            self._held.append(message)
        elif ws.open:
            ws.send_text(message)

    async def _run(self) -> None:
        try:
            ws = await connect(self._provider.url, {}, "ElevenLabs")
        except SpeechConnectError as exc:
            self._sink.failed(str(exc))
            self._provider.stream_over(self)
            return
        self._ws = ws
        if self._cancelled:
            ws.close()
            return
        ws.send_text(self._core.bos())
        for message in self._held:
            ws.send_text(message)
        self._held.clear()
        ws.start(self._on_text, self._on_binary)
        code, reason = await ws.wait_closed()
        self._provider.stream_over(self)
        if not self._cancelled and not self._core.final:
            self._sink.failed(f"ElevenLabs closed the stream before isFinal: {code} {reason}".strip())

    def _on_text(self, text: str) -> None:
        if self._cancelled:
            return
        try:
            received = self._core.receive(text)
        except ValueError as exc:
            log.warning("ElevenLabs: ignored a message: %s", exc)
            return
        if received.spans:
            self._sink.timings(received.spans)
        if received.audio:
            self._sink.audio(received.audio)
        if received.error is not None:
            self._sink.failed(f"ElevenLabs: {received.error}")
        elif received.done:
            self._sink.done()
            if self._ws is not None:
                self._ws.close()

    def _on_binary(self, data: bytes) -> None:
        log.warning("ElevenLabs: ignored a binary message of %d bytes", len(data))
