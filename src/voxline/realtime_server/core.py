"""Sans-I/O core of the Realtime server: one session's state machine.

Text or bytes from the client go in (:meth:`RealtimeSessionCore.receive_text` / ``receive_binary``);
server events, close and abort commands come out of ``outbox``; the streaming response is pulled one
event at a time with :meth:`~RealtimeSessionCore.next_response_event` so the I/O layer decides the
pace. No sockets, no asyncio, no clocks: the wall time (for ``expires_at``) is an argument, and every
audio timing (``audio_start_ms``, ``audio_end_ms``, truncation) comes from sample counts.

:class:`RealtimeSessionCore` validates each client event and dispatches it to the part of the session
it concerns, each in its own module:

- :mod:`.session` -- the session object: defaults, ``session.update`` checks and merging;
- :mod:`.input_audio` -- the input buffer, turn detection, commits, input transcription;
- :mod:`.conversation` -- the items and their audio, ``conversation.item.*``;
- :mod:`.responses` -- ``response.create``/``cancel``, streaming in OpenAI's order, usage;
- :mod:`.events` -- the output channel (:class:`~.events.SessionOutput`) and what it carries.

Moved here from ``voxline.testing.realtime.core``, which re-exports it.
"""

from __future__ import annotations

import copy
import json
import logging
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, Self, TypeVar, overload

from voxline.audio import AudioFormat

from .conversation import Conversation, Truncation
from .engine import ResponseEngine, SpeechDetector, Transcriber
from .events import Abort, Close, Outgoing, PendingWork, RawFrame, SessionOutput, error_event, new_id
from .input_audio import MIN_COMMIT_MS, InputAudio
from .responses import Responses
from .session import DEFAULT_INSTRUCTIONS, SESSION_LIFETIME_S, SessionConfig
from .validation import EventValidator, SchemaProblem

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "MIN_COMMIT_MS",
    "SESSION_LIFETIME_S",
    "Abort",
    "Close",
    "Outgoing",
    "PendingWork",
    "RawFrame",
    "RealtimeSessionCore",
    "Truncation",
    "error_event",
    "new_id",
]

log = logging.getLogger("voxline.realtime_server")

T = TypeVar("T")


class _Delegated(Generic[T]):
    """An attribute of the core kept by one of its parts: read and assigned through the core."""

    def __init__(self, part: str, *, doc: str | None = None) -> None:
        self.part = part
        self.name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Self: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> T | Self:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self.part), self.name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class RealtimeSessionCore:
    """One Realtime session: configuration, conversation, input audio buffer, turn detection, responses.

    ``kind`` is ``"realtime"`` or ``"transcription"`` (``?intent=transcription``). The callbacks let the
    owner mirror what happens (the server keeps server-wide lists).
    """

    # The parts' state, read and assigned through the core (as when these were the core's own).

    kind = _Delegated[Literal["realtime", "transcription"]]("config")
    session = _Delegated[dict[str, Any]]("config", doc="The effective session object (last session.updated).")
    items = _Delegated[list[dict[str, Any]]]("conversation")
    item_audio = _Delegated[dict[str, tuple[bytes, AudioFormat]]]("conversation")
    truncations = _Delegated[list[Truncation]]("conversation")
    input_audio = _Delegated[bytearray]("input", doc="Every byte appended, as received.")
    detector = _Delegated[SpeechDetector]("input")
    transcriber = _Delegated[Transcriber]("input")
    engine = _Delegated[ResponseEngine]("responses")
    pace = _Delegated[float | None]("responses")
    outbox = _Delegated[deque[Outgoing]]("out")
    pending = _Delegated[deque[PendingWork]]("out")
    sent = _Delegated[list[dict[str, Any]]]("out")
    violations = _Delegated[list[str]]("out")
    internal_errors = _Delegated[list[str]]("out")

    def __init__(
        self,
        *,
        kind: Literal["realtime", "transcription"],
        model: str | None,
        now: float,
        engine: ResponseEngine,
        detector: SpeechDetector,
        transcriber: Transcriber,
        validator: EventValidator,
        instructions: str = DEFAULT_INSTRUCTIONS,
        pace: float | None = None,
        on_received: Callable[[dict[str, Any]], None] | None = None,
        on_sent: Callable[[dict[str, Any]], None] | None = None,
        on_violation: Callable[[str], None] | None = None,
        on_truncation: Callable[[Truncation], None] | None = None,
    ) -> None:
        self.validator = validator
        self.id = new_id("sess")
        self.conversation_id = new_id("conv")
        self.config = SessionConfig(kind, model, now, instructions)
        self.out = SessionOutput(on_sent=on_sent, on_violation=on_violation)
        self.conversation = Conversation(self.config, self.out, on_truncation)
        self.responses = Responses(
            self.config,
            self.conversation,
            self.out,
            engine,
            conversation_id=self.conversation_id,
            pace=pace,
            on_finished=self._response_finished,
        )
        self.input = InputAudio(
            self.config,
            self.conversation,
            self.responses,
            self.out,
            detector=detector,
            transcriber=transcriber,
        )
        self.received: list[dict[str, Any]] = []
        self.closed = False
        self._on_received = on_received
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self.input.on_append,
            "input_audio_buffer.commit": self.input.on_commit,
            "input_audio_buffer.clear": self.input.on_clear,
            "conversation.item.create": self.conversation.on_create,
            "conversation.item.retrieve": self.conversation.on_retrieve,
            "conversation.item.delete": self.conversation.on_delete,
            "conversation.item.truncate": self.conversation.on_truncate,
            "response.create": self.responses.on_create,
            "response.cancel": self.responses.on_cancel,
        }

    # -- read-only views of the parts' state ------------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return self.config.input_format

    @property
    def output_format(self) -> AudioFormat:
        return self.config.output_format

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        return self.config.turn_detection

    @property
    def response_active(self) -> bool:
        return self.responses.active

    @property
    def active_response_id(self) -> str | None:
        return self.responses.active_id

    @property
    def buffered_ms(self) -> float:
        return self.input.buffered_ms

    # -- input -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Queue ``session.created``."""
        self.session["id"] = self.id
        self.out.emit({"type": "session.created", "session": copy.deepcopy(self.session)})

    def receive_binary(self, data: bytes) -> None:
        self.out.reject(
            None,
            SchemaProblem(
                "invalid_event", "Expected a text WebSocket message; binary frames are not supported."
            ),
            what="<binary frame>",
        )

    def receive_text(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError as exc:
            problem = SchemaProblem("invalid_json", f"The message could not be parsed as JSON: {exc}.")
            self.out.reject(None, problem, what="<non-JSON text>")
            return
        self.receive_event(event)

    def receive_event(self, event: Any) -> None:
        """Handle one decoded client event: validate it, then act on it."""
        if isinstance(event, dict):
            self.received.append(event)
            if self._on_received is not None:
                self._on_received(event)
        problems = self.validator.validate(event)
        if problems:
            self.out.reject(event if isinstance(event, dict) else None, problems[0])
            return
        handler = self._handlers[event["type"]]
        try:
            handler(event)
        except Exception:
            # A fault in the server itself: answer like OpenAI's own server errors and keep the session;
            # tests see it in ``internal_errors`` (and the log), never as a silent hang.
            log.exception("Realtime session core failed on %s", event["type"])
            self.out.internal_errors.append(f"{event['type']}: {traceback.format_exc(limit=3)}")
            self.out.emit(
                error_event(
                    None,
                    "The server had an error while processing your request. Sorry about that!",
                    None,
                    event.get("event_id") if isinstance(event.get("event_id"), str) else None,
                    error_type="server_error",
                )
            )

    def _on_session_update(self, event: dict[str, Any]) -> None:
        update: Mapping[str, Any] = event["session"]
        problem = self.config.update_problem(update, assistant_audio_sent=self.responses.assistant_audio_sent)
        if problem is not None:
            self.out.reject(event, problem)
            return
        if self.config.apply(update):
            self.input.format_changed()
        self.out.emit({"type": "session.updated", "session": copy.deepcopy(self.session)})

    def _response_finished(self) -> None:
        self.input.response_finished()

    def resolve(self, work: PendingWork, result: Any) -> None:
        """Hand in what an awaitable from an engine produced (``BaseException`` when it failed)."""
        if work.kind == "transcription":
            self.input.transcribed(work.key, result)
        else:
            self.responses.resolved(work.key, result)

    # -- the response, pulled by the I/O layer: due time, then the event -----------------------------------

    def next_due_ms(self) -> float | None:
        """When the next response event is due, in ms after the response started; None: nothing to send."""
        if self.closed:
            return None
        return self.responses.next_due_ms()

    def next_response_event(self) -> dict[str, Any] | None:
        """The next event of the active response, stamped and recorded; None when there is none."""
        if self.next_due_ms() is None:
            return None
        if self.responses.drop_due:
            self.abort()
            return None
        return self.responses.next_event()

    def release(self) -> None:
        """Let a response held by ``stall_after_ms`` go on streaming."""
        self.responses.release()

    # -- faults and closing ----------------------------------------------------------------------------------

    def send_raw(self, data: str | bytes) -> None:
        self.out.outbox.append(RawFrame(data))

    def send_event(self, event: Mapping[str, Any]) -> None:
        """Queue any event dict exactly as given (recorded in ``sent`` like every server event)."""
        event = dict(event)
        self.out.record_sent(event)
        self.out.outbox.append(event)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True
        self.out.outbox.append(Close(code, reason))

    def abort(self) -> None:
        self.closed = True
        self.out.outbox.append(Abort())
