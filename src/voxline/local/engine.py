"""The offline backend's plug-ins for the Realtime protocol server: VAD, ASR + responder + TTS, checks.

The protocol itself (session, conversation, turn logic, interruption, truncation, event order, errors)
is :mod:`voxline.realtime_server`'s (the server the testing fake also runs); this module gives it a
real brain, through the protocols of :mod:`voxline.realtime_server.engine`:

- :class:`WebrtcSpeechDetector` -- per-frame speech decisions from webrtcvad (the server keeps the
  ``server_vad`` turn rules: threshold, prefix padding, silence duration).
- :class:`LocalEngine` -- the response engine *and* the input transcriber. A committed user turn is
  recognised once with pocketsphinx (phrase list from the responder's vocabulary, free form without
  one); the transcript feeds both ``conversation.item.input_audio_transcription.completed`` and the
  responder, whose reply is spoken with espeak-ng. Recognition and synthesis run in worker threads and
  subprocesses, so a slow turn never blocks the socket.
- :class:`LocalEventValidator` -- OpenAI's schema checks plus OpenAI-style ``error`` answers for what
  the offline backend cannot do (MCP tools, image input).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from voxline.openai.formats import from_openai
from voxline.realtime_server.engine import (
    FunctionCall,
    ResponseRequest,
    Say,
    ScriptedResponse,
    TranscriptionRequest,
)
from voxline.realtime_server.schema import ClientEventValidator
from voxline.realtime_server.validation import SchemaProblem, format_param

from .asr import AsyncRecognizer, Recognizer
from .responder import Responder
from .tts import Synthesizer

__all__ = ["LocalEngine", "LocalEventValidator", "WebrtcSpeechDetector"]

log = logging.getLogger("voxline.local")

_WEBRTC_RATES = (8000, 16000, 32000, 48000)
_WARMUP_TEXT = "Hello, I would like to know when you are open today."


class WebrtcSpeechDetector:
    """webrtcvad as the server's :class:`~voxline.realtime_server.engine.SpeechDetector` (10 ms frames).

    ``aggressiveness`` 0..3 (3 rejects the most noise). 24 kHz frames are averaged down to 8 kHz
    (three samples to one: a crude low-pass, enough for a voice/no-voice decision) because webrtcvad
    takes 8/16/32/48 kHz only. webrtcvad adapts a noise estimate to what it hears, so every session
    gets its own through ``for_session()`` (one call's line noise never sways another call's
    decisions); each is warmed up on construction so a call's first frames are judged like any
    others.
    """

    frame_ms = 10

    def __init__(self, aggressiveness: int = 2) -> None:
        if isinstance(aggressiveness, bool) or aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")
        try:
            import webrtcvad
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "voice activity detection needs webrtcvad: pip install 'voxline[local]'"
            ) from exc
        import numpy as np

        self._np = np
        self.aggressiveness = aggressiveness
        self._vad = webrtcvad.Vad(aggressiveness)
        # webrtcvad's noise model starts from defaults and calls the first frames of anything speech.
        quiet = np.random.default_rng(0).normal(0.0, 16.0, 80 * 20).astype("<i2").tobytes()
        for i in range(20):
            self._vad.is_speech(quiet[i * 160 : (i + 1) * 160], 8000)

    def for_session(self) -> WebrtcSpeechDetector:
        """A fresh detector, with its own noise estimate, for one session."""
        return WebrtcSpeechDetector(self.aggressiveness)

    def speech_probability(self, frame: bytes, rate: int) -> float:
        if rate in _WEBRTC_RATES:
            return 1.0 if self._vad.is_speech(frame, rate) else 0.0
        if rate % 8000:
            raise ValueError(f"webrtcvad cannot judge {rate} Hz audio")
        factor = rate // 8000
        samples = self._np.frombuffer(frame, dtype="<i2")
        down = samples[: samples.size - samples.size % factor].reshape(-1, factor).mean(axis=1)
        return 1.0 if self._vad.is_speech(down.astype("<i2").tobytes(), 8000) else 0.0


class _RecognizerPool:
    """Recognisers per input rate, created on first use and reused turn after turn.

    One recogniser decodes one utterance at a time; concurrent turns of several calls get more
    recognisers, up to ``size`` per rate. ``in_process``: each recogniser decodes in its own worker
    process (:meth:`AsyncRecognizer.in_process`: pocketsphinx holds the GIL, so a decoding thread
    pauses the event loop); otherwise in a worker thread. A recogniser that fails (its process
    died) is dropped and replaced at the next turn.
    """

    def __init__(
        self, responder: Responder, size: int, warmup: Callable[[int], bytes], *, in_process: bool
    ) -> None:
        self._responder = responder
        self._warmup = warmup
        self._size = size
        self._in_process = in_process
        self._idle: dict[int, list[AsyncRecognizer]] = {}
        self._count: dict[int, int] = {}
        self._freed = asyncio.Condition()
        self._all: list[AsyncRecognizer] = []

    async def _create(self, rate: int) -> AsyncRecognizer:
        vocabulary = self._responder.vocabulary
        make = AsyncRecognizer.in_process if self._in_process else AsyncRecognizer.create
        if vocabulary is None or not vocabulary.phrases:
            recognizer = await make(Recognizer.free_form, input_rate=rate)
        else:
            recognizer = await make(
                Recognizer.from_phrases,
                list(vocabulary.phrases),
                slots=dict(vocabulary.slots),
                input_rate=rate,
            )
        # A fresh decoder starts from a default cepstral mean and misreads its first utterance
        # (measured: "one two three four" -> "one eight two three"); one utterance of speech settles it.
        try:
            await recognizer.recognize(await asyncio.to_thread(self._warmup, rate))
        except BaseException:
            recognizer.close()
            raise
        return recognizer

    async def preload(self, rate: int) -> None:
        recognizer = await self._acquire(rate)
        await self._release(rate, recognizer)

    async def _acquire(self, rate: int) -> AsyncRecognizer:
        async with self._freed:
            while True:
                idle = self._idle.setdefault(rate, [])
                if idle:
                    return idle.pop()
                if self._count.get(rate, 0) < self._size:
                    self._count[rate] = self._count.get(rate, 0) + 1
                    break
                await self._freed.wait()
        try:
            recognizer = await self._create(rate)
        except BaseException:
            await self._drop(rate, None)
            raise
        self._all.append(recognizer)
        return recognizer

    async def _release(self, rate: int, recognizer: AsyncRecognizer) -> None:
        async with self._freed:
            self._idle.setdefault(rate, []).append(recognizer)
            self._freed.notify()

    async def _drop(self, rate: int, recognizer: AsyncRecognizer | None) -> None:
        if recognizer is not None:
            recognizer.close()
            self._all.remove(recognizer)
        async with self._freed:
            self._count[rate] -= 1
            self._freed.notify()

    async def recognize(self, pcm: bytes, rate: int) -> str:
        recognizer = await self._acquire(rate)
        try:
            hypothesis = await recognizer.recognize(pcm)
        except Exception:
            await self._drop(rate, recognizer)  # e.g. its worker process died: this turn fails only
            raise
        await self._release(rate, recognizer)
        return hypothesis.text

    def close(self) -> None:
        for recognizer in self._all:
            recognizer.close()


class LocalEngine:
    """Response engine and transcriber of the offline backend (see the module docstring).

    ``responder``: what to say (:func:`voxline.local.responder.load_responder`). ``voice``: the
    espeak-ng voice. ``recognizers``: recognisers per input rate (concurrent turns). ``recognition``:
    ``"thread"`` decodes in worker threads (pocketsphinx then briefly pauses the event loop),
    ``"process"`` in worker processes (about 1 s to start and ~100 MB each). Transcripts are kept
    for the last ``max_transcripts`` user items (older turns are not recognised again).
    """

    def __init__(
        self,
        responder: Responder,
        *,
        voice: str = "en-us",
        rate_wpm: int = 180,
        recognizers: int = 2,
        recognition: Literal["thread", "process"] = "thread",
        max_transcripts: int = 512,
        synthesizer_factory: Any = Synthesizer,
    ) -> None:
        if recognizers < 1:
            raise ValueError(f"recognizers must be >= 1, got {recognizers}")
        self.responder = responder
        self.voice = voice
        self.rate_wpm = rate_wpm
        self._synthesizers: dict[int, Synthesizer] = {}
        # Both output rates up front: fails now (naming the package) rather than at the first turn,
        # and the dict is never written while worker threads read it.
        for rate in (8000, 24000):
            self._synthesizers[rate] = synthesizer_factory(voice, rate_wpm, output_rate=rate)
        if recognition not in ("thread", "process"):
            raise ValueError(f"recognition must be 'thread' or 'process', got {recognition!r}")
        self._pool = _RecognizerPool(
            responder, recognizers, self._warmup_speech, in_process=recognition == "process"
        )
        self._transcripts: OrderedDict[str, asyncio.Future[str]] = OrderedDict()
        self._max_transcripts = max_transcripts
        self.turns = 0

    async def preload(self, rate: int = 8000) -> None:
        """Load a recogniser for ``rate`` now (the model takes ~0.5 s), so the first turn is quick."""
        await self._pool.preload(rate)

    def close(self) -> None:
        self._pool.close()

    def _synthesizer(self, rate: int) -> Synthesizer:
        return self._synthesizers[rate]

    def _warmup_speech(self, rate: int) -> bytes:
        silence = bytes(rate * 2 * 300 // 1000)
        return silence + self._synthesizer(rate).synthesize(_WARMUP_TEXT) + silence

    # -- input transcription -------------------------------------------------------------------------

    def _transcript(self, item_id: str, pcm: bytes, rate: int) -> asyncio.Future[str]:
        """The one recognition of ``item_id`` (started by whoever asks first)."""
        future = self._transcripts.get(item_id)
        if future is None:
            future = asyncio.ensure_future(self._pool.recognize(pcm, rate))
            self._transcripts[item_id] = future
            while len(self._transcripts) > self._max_transcripts:
                self._transcripts.popitem(last=False)
        return future

    def transcribe(self, request: TranscriptionRequest) -> Awaitable[str]:
        return asyncio.shield(self._transcript(request.item_id, request.pcm, request.rate))

    # -- responses -----------------------------------------------------------------------------------

    def respond(self, request: ResponseRequest) -> Awaitable[ScriptedResponse]:
        return self._respond(request)

    async def _respond(self, request: ResponseRequest) -> ScriptedResponse:
        conversation = [dict(item) for item in request.conversation]
        for item in conversation:
            await self._fill_transcript(item, request)
        reply = await self.responder.respond(conversation)
        self.turns += 1
        outputs: list[Say | FunctionCall] = []
        if reply.text:
            if "audio" in request.output_modalities:
                rate = _output_rate(request)
                audio = await self._synthesizer(rate).synthesize_async(reply.text)
                outputs.append(Say(reply.text, audio, rate))
            else:
                outputs.append(Say(reply.text))
        outputs.extend(FunctionCall(call.name, call.arguments_json()) for call in reply.function_calls)
        log.info(
            "local backend reply (%s%s): %r%s",
            reply.kind,
            f" {reply.intent}" if reply.intent else "",
            reply.text,
            "".join(f" + {c.name}({c.arguments_json()})" for c in reply.function_calls),
        )
        return ScriptedResponse(outputs=outputs)

    async def _fill_transcript(self, item: dict[str, Any], request: ResponseRequest) -> None:
        """Give a user audio item its transcript (the responder reads text, never audio)."""
        if item.get("type") != "message" or item.get("role") != "user":
            return
        content = item.get("content")
        if not isinstance(content, list):
            return
        item_id = str(item.get("id", ""))
        filled: list[Any] = []
        for part in content:
            if (
                isinstance(part, Mapping)
                and part.get("type") == "input_audio"
                and not part.get("transcript")
                and item_id in request.input_audio
            ):
                transcript = await asyncio.shield(
                    self._transcript(item_id, request.input_audio[item_id], request.input_rate)
                )
                part = {**part, "transcript": transcript}
            filled.append(part)
        item["content"] = filled


def _output_rate(request: ResponseRequest) -> int:
    """The rate to synthesise at: the session's output rate, so the server converts as little as it can."""
    output = dict(request.session.get("audio", {}).get("output", {}))
    output.update(request.params.get("audio", {}).get("output", {}))
    try:
        fmt = from_openai(output.get("format", {"type": "audio/pcm", "rate": 24000}))
    except ValueError:
        return 24000
    return 8000 if fmt.rate == 8000 else 24000


class LocalEventValidator(ClientEventValidator):
    """OpenAI's schema validation, then the offline backend's limits as OpenAI-style errors."""

    def validate(self, event: Any) -> list[SchemaProblem]:
        problems = super().validate(event)
        if problems:
            return problems
        return _unsupported(event)


def _unsupported_problem(what: str, path: Sequence[str | int]) -> SchemaProblem:
    return SchemaProblem(
        "unsupported_feature",
        f"{what} is not supported by voxline's embedded offline backend "
        "(set OPENAI_API_KEY to use OpenAI's Realtime API).",
        format_param(path),
    )


def _unsupported(event: Mapping[str, Any]) -> list[SchemaProblem]:
    kind = event.get("type")
    if kind == "session.update":
        session = event.get("session")
        tools = session.get("tools") if isinstance(session, Mapping) else None
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            if isinstance(tool, Mapping) and tool.get("type") == "mcp":
                return [_unsupported_problem("An MCP tool", ("session", "tools", i, "type"))]
    items: list[tuple[Any, tuple[str | int, ...]]] = []
    if kind == "conversation.item.create":
        items.append((event.get("item"), ("item",)))
    elif kind == "response.create":
        response = event.get("response")
        given = response.get("input") if isinstance(response, Mapping) else None
        for i, item in enumerate(given if isinstance(given, list) else []):
            items.append((item, ("response", "input", i)))
    for item, path in items:
        content = item.get("content") if isinstance(item, Mapping) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, Mapping) and part.get("type") == "input_image":
                return [_unsupported_problem("Image input", (*path, "content", j, "type"))]
    return []
