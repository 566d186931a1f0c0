"""Fake streaming speech services on 127.0.0.1: ElevenLabs ``stream-input``, Cartesia
``/tts/websocket`` and OpenAI ``/v1/audio/speech``, for voxline's tests and yours.

Each checks what the real service checks (the key, the query, the first message, every field of
every message) and answers a message the real one would refuse the way it does (an error message or
a refused handshake), recording it in ``violations``. The "voice" is a tone per word, ``ms_per_char``
of audio per character, sent in one message per word every ``chunk_delay_s`` (faster than real time,
but not at once, so a barge-in meets pending generation). Each server keeps the ground truth:
``spoken`` has, per turn, the words and their spans on the turn's audio timeline, and what the
client cancelled or closed early is in ``cancels``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voxline.audio import PCM16_24K, AudioFormat, Encoding
from voxline.audio.tone import tone
from voxline.audio.transcode import Transcoder
from voxline.testing.http_fake import LoopbackHTTPFake

__all__ = ["FakeCartesiaServer", "FakeElevenLabsServer", "FakeOpenAISpeechServer", "SpokenWord"]


@dataclass(frozen=True, slots=True)
class SpokenWord:
    """A word the fake rendered: characters ``[start_char, end_char)`` of the turn's text (as the
    service received it), audio ``[start_ms, end_ms)`` of the turn."""

    word: str
    start_char: int
    end_char: int
    start_ms: int
    end_ms: int


@dataclass
class FakeTurn:
    """One turn (an ElevenLabs connection, a Cartesia context, an OpenAI request)."""

    key: str
    text: str = ""
    words: list[SpokenWord] = field(default_factory=list)
    audio_ms: int = 0
    rendered_chars: int = 0
    ended: bool = False
    cancelled: bool = False
    finished: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)


class _Voice:
    """Renders words as tones: ``ms_per_char`` per character (whitespace included)."""

    def __init__(self, ms_per_char: int) -> None:
        self.ms_per_char = ms_per_char

    def render(
        self, turn: FakeTurn, upto: int, fmt: AudioFormat
    ) -> Iterator[tuple[bytes, list[SpokenWord], str]]:
        """Audio for ``turn.text[turn.rendered_chars:upto]``, one chunk per word with its trailing
        whitespace: (audio, the word, the chunk's text)."""
        piece = turn.text[turn.rendered_chars : upto]
        base = turn.rendered_chars
        for match in re.finditer(r"\s*\S+\s*|\s+", piece):
            chunk_text = match.group()
            ms = self.ms_per_char * len(chunk_text)
            freq = 300 + 40 * (len(turn.words) % 10)
            pcm = tone(freq, ms, fmt.rate, 0.2)
            audio = (
                pcm
                if fmt.encoding == "pcm16"
                else Transcoder(AudioFormat("pcm16", fmt.rate), fmt).process(pcm)
            )
            words = []
            for word in re.finditer(r"\S+", chunk_text):
                start = turn.audio_ms + word.start() * self.ms_per_char
                words.append(
                    SpokenWord(
                        word.group(),
                        base + match.start() + word.start(),
                        base + match.start() + word.end(),
                        start,
                        start + len(word.group()) * self.ms_per_char,
                    )
                )
            turn.audio_ms += ms
            turn.words.extend(words)
            turn.rendered_chars = base + match.end()
            yield audio, words, chunk_text


def _last_boundary(text: str, start: int) -> int:
    """The end of the last complete word (followed by whitespace) in ``text[start:]``."""
    for index in range(len(text) - 1, start - 1, -1):
        if text[index].isspace():
            return index + 1
    return start


class _WebSocketFake:
    """What the two WebSocket fakes share: the server, records, waiting."""

    def __init__(self, *, ms_per_char: int = 50, chunk_delay_s: float = 0.01) -> None:
        self.voice = _Voice(ms_per_char)
        self.chunk_delay_s = chunk_delay_s
        self.turns: list[FakeTurn] = []
        self.violations: list[str] = []
        self.cancels: list[str] = []
        self.handshakes: list[dict[str, Any]] = []
        self._server: Server | None = None
        self.port = 0
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, max_size=2**20
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        raise NotImplementedError

    async def _handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError

    def _violation(self, message: str) -> None:
        self.violations.append(message)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def spoken(self, key: str | None = None) -> FakeTurn:
        """The turn with ``key`` (a Cartesia context id), else the last one."""
        if key is None:
            return self.turns[-1]
        return next(t for t in self.turns if t.key == key)


# -- ElevenLabs ---------------------------------------------------------------------------------------

_EL_MODELS = frozenset(
    {"eleven_flash_v2_5", "eleven_flash_v2", "eleven_turbo_v2_5", "eleven_turbo_v2", "eleven_multilingual_v2"}
)
_EL_FORMATS = {
    "ulaw_8000": AudioFormat("pcmu", 8000),
    "alaw_8000": AudioFormat("pcma", 8000),
    **{f"pcm_{rate}": AudioFormat("pcm16", rate) for rate in (8000, 16000, 24000, 48000)},
}
_EL_QUERY = frozenset(
    {
        "model_id",
        "output_format",
        "language_code",
        "sync_alignment",
        "enable_logging",
        "enable_ssml_parsing",
        "inactivity_timeout",
        "auto_mode",
        "apply_text_normalization",
        "seed",
    }
)
_EL_BOS_KEYS = frozenset(
    {
        "text",
        "voice_settings",
        "generation_config",
        "xi_api_key",
        "authorization",
        "pronunciation_dictionary_locators",
    }
)
_EL_TEXT_KEYS = frozenset({"text", "try_trigger_generation", "flush", "voice_settings", "generation_config"})
_EL_VOICE_SETTINGS = frozenset({"stability", "similarity_boost", "style", "use_speaker_boost", "speed"})


class FakeElevenLabsServer(_WebSocketFake):
    """``wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/stream-input`` on 127.0.0.1.

    ``api_keys``: accepted keys (default: any non-empty key), from the ``xi-api-key`` header or the
    BOS's ``xi_api_key``. One connection is one turn (``turns``); a connection the client closes
    before ``isFinal`` while text was still to be rendered is a cancel (``cancels``: its index).
    """

    def __init__(self, *, api_keys: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_keys = api_keys

    def _key_ok(self, key: Any) -> bool:
        return isinstance(key, str) and bool(key) and (self.api_keys is None or key in self.api_keys)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        match = re.fullmatch(r"/v1/text-to-speech/([^/]+)/stream-input", parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.handshakes.append(
            {"path": parts.path, "query": query, "headers": dict(request.headers.raw_items())}
        )
        if match is None:
            return connection.respond(404, '{"detail": "Not Found"}\n')
        unknown = set(query) - _EL_QUERY
        problem = None
        if unknown:
            problem = f"unknown query parameters {sorted(unknown)}"
        elif query.get("model_id", "eleven_multilingual_v2") not in _EL_MODELS:
            problem = f"model_id {query.get('model_id')!r} does not exist"
        elif query.get("output_format", "mp3_44100_128") not in _EL_FORMATS:
            problem = f"output_format {query.get('output_format')!r} is not supported here"
        header_key = request.headers.get("xi-api-key")
        if header_key is not None and not self._key_ok(header_key):
            problem = problem or "invalid_api_key"
            self._violation(problem)
            return connection.respond(401, json.dumps({"detail": {"status": "invalid_api_key"}}) + "\n")
        if problem is not None:
            self._violation(problem)
            return connection.respond(
                400, json.dumps({"detail": {"status": "invalid_request", "message": problem}}) + "\n"
            )
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        parts = urlsplit(connection.request.path if connection.request else "")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        fmt = _EL_FORMATS[query.get("output_format", "pcm_24000")]
        aligned = query.get("sync_alignment") == "true"
        header_key = connection.request.headers.get("xi-api-key") if connection.request else None
        turn = FakeTurn(key=str(len(self.turns)))
        self.turns.append(turn)
        bos_seen = False
        sender: asyncio.Task[None] | None = None
        wanted = 0  # characters the client has asked to be rendered
        ready = asyncio.Event()

        async def render() -> None:
            while True:
                await ready.wait()
                ready.clear()
                while turn.rendered_chars < wanted:
                    for audio, _words, chunk_text in self.voice.render(turn, wanted, fmt):
                        message: dict[str, Any] = {"audio": base64.b64encode(audio).decode(), "isFinal": None}
                        if aligned:
                            starts = [i * self.voice.ms_per_char for i in range(len(chunk_text))]
                            alignment = {
                                "chars": list(chunk_text),
                                "charStartTimesMs": starts,
                                "charsDurationsMs": [self.voice.ms_per_char] * len(chunk_text),
                            }
                            message["alignment"] = alignment
                            message["normalizedAlignment"] = alignment
                        await connection.send(json.dumps(message))
                        self._notify()
                        await asyncio.sleep(self.chunk_delay_s)
                if turn.ended and turn.rendered_chars >= len(turn.text):
                    await connection.send(json.dumps({"isFinal": True}))
                    turn.finished = True
                    self._notify()
                    await connection.close()
                    return

        async def refuse(message: str) -> None:
            self._violation(message)
            await connection.send(json.dumps({"message": message, "error": "input_error", "code": 1008}))
            await connection.close(1008, message[:100])

        try:
            async for raw in connection:
                if not isinstance(raw, str):
                    await refuse("binary messages are not accepted")
                    return
                try:
                    data = json.loads(raw)
                except ValueError:
                    await refuse("messages must be JSON")
                    return
                if not isinstance(data, dict):
                    await refuse("messages must be JSON objects")
                    return
                turn.messages.append(data)
                if turn.ended:
                    await refuse("message after the end of stream")
                    return
                if not bos_seen:
                    if set(data) - _EL_BOS_KEYS or data.get("text") != " ":
                        await refuse("the first message must initialise the stream with text ' '")
                        return
                    settings = data.get("voice_settings", {})
                    if (
                        not isinstance(settings, dict)
                        or set(settings) - _EL_VOICE_SETTINGS
                        or any(
                            k in ("stability", "similarity_boost", "style")
                            and not (isinstance(v, int | float) and 0 <= v <= 1)
                            for k, v in settings.items()
                        )
                    ):
                        await refuse("voice_settings are invalid")
                        return
                    if not self._key_ok(data.get("xi_api_key", header_key)):
                        await refuse("invalid_api_key: no valid xi-api-key or xi_api_key")
                        return
                    bos_seen = True
                    sender = asyncio.ensure_future(render())
                    continue
                if set(data) - _EL_TEXT_KEYS or not isinstance(data.get("text"), str):
                    await refuse(f"invalid text message: {sorted(data)}")
                    return
                text = data["text"]
                if text == "":
                    turn.ended = True
                    wanted = len(turn.text)
                else:
                    turn.text += text
                    wanted = len(turn.text) if data.get("flush") else _last_boundary(turn.text, wanted)
                ready.set()
                self._notify()
        except ConnectionClosed:
            pass
        finally:
            if not turn.finished:
                if bos_seen and (turn.rendered_chars < len(turn.text) or not turn.ended):
                    turn.cancelled = True
                    self.cancels.append(turn.key)
                if sender is not None:
                    sender.cancel()
            self._notify()


# -- Cartesia -----------------------------------------------------------------------------------------

_CA_KEYS = frozenset(
    {
        "model_id",
        "transcript",
        "voice",
        "language",
        "context_id",
        "output_format",
        "duration",
        "add_timestamps",
        "add_phoneme_timestamps",
        "use_normalized_timestamps",
        "continue",
        "max_buffer_delay_ms",
        "flush",
        "generation_config",
        "speed",
    }
)
_CA_ENCODINGS: dict[str, Encoding] = {"pcm_s16le": "pcm16", "pcm_mulaw": "pcmu", "pcm_alaw": "pcma"}
# (22050 and 44100 Hz are real formats too; voxline's AudioFormat has whole-kHz rates only.)
_CA_RATES = frozenset({8000, 16000, 24000, 48000})
_CA_LANGUAGES = frozenset(
    ["en", "fr", "de", "es", "pt", "zh", "ja", "hi", "it", "ko", "nl", "pl", "ru", "sv", "tr"]
)


class FakeCartesiaServer(_WebSocketFake):
    """``wss://api.cartesia.ai/tts/websocket`` on 127.0.0.1: contexts with ``continue``, word
    timestamps, ``cancel``. Keys from ``X-API-Key`` or ``api_key``; ``cartesia_version`` required."""

    def __init__(self, *, api_keys: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_keys = api_keys

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.handshakes.append(
            {"path": parts.path, "query": query, "headers": dict(request.headers.raw_items())}
        )
        if parts.path != "/tts/websocket":
            return connection.respond(404, "Not Found\n")
        key = request.headers.get("X-API-Key") or query.get("api_key")
        if not key or (self.api_keys is not None and key not in self.api_keys):
            self._violation("missing or invalid API key")
            return connection.respond(401, '{"error": "Invalid API key"}\n')
        if not (request.headers.get("Cartesia-Version") or query.get("cartesia_version")):
            self._violation("no Cartesia-Version")
            return connection.respond(400, '{"error": "Cartesia-Version is required"}\n')
        return None

    def _check(self, data: dict[str, Any], context: FakeTurn | None) -> str | None:
        if set(data) - _CA_KEYS:
            return f"unknown fields {sorted(set(data) - _CA_KEYS)}"
        if not isinstance(data.get("model_id"), str) or not data["model_id"].startswith("sonic"):
            return "Invalid model: model_id must be a sonic model"
        if not isinstance(data.get("transcript"), str):
            return "transcript must be a string"
        voice = data.get("voice")
        if not (isinstance(voice, dict) and voice.get("mode") == "id" and isinstance(voice.get("id"), str)):
            return "voice must be {mode: 'id', id: <voice id>}"
        out = data.get("output_format")
        if not (
            isinstance(out, dict)
            and out.get("container") == "raw"
            and out.get("encoding") in _CA_ENCODINGS
            and out.get("sample_rate") in _CA_RATES
        ):
            return "output_format must be raw with a supported encoding and sample_rate"
        if "language" in data and data["language"] not in _CA_LANGUAGES:
            return f"unsupported language {data.get('language')!r}"
        for flag in ("continue", "add_timestamps", "flush"):
            if flag in data and not isinstance(data[flag], bool):
                return f"{flag} must be a boolean"
        if context is None and not data["transcript"].strip():
            return "transcript must contain text when a context starts"
        if context is not None and context.ended:
            return "context has already been closed (continue: false)"
        if context is not None and context.messages:
            first = context.messages[0]
            for name in ("model_id", "voice", "output_format", "language"):
                if first.get(name) != data.get(name):
                    return f"{name} must not change within a context"
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        contexts: dict[str, FakeTurn] = {}
        wanted: dict[str, int] = {}
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def send(message: dict[str, Any]) -> None:
            await connection.send(json.dumps(message))
            self._notify()

        async def render() -> None:
            while True:
                context_id = await queue.get()
                turn = contexts[context_id]
                fmt_data = turn.messages[0]["output_format"]
                fmt = AudioFormat(_CA_ENCODINGS[fmt_data["encoding"]], fmt_data["sample_rate"])
                timestamps = bool(turn.messages[0].get("add_timestamps"))
                while not turn.cancelled and turn.rendered_chars < wanted[context_id]:
                    for audio, words, _ in self.voice.render(turn, wanted[context_id], fmt):
                        if turn.cancelled:
                            break
                        base = {"context_id": context_id, "status_code": 206, "done": False}
                        await send(
                            {
                                "type": "chunk",
                                "data": base64.b64encode(audio).decode(),
                                "step_time": 1,
                                **base,
                            }
                        )
                        if timestamps and words:
                            stamps = {
                                "words": [w.word for w in words],
                                "start": [w.start_ms / 1000 for w in words],
                                "end": [w.end_ms / 1000 for w in words],
                            }
                            await send({"type": "timestamps", "word_timestamps": stamps, **base})
                        await asyncio.sleep(self.chunk_delay_s)
                if (
                    turn.ended
                    and not turn.cancelled
                    and not turn.finished
                    and turn.rendered_chars >= len(turn.text)
                ):
                    turn.finished = True
                    await send({"type": "done", "context_id": context_id, "status_code": 206, "done": True})

        renderer = asyncio.ensure_future(render())
        try:
            async for raw in connection:
                try:
                    data = json.loads(raw)
                    if not isinstance(data, dict):
                        raise ValueError
                except ValueError:
                    self._violation("not a JSON object")
                    await send({"type": "error", "done": True, "status_code": 400, "error": "Invalid JSON"})
                    continue
                context_id = data.get("context_id")
                if data.get("cancel") is True:
                    if set(data) != {"context_id", "cancel"} or not isinstance(context_id, str):
                        self._violation(f"invalid cancel {data}")
                        await send(
                            {
                                "type": "error",
                                "done": True,
                                "status_code": 400,
                                "error": "Invalid cancel request",
                            }
                        )
                        continue
                    turn = contexts.get(context_id)
                    if turn is not None and not turn.finished:
                        turn.cancelled = True
                        self.cancels.append(context_id)
                    self._notify()
                    continue
                if context_id is not None and not isinstance(context_id, str):
                    problem: str | None = "context_id must be a string"
                else:
                    context_id = context_id or f"ctx-{len(self.turns)}"
                    problem = self._check(data, contexts.get(context_id))
                if problem is not None:
                    self._violation(problem)
                    await send(
                        {
                            "type": "error",
                            "context_id": context_id,
                            "done": True,
                            "status_code": 400,
                            "error": problem,
                        }
                    )
                    continue
                turn = contexts.get(context_id)
                if turn is None:
                    turn = contexts[context_id] = FakeTurn(key=context_id)
                    self.turns.append(turn)
                    wanted[context_id] = 0
                turn.messages.append(data)
                if turn.cancelled:
                    continue
                turn.text += data["transcript"]
                more = data.get("continue", False)
                if not more:
                    turn.ended = True
                    wanted[context_id] = len(turn.text)
                else:
                    wanted[context_id] = _last_boundary(turn.text, wanted[context_id])
                queue.put_nowait(context_id)
                self._notify()
        except ConnectionClosed:
            pass
        finally:
            renderer.cancel()
            self._notify()


# -- OpenAI speech ------------------------------------------------------------------------------------

_OA_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts"})
_OA_VOICES = frozenset(
    [
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
    ]
)
_OA_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})
_OA_KEYS = frozenset({"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"})


class FakeOpenAISpeechServer(LoopbackHTTPFake):
    """``POST /v1/audio/speech`` on 127.0.0.1 with OpenAI's checks and error bodies; ``pcm`` answers
    are streamed (24 kHz PCM16, one write per word every ``chunk_delay_s``). A client that goes
    away before the end is a cancel (``cancels``: the request's index)."""

    def __init__(
        self, *, ms_per_char: int = 50, chunk_delay_s: float = 0.01, api_key_prefix: str = "sk-"
    ) -> None:
        super().__init__()
        self.voice = _Voice(ms_per_char)
        self.chunk_delay_s = chunk_delay_s
        self.api_key_prefix = api_key_prefix
        self.turns: list[FakeTurn] = []
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.cancels: list[str] = []
        self._changed = asyncio.Event()

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/audio/speech", self._speech)

    @property
    def base_url(self) -> str:
        return super().base_url.rstrip("/")  # the speech client appends "/v1/audio/speech"

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def _error(self, status: int, message: str, param: str | None = None) -> web.Response:
        self.violations.append(message)
        self._notify()
        error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
        return web.json_response({"error": error}, status=status)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(f"Bearer {self.api_key_prefix}"):
            return self._error(401, "Incorrect API key provided.")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self._error(400, "The body must be a JSON object.")
        self.requests.append(body)
        unknown = set(body) - _OA_KEYS
        if unknown:
            return self._error(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        model, text, voice = body.get("model"), body.get("input"), body.get("voice")
        if model not in _OA_MODELS:
            return self._error(400, f"Invalid model {model!r}", "model")
        if not isinstance(text, str) or not text or len(text) > 4096:
            return self._error(400, "input must be a string of 1 to 4096 characters", "input")
        if voice not in _OA_VOICES:
            return self._error(400, f"Invalid voice {voice!r}", "voice")
        if body.get("response_format", "mp3") not in _OA_FORMATS:
            return self._error(400, "Invalid response_format", "response_format")
        if body.get("response_format") != "pcm":
            return self._error(400, "this fake renders response_format 'pcm' only", "response_format")
        if "instructions" in body and model in ("tts-1", "tts-1-hd"):
            return self._error(400, "instructions are not supported with tts-1 and tts-1-hd", "instructions")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
            return self._error(400, "speed must be between 0.25 and 4.0", "speed")
        if body.get("stream_format", "audio") != "audio":
            return self._error(400, "this fake streams stream_format 'audio' only", "stream_format")
        turn = FakeTurn(key=str(len(self.turns)), text=text, ended=True)
        self.turns.append(turn)
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        try:
            for audio, _words, _ in self.voice.render(turn, len(text), PCM16_24K):
                await response.write(audio)
                self._notify()
                await asyncio.sleep(self.chunk_delay_s)
            await response.write_eof()
            turn.finished = True
        except (ConnectionResetError, asyncio.CancelledError):
            turn.cancelled = True
            self.cancels.append(turn.key)
            self._notify()
            raise
        self._notify()
        return response
