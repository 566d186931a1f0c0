"""Cartesia realtime speech: one WebSocket per player, a context per turn (``continue``), word
timestamps, ``cancel`` on barge-in."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from typing import Any
from urllib.parse import urlencode

from voxline._tasks import background
from voxline.audio import PCMU_8K, AudioFormat
from voxline.logs import mask_secret
from voxline.media.tts import SpeechSink
from voxline.openai.websocket import WebSocketClient

from ._connect import SpeechConnectError, check_param, connect
from .wire import CARTESIA_VERSION, CartesiaContext, cartesia_output_format

__all__ = ["CartesiaTTS"]

log = logging.getLogger("voxline.tts.cartesia")
DEFAULT_BASE_URL = "wss://api.cartesia.ai"
_counter = itertools.count(1)


class CartesiaTTS:
    """A :class:`~voxline.media.tts.SpeechProvider` for Cartesia's ``/tts/websocket``.

    ``voice_id``, ``model_id`` (``sonic-2``), ``language`` (``en``), ``media_format`` (μ-law 8 kHz by
    default); the connection opens with the first turn and carries every later one.
    """

    def __init__(
        self,
        *,
        api_key: str,
        voice_id: str,
        model_id: str = "sonic-2",
        language: str | None = "en",
        media_format: AudioFormat = PCMU_8K,
        base_url: str = DEFAULT_BASE_URL,
        version: str = CARTESIA_VERSION,
    ) -> None:
        check_param(api_key, "api_key")
        check_param(voice_id, "voice_id")
        check_param(model_id, "model_id")
        check_param(language, "language", optional=True)
        if not base_url.startswith(("ws://", "wss://")):
            raise ValueError(f"parameter 'base_url' must be a ws:// or wss:// URL, got {base_url!r}")
        cartesia_output_format(media_format)  # raises for a format Cartesia cannot stream
        mask_secret(api_key)
        self._api_key = api_key
        self._format = media_format
        self._voice_id = voice_id
        self._model_id = model_id
        self._language = language
        self.url = f"{base_url.rstrip('/')}/tts/websocket?{urlencode({'cartesia_version': version})}"
        self._ws: WebSocketClient | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._held: list[str] = []
        self._contexts: dict[str, tuple[CartesiaContext, SpeechSink]] = {}
        self._closed = False

    @property
    def media_format(self) -> AudioFormat:
        return self._format

    def open_stream(self, sink: SpeechSink) -> _CartesiaStream:
        context_id = f"voxline-{next(_counter)}-{uuid.uuid4().hex[:8]}"
        core = CartesiaContext(
            context_id,
            self._format,
            model_id=self._model_id,
            voice_id=self._voice_id,
            language=self._language,
        )
        self._contexts[context_id] = (core, sink)
        if self._ws is None and self._connecting is None and not self._closed:
            self._connecting = background(self._connect(), name="voxline-tts-cartesia")
        return _CartesiaStream(self, core, sink)

    def send(self, message: str) -> None:
        ws = self._ws
        if ws is None:
            self._held.append(message)
        elif ws.open:
            ws.send_text(message)

    def forget(self, context_id: str) -> None:
        self._contexts.pop(context_id, None)

    def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            self._ws.close()
        elif self._connecting is not None:
            self._connecting.cancel()

    async def _connect(self) -> None:
        try:
            ws = await connect(self.url, {"X-API-Key": self._api_key}, "Cartesia")
        except SpeechConnectError as exc:
            for _, sink in list(self._contexts.values()):
                sink.failed(str(exc))
            self._contexts.clear()
            self._connecting = None
            return
        self._ws = ws
        self._connecting = None
        if self._closed:
            ws.close()
            return
        for message in self._held:
            ws.send_text(message)
        self._held.clear()
        ws.start(self._on_text, lambda data: log.warning("Cartesia: ignored %d binary bytes", len(data)))
        code, reason = await ws.wait_closed()
        self._ws = None
        for _, sink in list(self._contexts.values()):
            sink.failed(f"Cartesia closed the connection: {code} {reason}".strip())
        self._contexts.clear()

    def _on_text(self, text: str) -> None:
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.warning("Cartesia: ignored a message: %s", exc)
            return
        entry = self._contexts.get(str(data.get("context_id")))
        if entry is None:
            if data.get("type") == "error":
                log.warning("Cartesia error: %s", data.get("error") or data.get("message"))
            return  # a cancelled context's late messages
        core, sink = entry
        try:
            received = core.receive(data)
        except ValueError as exc:
            log.warning("Cartesia: ignored a message: %s", exc)
            return
        if received.spans:
            sink.timings(received.spans)
        if received.audio:
            sink.audio(received.audio)
        if received.error is not None:
            self.forget(core.context_id)
            sink.failed(f"Cartesia: {received.error}")
        elif received.done:
            self.forget(core.context_id)
            sink.done()


class _CartesiaStream:
    def __init__(self, provider: CartesiaTTS, core: CartesiaContext, sink: SpeechSink) -> None:
        self._provider = provider
        self._core = core
        self._sink = sink
        self._cancelled = False
        self._leading = ""  # whitespace before the turn's first real text

    def send_text(self, text: str) -> None:
        if not text or self._cancelled or self._core.ended:
            return
        if not self._core.text and not text.strip():
            # Cartesia refuses a context whose first transcript is blank: hold it for the first word.
            self._leading += text
            return
        text, self._leading = self._leading + text, ""
        self._provider.send(self._core.request(text))

    def end(self) -> None:
        if self._cancelled or self._core.ended:
            return
        if not self._core.text.strip():
            # Cartesia refuses a context without real text: nothing was said, nothing to end.
            self._cancelled = True
            self._provider.forget(self._core.context_id)
            self._sink.done()
            return
        self._provider.send(self._core.request("", more=False))

    def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._provider.forget(self._core.context_id)
        if self._core.text:
            self._provider.send(self._core.cancel())
