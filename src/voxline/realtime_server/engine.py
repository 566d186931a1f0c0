"""The Realtime server's pluggable "brain": speech detection, responses, input transcription.

Three small protocols, each with a default implementation (the scripted ones are what
``voxline.testing.FakeRealtimeServer`` uses; the embedded offline backend plugs in
:mod:`voxline.local.engine`):

- :class:`SpeechDetector` — says how likely one frame of decoded PCM16 is speech. The server runs the
  turn logic around it (``threshold``, ``prefix_padding_ms``, ``silence_duration_ms`` of the session's
  ``turn_detection``), on the audio's own sample clock. Default: :class:`EnergySpeechDetector`.
- :class:`ResponseEngine` — given a :class:`ResponseRequest` (the conversation so far, the effective
  session and the ``response.create`` parameters) returns a :class:`ScriptedResponse`: the output items
  to stream (:class:`Say` messages with text and PCM16 audio at any rate, :class:`FunctionCall` items).
  The server converts the audio to the session's output format and streams everything in OpenAI's event
  order. It may return the plan directly or as an awaitable (a slow engine does not block the socket).
  Default: :class:`ScriptedEngine`, a FIFO queue (filled by ``FakeRealtimeServer.script(...)``).
- :class:`Transcriber` — turns a committed user audio item (PCM16) into text for
  ``conversation.item.input_audio_transcription.*`` when the session enables ``audio.input.transcription``.
  Default: :class:`ScriptedTranscriber`, a FIFO queue (filled by
  ``FakeRealtimeServer.script_transcription(...)``).

Sans-I/O: nothing here opens a socket; moved here from ``voxline.testing.realtime.engine``, which
re-exports it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from voxline.audio.tone import tone

__all__ = [
    "DEFAULT_REPLY",
    "EnergySpeechDetector",
    "FunctionCall",
    "MCPCall",
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

DEFAULT_REPLY = "Hello! How can I help you today?"

# Roughly how long a text takes to say: ~15 characters a second.
_MS_PER_CHAR = 65


def speech_like_audio(text: str, rate: int = 24000) -> bytes:
    """A stand-in for synthesized speech: a tone as long as ``text`` would take to say (PCM16)."""
    duration = max(200, _MS_PER_CHAR * len(text))
    return tone(220.0, duration, rate, amplitude=0.25)


@runtime_checkable
class SpeechDetector(Protocol):
    """Voice activity of one frame. ``frame_ms`` is the frame length the detector wants.

    A detector that adapts to what it hears (a noise estimate) also has ``for_session()``, returning
    a fresh detector for one session, so that one call's line noise never changes another call's
    decisions; the server calls it for every session (see :func:`session_detector`).
    """

    frame_ms: int

    def speech_probability(self, frame: bytes, rate: int) -> float:
        """How likely ``frame`` (PCM16 mono, ``frame_ms`` long at ``rate``) is speech, 0.0 to 1.0."""
        ...


def session_detector(detector: SpeechDetector) -> SpeechDetector:
    """The detector one session uses: its own ``for_session()`` copy if it has state, else the shared one."""
    for_session = getattr(detector, "for_session", None)
    return for_session() if callable(for_session) else detector


class EnergySpeechDetector:
    """Speech probability from frame energy: ``rms / full_scale_rms``, clamped to 1.0.

    With the default ``full_scale_rms`` of 0.1 (about -20 dBFS) and OpenAI's default threshold 0.5, a
    frame counts as speech above about -26 dBFS RMS: test tones and TTS do, silence and line noise don't.
    """

    def __init__(self, frame_ms: int = 10, full_scale_rms: float = 0.1) -> None:
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, got {frame_ms}")
        if full_scale_rms <= 0:
            raise ValueError(f"full_scale_rms must be positive, got {full_scale_rms}")
        self.frame_ms = frame_ms
        self.full_scale_rms = full_scale_rms

    def speech_probability(self, frame: bytes, rate: int) -> float:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return 0.0
        rms = math.sqrt(float(np.mean(samples * samples))) / 32768.0
        return min(1.0, rms / self.full_scale_rms)


@dataclass(frozen=True, slots=True)
class Say:
    """One assistant message of a response: its text (or transcript) and, in audio mode, its audio.

    ``audio`` is PCM16 mono at ``audio_rate``; None makes a tone as long as the text would take to say.
    In text mode (``output_modalities: ["text"]``) only ``text`` is used.
    ``transcript`` overrides the audio transcript (default: ``text``).
    """

    text: str = DEFAULT_REPLY
    audio: bytes | None = None
    audio_rate: int = 24000
    transcript: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One function call item of a response. ``arguments`` is the JSON string the model emits."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class MCPCall:
    """One MCP tool call of a response; the server plays the MCP server (``output`` is what the tool
    returns, ``error`` a failure message). The session's MCP tool of ``server_label`` must be there.
    When its ``require_approval`` asks for it (OpenAI's default ``"always"``) and the conversation holds
    no approval for this tool, the response carries an ``mcp_approval_request`` instead; a later
    response with the same call runs it once an ``mcp_approval_response`` approved it (a refusal
    leaves it out)."""

    server_label: str
    name: str
    arguments: str = "{}"
    output: str = ""
    error: str | None = None


Output = Say | FunctionCall | MCPCall


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """What the server streams for one response.

    Simple form: ``ScriptedResponse(text="Hi", audio=pcm, function_calls=[FunctionCall(...)])`` — a
    message (when ``text`` or ``audio`` is given) followed by the function calls. General form:
    ``ScriptedResponse(outputs=[Say("First"), FunctionCall("f"), Say("Second")])`` in that order.

    Streaming and faults:

    - ``chunk_ms``: audio per ``response.output_audio.delta`` (OpenAI sends a few hundred ms per delta).
    - ``pace``: None streams as fast as possible (OpenAI outpaces real time); 1.0 paces audio deltas at
      real time, 2.0 twice as fast. Overrides the server's ``pace``.
    - ``delay_ms``: wall-clock pause after ``response.created`` before the output starts.
    - ``stall_after_ms``: stop streaming after this much audio and keep the response in progress until
      it is cancelled (``response.cancel``, barge-in) or released (``server.release()``). This is how a
      test holds a response open for a barge-in without waiting on a clock.
    - ``drop_after_ms``: abort the TCP connection (no close frame) after this much audio.
    - ``status``/``status_details``: end as ``incomplete`` or ``failed`` instead of ``completed``.
    - ``usage``: the ``response.done`` usage object (default: estimated from the output).
    """

    text: str | None = None
    audio: bytes | None = None
    audio_rate: int = 24000
    transcript: str | None = None
    function_calls: Sequence[FunctionCall | MCPCall] = ()
    outputs: Sequence[Output] | None = None
    chunk_ms: int = 200
    pace: float | None = None
    delay_ms: float = 0.0
    stall_after_ms: int | None = None
    drop_after_ms: int | None = None
    status: Literal["completed", "incomplete", "failed"] = "completed"
    status_details: Mapping[str, Any] | None = None
    usage: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, got {self.chunk_ms}")
        if self.pace is not None and self.pace <= 0:
            raise ValueError(f"pace must be positive or None, got {self.pace}")
        if self.outputs is not None and (
            self.text is not None or self.audio is not None or self.function_calls
        ):
            raise ValueError("give either outputs=[...] or text/audio/function_calls, not both")

    def items(self) -> list[Output]:
        """The output items in streaming order."""
        if self.outputs is not None:
            return list(self.outputs)
        items: list[Output] = []
        if self.text is not None or self.audio is not None:
            items.append(Say(self.text or "", self.audio, self.audio_rate, self.transcript))
        items.extend(self.function_calls)
        return items


@dataclass(frozen=True, slots=True)
class ResponseRequest:
    """Everything a response engine may use to answer.

    ``conversation``: the conversation items (server shape) the response sees — the session's
    conversation, or ``response.input`` when the client gave one. ``session``: the effective session
    object. ``params``: the ``response`` object of ``response.create`` (empty for VAD auto-responses).
    ``output_modalities``: ``["audio"]`` or ``["text"]`` after applying ``params``.
    ``input_audio``: for each user audio item id, its audio as PCM16 with ``input_rate``.
    """

    response_id: str
    conversation: Sequence[Mapping[str, Any]]
    session: Mapping[str, Any]
    params: Mapping[str, Any]
    output_modalities: Sequence[str]
    input_audio: Mapping[str, bytes] = field(default_factory=dict)
    input_rate: int = 24000


@runtime_checkable
class ResponseEngine(Protocol):
    """The brain of the server: what to answer each ``response.create`` (or VAD turn) with."""

    def respond(self, request: ResponseRequest) -> ScriptedResponse | Awaitable[ScriptedResponse]:
        """The response to stream for ``request`` (or an awaitable of it)."""
        ...


class ScriptedEngine:
    """Plays queued :class:`ScriptedResponse` objects in order; a default reply when the queue is empty."""

    def __init__(self, default: ScriptedResponse | None = None) -> None:
        self.queue: deque[ScriptedResponse] = deque()
        self.default = default or ScriptedResponse(text=DEFAULT_REPLY)

    def respond(self, request: ResponseRequest) -> ScriptedResponse:
        return self.queue.popleft() if self.queue else self.default


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """A committed user audio item to transcribe: PCM16 mono at ``rate``, and the session's settings."""

    item_id: str
    pcm: bytes
    rate: int
    transcription: Mapping[str, Any]


@runtime_checkable
class Transcriber(Protocol):
    """What the caller said in a committed audio buffer (input audio transcription)."""

    def transcribe(self, request: TranscriptionRequest) -> str | Awaitable[str]:
        """The transcript of ``request`` (or an awaitable of it)."""
        ...


class ScriptedTranscriber:
    """Returns queued transcripts in order; ``default`` when the queue is empty."""

    def __init__(self, default: str = "") -> None:
        self.queue: deque[str] = deque()
        self.default = default

    def transcribe(self, request: TranscriptionRequest) -> str:
        return self.queue.popleft() if self.queue else self.default
