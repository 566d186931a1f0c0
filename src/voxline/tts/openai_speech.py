"""OpenAI speech (``POST /v1/audio/speech``, ``response_format: "pcm"``): PCM16 at 24 kHz streamed in
the response body, one request per sentence (:mod:`.segmented`). Cancelling closes the request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from voxline._tasks import background
from voxline._version import __version__
from voxline.audio import PCM16_24K, AudioFormat
from voxline.logs import mask_secret
from voxline.media.tts import SpeechSink

from ._connect import check_param
from .segmented import SegmentedStream

__all__ = ["OpenAISpeechError", "OpenAITTS"]

DEFAULT_BASE_URL = "https://api.openai.com"
_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0)


class OpenAISpeechError(Exception):
    """``/v1/audio/speech`` answered with an error status (``status``, OpenAI's message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def speech_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/audio/speech" if base.endswith("/v1") else f"{base}/v1/audio/speech"


class OpenAITTS:
    """A :class:`~voxline.media.tts.SpeechProvider` for OpenAI's speech endpoint.

    ``voice`` (``alloy``, ``coral``...), ``model`` (``gpt-4o-mini-tts``), ``instructions`` (how to
    speak; not for ``tts-1``), ``speed``. Audio is PCM16 24 kHz (the endpoint's only raw format);
    sinks of other formats convert. No timestamps: heard text is estimated.
    """

    def __init__(
        self,
        *,
        api_key: str,
        voice: str = "alloy",
        model: str = "gpt-4o-mini-tts",
        instructions: str | None = None,
        speed: float | None = None,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        check_param(api_key, "api_key")
        check_param(voice, "voice")
        check_param(model, "model")
        check_param(instructions, "instructions", optional=True)
        if speed is not None and not (isinstance(speed, int | float) and 0.25 <= speed <= 4.0):
            raise ValueError(f"parameter 'speed' must be 0.25..4.0, got {speed!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"parameter 'base_url' must be an http(s) URL, got {base_url!r}")
        mask_secret(api_key)
        self.url = speech_url(base_url)
        self._body: dict[str, object] = {"model": model, "voice": voice, "response_format": "pcm"}
        if instructions:
            self._body["instructions"] = instructions
        if speed is not None:
            self._body["speed"] = speed
        self._http = httpx.AsyncClient(
            timeout=_TIMEOUT,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"voxline/{__version__}"},
        )

    @property
    def media_format(self) -> AudioFormat:
        return PCM16_24K

    def open_stream(self, sink: SpeechSink) -> SegmentedStream:
        return SegmentedStream(sink, self._render, PCM16_24K, name="OpenAI speech")

    async def _render(self, text: str) -> AsyncIterator[bytes]:
        body = {**self._body, "input": text}
        async with self._http.stream("POST", self.url, json=body) as response:
            if response.status_code != 200:
                raw = await response.aread()
                try:
                    message = json.loads(raw)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    message = raw[:300].decode("utf-8", "replace")
                raise OpenAISpeechError(response.status_code, str(message))
            carry = b""
            async for chunk in response.aiter_bytes():
                data = carry + chunk
                cut = len(data) & ~1  # whole samples only
                carry = data[cut:]
                if cut:
                    yield data[:cut]

    def close(self) -> None:
        background(self._http.aclose(), name="voxline-tts-openai-close")
