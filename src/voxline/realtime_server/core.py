"""Sans-I/O core of the Realtime server: one session's state machine.

The shape every voxline core has: data in with the time, data to send and events out, the next
deadline.

- In: :meth:`~RealtimeSessionCore.receive_text` / :meth:`~RealtimeSessionCore.receive_binary`, each
  with ``now_ms`` (milliseconds on any monotonic scale, the same for every call of one session).
- Out: :meth:`~RealtimeSessionCore.data_to_send` -- what to write, in order (:data:`~.events.Outgoing`:
  server events as dicts, to send as compact JSON; :class:`~.events.RawFrame`; :class:`~.events.Close`;
  :class:`~.events.Abort`); :meth:`~RealtimeSessionCore.events_received` -- the engines' awaitables
  (:class:`~.events.PendingWork`) for the I/O layer to await and hand back with
  :meth:`~RealtimeSessionCore.resolve`.
- Time: :meth:`~RealtimeSessionCore.next_deadline` says when the active response's next event is
  due at its pace; :meth:`~RealtimeSessionCore.tick` queues it then.
- Commands: ``start``, ``resolve``, ``release``, ``set_pace``, ``send_event``, ``send_raw``, ``close``,
  ``abort``, ``connection_lost``, ``clear_records``. Everything else is read-only from outside.

No sockets, no asyncio, no clocks read: the wall time the session starts at (for ``expires_at``) is a
constructor argument, the pace counts on ``now_ms``, and every audio timing (``audio_start_ms``,
``audio_end_ms``, truncation, the idle timeout) comes from sample counts.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, NoReturn, Self, TypeVar, overload

from voxline.audio import AudioFormat

from . import ga
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
    """An attribute of the core kept by one of its parts, read through the core (never assigned)."""

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

    def __set__(self, obj: object, value: T) -> NoReturn:
        raise AttributeError(f"{self.name!r} is read-only: the core changes it through its commands")


class RealtimeSessionCore:
    """One Realtime session: configuration, conversation, input audio buffer, turn detection, responses.

    ``kind`` is ``"realtime"`` or ``"transcription"`` (``?intent=transcription``). ``now``: the wall
    time the session starts at (Unix seconds; ``expires_at`` is an hour later). ``pace``: None streams
    responses as fast as they are ticked, 1.0 at real time (a plan's own ``pace`` wins). The callbacks
    let the owner mirror what happens (the server keeps server-wide lists); ``keep_record`` says which
    client and server events the session's own ``received`` and ``sent`` keep (default: all; the
    callbacks see every one).
    """

    # The parts' state, read through the core.

    kind = _Delegated[Literal["realtime", "transcription"]]("config")
    session = _Delegated[dict[str, Any]]("config", doc="The effective session object (last session.updated).")
    items = _Delegated[list[dict[str, Any]]]("conversation")
    item_audio = _Delegated[dict[str, tuple[bytes, AudioFormat]]]("conversation")
    truncations = _Delegated[list[Truncation]]("conversation")
    input_audio = _Delegated[bytearray]("input", doc="Every byte appended, as received.")
    detector = _Delegated[SpeechDetector]("input")
    transcriber = _Delegated[Transcriber]("input")
    engine = _Delegated[ResponseEngine]("responses")
    pace = _Delegated[float | None]("responses", doc="The session's pace (set_pace changes it).")
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
        keep_record: Callable[[Mapping[str, Any]], bool] | None = None,
        sideband: bool = False,
        mcp_servers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        _check_pace(pace)
        self.validator = validator
        self.id = new_id("sess")
        self.conversation_id = new_id("conv")
        self.config = SessionConfig(kind, model, now, instructions)
        self.out = SessionOutput(on_sent=on_sent, on_violation=on_violation, keep_record=keep_record)
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
        # An OpenAI SIP/WebRTC call's sideband (``?call_id=``): OpenAI plays the audio, the client
        # gets output_audio_buffer.* instead of audio deltas, may send output_audio_buffer.clear,
        # and DTMF from the caller arrives as input_audio_buffer.dtmf_event_received.
        self.sideband = sideband
        self.responses.sideband = sideband
        self.mcp_servers = mcp_servers  # server_label -> its tools (MCP listing; None: none reachable)
        self._received: list[dict[str, Any]] = []
        self._closed = False
        self._on_received = on_received
        self._keep_record = keep_record
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self.input.on_append,
            "input_audio_buffer.commit": self.input.on_commit,
            "input_audio_buffer.clear": self.input.on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.retrieve": self.conversation.on_retrieve,
            "conversation.item.delete": self.conversation.on_delete,
            "conversation.item.truncate": self.conversation.on_truncate,
            "response.create": self.responses.on_create,
            "response.cancel": self.responses.on_cancel,
        }

    # -- read-only views of the parts' state ------------------------------------------------------------

    @property
    def received(self) -> list[dict[str, Any]]:
        """The client events received (as ``keep_record`` keeps them), in order."""
        return self._received

    @property
    def closed(self) -> bool:
        """Closed, aborted or the connection lost: nothing more streams (what is queued still goes out)."""
        return self._closed

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

    def receive_binary(self, data: bytes, now_ms: float) -> None:
        """A binary frame from the client: OpenAI answers it with an ``invalid_event`` error."""
        self.out.reject(
            None,
            SchemaProblem(
                "invalid_event", "Expected a text WebSocket message; binary frames are not supported."
            ),
            what="<binary frame>",
        )
        self.responses.start_clock(now_ms)

    def receive_text(self, text: str, now_ms: float) -> None:
        """A text frame from the client: one client event (JSON)."""
        try:
            event = json.loads(text)
        except ValueError as exc:
            problem = SchemaProblem("invalid_json", f"The message could not be parsed as JSON: {exc}.")
            self.out.reject(None, problem, what="<non-JSON text>")
            self.responses.start_clock(now_ms)
            return
        self.receive_event(event, now_ms)

    def receive_event(self, event: Any, now_ms: float) -> None:
        """Handle one decoded client event: validate it, then act on it."""
        self._handle(event)
        self.responses.start_clock(now_ms)

    def _handle(self, event: Any) -> None:
        if isinstance(event, dict):
            if self._keep_record is None or self._keep_record(event):
                self._received.append(event)
            if self._on_received is not None:
                self._on_received(event)
        if self.sideband and isinstance(event, dict) and event.get("type") == "output_audio_buffer.clear":
            self._on_output_audio_buffer_clear(event)
            return
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
        if problem is None:
            problem = ga.session_problem(update)
        if problem is not None:
            self.out.reject(event, problem)
            return
        listed_before = ga.mcp_tools(self.session)
        if self.config.apply(update):
            self.input.format_changed()
        self.out.emit({"type": "session.updated", "session": copy.deepcopy(self.session)})
        for label in ga.mcp_tools(self.session).keys() - listed_before.keys():
            item, events = ga.mcp_listing(label, self.mcp_servers, self.conversation.last_id)
            self.conversation.append(item)
            for server_event in events:
                self.out.emit(server_event)

    def _on_item_create(self, event: dict[str, Any]) -> None:
        problem = ga.item_problem(event["item"])
        if problem is not None:
            self.out.reject(event, problem)
            return
        self.conversation.on_create(event)

    def _on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        # The schema (RealtimeClientEventOutputAudioBufferClear) has only type and event_id; the
        # WebSocket validator does not take it, since a plain WebSocket session refuses it.
        for key, value in event.items():
            if key == "event_id" and not isinstance(value, str):
                got = type(value).__name__
                problem = SchemaProblem(
                    "invalid_type",
                    f"Invalid type for 'event_id': expected a string, but got {got} instead.",
                    "event_id",
                )
                self.out.reject(event, problem)
                return
            if key not in ("type", "event_id"):
                problem = SchemaProblem("unknown_parameter", f"Unknown parameter: '{key}'.", key)
                self.out.reject(event, problem)
                return
        self.responses.clear_output()

    def apply_call_session(self, session: Mapping[str, Any]) -> None:
        """The configuration a SIP call was accepted with (``/accept``'s body), before ``start``."""
        self.config.apply({k: v for k, v in session.items() if k != "type"})

    def send_dtmf(self, digit: str, received_at: int) -> None:
        """The caller pressed a key on the SIP call (``received_at``: Unix seconds)."""
        self.out.emit(
            {"type": "input_audio_buffer.dtmf_event_received", "event": digit, "received_at": received_at}
        )

    def _response_finished(self) -> None:
        self.input.response_finished()

    def resolve(self, work: PendingWork, result: Any, now_ms: float) -> None:
        """Hand in what an awaitable from :meth:`events_received` produced (``BaseException``: it failed)."""
        if work.kind == "transcription":
            self.input.transcribed(work.key, result)
        else:
            self.responses.resolved(work.key, result)
        self.responses.start_clock(now_ms)

    # -- output ----------------------------------------------------------------------------------------------

    def data_to_send(self) -> list[Outgoing]:
        """What to write, in order, since the last call: server event dicts (send each as compact JSON),
        :class:`RawFrame` (send as is), :class:`Close` / :class:`Abort` (end the connection: nothing
        after one is sent). Every server event in it is already recorded (``sent``, ``on_sent``)."""
        return self.out.take()

    def events_received(self) -> list[PendingWork]:
        """The engine work the client's events started (a response plan, an input transcript, when an
        engine answered with an awaitable): await each and hand its result to :meth:`resolve`."""
        return self.out.take_work()

    # -- time: the active response at its pace ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run next (``now_ms`` scale): the active response's next event is due.

        None: nothing to stream (no response, its plan not there yet, held by ``stall_after_ms``, or the
        session closed). ``-inf`` when a response can stream but its clock has not started yet (it was
        released from a stall before any audio): due at once, and that tick starts its clock.
        """
        if self._closed:
            return None
        return self.responses.next_deadline()

    def tick(self, now_ms: float) -> None:
        """Queue the active response's next event when it is due at ``now_ms`` (at most one a tick).

        One event a tick, so that the I/O layer writes it before the response goes on: a slow client
        holds the stream back, and what it sends meanwhile (``response.cancel``, a barge-in) lands
        between two events as it does live. A plan's ``drop_after_ms`` reached: :class:`Abort`.
        """
        if self._closed:
            return
        self.responses.start_clock(now_ms)
        deadline = self.responses.next_deadline()
        if deadline is None or deadline > now_ms:
            return
        if self.responses.drop_due:
            self.abort()
            return
        self.responses.advance()

    # -- commands --------------------------------------------------------------------------------------------

    def release(self) -> None:
        """Let a response held by ``stall_after_ms`` go on streaming."""
        self.responses.release()

    def set_pace(self, pace: float | None) -> None:
        """Stream responses at ``pace`` from now on, the active one included (None: as fast as ticked).

        The active response's next deadline is recomputed from its start at the new pace; a plan's own
        ``pace`` still wins.
        """
        _check_pace(pace)
        self.responses.pace = pace

    def clear_records(self) -> None:
        """Forget this session's records: ``received``, ``sent`` and ``input_audio`` (its conversation,
        buffer and state stay). For a long-running server; the callbacks' mirrors are the owner's."""
        self._received.clear()
        self.out.sent.clear()
        self.input.input_audio.clear()

    def send_raw(self, data: str | bytes) -> None:
        """Queue a frame exactly as given (a fault: binary data, non-JSON text); not recorded."""
        self.out.queue(RawFrame(data))

    def send_event(self, event: Mapping[str, Any]) -> None:
        """Queue any event dict exactly as given (recorded in ``sent`` like every server event)."""
        event = dict(event)
        self.out.record_sent(event)
        self.out.queue(event)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket with ``code`` and ``reason`` after what is queued."""
        self._closed = True
        self.out.queue(Close(code, reason))

    def expire(self) -> None:
        """End the session as OpenAI does at its maximum duration: an ``error`` ``session_expired``
        (whatever is in flight), then close 1001."""
        if self._closed:
            return
        self.out.emit(error_event("session_expired", SESSION_EXPIRED_MESSAGE))
        self.close(CLOSE_EXPIRED, "session expired")

    def abort(self) -> None:
        """Drop the connection after what is queued, without a close frame."""
        self._closed = True
        self.out.queue(Abort())

    def connection_lost(self) -> None:
        """The client's side is gone (it closed, or the connection broke): stop streaming."""
        self._closed = True


# What OpenAI sends when a session reaches its 60 minutes, and the close code that follows (going
# away), as reported by its users (docs/long-calls.md).
SESSION_EXPIRED_MESSAGE = "Your session hit the maximum duration of 60 minutes."
CLOSE_EXPIRED = 1001


def _check_pace(pace: float | None) -> None:
    if pace is not None and pace <= 0:
        raise ValueError(f"pace must be positive or None, got {pace}")
