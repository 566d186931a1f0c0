"""The OpenAI Realtime API client (GA wire protocol over WebSocket), a thin asyncio layer over
:class:`~voxline.openai.realtime_protocol.RealtimeProtocol`.

Command methods return at once and send in call order. Listener events are dispatched from one
reader task, so a scenario that registers listeners right after ``await create_realtime_api_client``
misses nothing: ``HTTPResponse``, ``ConnectorInformation`` and ``session.created`` are delivered
only once the scenario yields to the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload
from urllib.parse import urlencode, urlsplit, urlunsplit

from .._tasks import background
from ..audio import PCM16_24K, AudioFormat, Frame
from ..context import SessionContext, adopt, current_session
from ..errors import EndedError
from ..eventtarget import Event
from ..logs import mask_secret, redacting_logger
from ..media import ClearMediaBufferParameters, FormatAdapter, MediaUnit
from ..media.clock import AsyncioMediaClock, MediaClock
from ..media.playout import Playout, PlayoutBuffer
from ..telemetry import NO_METERS, TELEMETRY, CallMeters
from ._common import MessageLog, Tracer, connector_information, new_id, redact_url
from .events import REALTIME_SERVER_TYPES, Events, RealtimeAPIClientType, RealtimeAPIEvents
from .formats import to_openai
from .params import DEFAULT_BASE_URL, RealtimeAPIClientParameters, build_parameters
from .realtime_protocol import ERROR_CODES, ErrorClass, MessageKind, RealtimeProtocol, classify_error
from .session_carry import RUNTIME_MAX_SESSION_DURATION_S
from .session_switch import SessionSwitching
from .websocket import HandshakeFailed, WebSocketClient, open_websocket

if TYPE_CHECKING:
    from collections.abc import Callable

    from .typed import MediaEndedEvent, MediaStartedEvent, RealtimeAPIClientOptions, RealtimeEventType

log = logging.getLogger("voxline.openai.realtime")

OPEN_TIMEOUT_S = 15.0
# Keepalive tuned for calls: a socket that stops answering is reported within about 10 s (a ping
# every 4 s, 4 s for its pong, 2 s for the TCP close). websockets' defaults (20 + 20 + 10 s) left a
# dead model behind a live caller for most of a minute.
PING_INTERVAL_S = 4.0
PING_TIMEOUT_S = 4.0
CLOSE_TIMEOUT_S = 2.0


class RealtimeAPIError(Exception):
    """The Realtime endpoint refused the connection (no 101) or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ClientClosedError(EndedError):
    """A command was sent on a client whose WebSocket is closed."""


def realtime_url(
    base_url: str, model: str, client_type: RealtimeAPIClientType, call_id: str | None = None
) -> str:
    """``https://api.openai.com/`` -> ``wss://api.openai.com/v1/realtime?model=...``.

    ``http`` becomes ``ws`` and ``https`` becomes ``wss``; a base URL that already ends in ``/v1`` or
    ``/v1/realtime`` (as OpenAI-compatible servers are often given) is not doubled.
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/realtime"):
        path = path + "/realtime" if path.endswith("/v1") else path + "/v1/realtime"
    if call_id is not None:
        query = {"call_id": call_id}  # an OpenAI SIP/WebRTC call's sideband (voxline.openai.calls)
    elif client_type is RealtimeAPIClientType.TRANSCRIPTION:
        query = {"intent": "transcription"}
    else:
        query = {"model": model}
    extra = parts.query + "&" if parts.query else ""
    return urlunsplit((scheme, parts.netloc, path, extra + urlencode(query), ""))


def default_base_url() -> str:
    """The base URL when the scenario gives none: the runtime's choice (the embedded backend), then
    ``OPENAI_BASE_URL`` (as the official SDKs read it), then OpenAI."""
    session = current_session.get()
    chosen = session.realtime_base_url if session is not None else None
    return chosen or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def _error_message(body: bytes) -> tuple[str, str | None]:
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else {}
        message = error.get("message") if isinstance(error, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message, code if isinstance(code, str) else None
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return (text[:500] or "no error message"), None


class RealtimeAPIClient(SessionSwitching, MediaUnit):
    """``OpenAI.RealtimeAPIClient``: one Realtime session over one WebSocket, and a media unit.

    Audio it receives (``call.send_media_to(client)``) is appended to the model's input buffer in the
    session's input format. Model audio goes into a playout buffer that leaves paced on the shared 20 ms
    clock to every sink (``client.send_media_to(call)``). Unless the scenario sets formats itself, the
    session's formats follow the connected units: G.711 in and out for a G.711 call, bytes untouched.
    """

    _event_aliases: Mapping[str, str] = {
        **{provider_type: str(constant) for provider_type, constant in REALTIME_SERVER_TYPES.items()},
        **{member.name: str(member) for member in Events},
    }
    _event_enums = (RealtimeAPIEvents, Events)

    if TYPE_CHECKING:
        # For mypy (voxline.openai.typed): a constant or a provider event type, nothing else.
        @overload  # type: ignore[override]
        def add_event_listener(
            self,
            event: Literal[Events.WebSocketMediaStarted],
            callback: Callable[[MediaStartedEvent], Any] | Callable[[Event], Any],
        ) -> None: ...
        @overload
        def add_event_listener(
            self,
            event: Literal[Events.WebSocketMediaEnded],
            callback: Callable[[MediaEndedEvent], Any] | Callable[[Event], Any],
        ) -> None: ...
        @overload
        def add_event_listener(
            self, event: RealtimeAPIEvents | Events | RealtimeEventType, callback: Callable[[Event], Any]
        ) -> None: ...
        def add_event_listener(self, event: Any, callback: Any) -> None: ...

    def __init__(self, parameters: RealtimeAPIClientParameters, clock: MediaClock | None = None) -> None:
        super().__init__()
        self._params = parameters
        self._id = new_id()
        self._core = RealtimeProtocol(parameters.server_silence_timeout_s)
        self._url = realtime_url(parameters.base_url, parameters.model, parameters.type, parameters.call_id)
        self._ws: WebSocketClient | None = None
        self._delivering = False  # messages reach listeners once the scenario has had a turn
        self._finished: asyncio.Task[None] | None = None
        self._unsent = 0  # commands dropped because the socket was already closing
        self._closed = False
        self._close_reported = False
        self._tracer = (
            Tracer.for_client("realtime", self._id, parameters.privacy) if parameters.trace else None
        )
        self._msglog = MessageLog(log, self._id, parameters.privacy)
        self._clock: MediaClock | None = clock
        self._input_adapter = FormatAdapter(PCM16_24K)
        self._playout: Playout | None = None
        self._negotiated: dict[str, AudioFormat] = {}
        self._closed_here = False  # close() was called: the close that follows is ours
        # The session this client runs in hears how its connect ended (the runtime's readiness):
        # good at session.created; bad when the handshake fails, or a fatal error or the close
        # comes first (a refused key is an error event after the 101 at OpenAI and the fake).
        self._session: SessionContext | None = current_session.get()
        self._connect_reported = False
        # Metrics: the meters of the call this client hears (input) and speaks to (output), the time
        # the message being handled was read, the answer whose first audio was stamped.
        self._in_meters: CallMeters = NO_METERS
        self._out_meters: CallMeters = NO_METERS
        self._read_at = 0.0
        self._audio_key: tuple[str | None, int] | None = None
        self._finish_started = asyncio.Event()
        self._init_switching()  # session recycle and reconnect (session_switch.py)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RealtimeAPIClient {self._id} {redact_url(self._url)} {state}>"

    @property
    def media_format(self) -> AudioFormat:  # type: ignore[override]
        """The format of the model audio this unit sends (the session's output format)."""
        return self._core.output_format

    # -- lifecycle --------------------------------------------------------------------------------

    def _connect_ended(self, error: str | None) -> None:
        if self._connect_reported:
            return
        self._connect_reported = True
        if self._session is not None:
            try:
                self._session.model_connect(error)
            except Exception:  # the session's bookkeeping must not break the client
                log.exception("Realtime client %s: reporting its connect failed", self._id)

    async def _open(self) -> None:
        # Whatever shape the key has, no log line shows it (the header patterns cover sk-... only).
        mask_secret(self._params.api_key)
        try:
            await self._handshake()
        except RealtimeAPIError as exc:
            self._connect_ended(str(exc))
            raise

    async def _handshake(self) -> None:
        ws = await self._connect_ws()
        self._ws = ws
        # Messages are held until the scenario has had a turn: a listener it registers right after
        # `await create_realtime_api_client(...)` still gets HTTPResponse and session.created.
        ws.closed.add_done_callback(self._socket_closed)
        handshake = ws.response
        assert handshake is not None
        http_response = {
            "status": handshake.status_code,
            "reason": handshake.reason_phrase,
            "headers": dict(handshake.headers.raw_items()),
        }
        info = connector_information(
            self._id, self._url, self._tracer, model=self._params.model, type=self._params.type.value
        )
        asyncio.get_running_loop().call_soon(self._start_delivery, http_response, info)

    async def _connect_ws(self) -> WebSocketClient:
        """Open one WebSocket to the endpoint (the first session, or the next one of a switch)."""
        headers = {"Authorization": f"Bearer {self._params.api_key}"}
        try:
            ws = await open_websocket(
                self._url,
                headers=headers,
                user_agent=f"voxline/{__import__('voxline').__version__}",
                open_timeout=OPEN_TIMEOUT_S,
                ping_interval=PING_INTERVAL_S,
                ping_timeout=PING_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                # Its debug lines include the request headers: the key is masked at the source.
                logger=redacting_logger("websockets.client"),
            )
        except HandshakeFailed as exc:
            response = exc.response
            if response is None:
                raise RealtimeAPIError(f"cannot connect to {redact_url(self._url)}: {exc}") from None
            message, code = _error_message(bytes(response.body or b""))
            raise RealtimeAPIError(message, status=response.status_code, code=code) from None
        except (OSError, TimeoutError, ValueError) as exc:
            raise RealtimeAPIError(f"cannot connect to {redact_url(self._url)}: {exc}") from None
        return ws

    def _start_delivery(self, http_response: dict[str, Any], info: dict[str, Any]) -> None:
        ws = self._ws
        assert ws is not None
        self._emit(RealtimeAPIEvents.HTTPResponse, http_response)
        self._emit(RealtimeAPIEvents.ConnectorInformation, info)
        self._delivering = True
        self._session_opened()
        self._start_reading(ws)
        if ws.closed.done() and self._finished is None:
            self._socket_closed(ws.closed)

    def _start_reading(self, ws: WebSocketClient) -> None:
        """Read ``ws``; once a switch has replaced it, what it still sends is not the client's."""

        def on_text(text: str) -> None:
            if ws is self._ws:
                self._handle_text(text)

        def on_binary(data: bytes) -> None:
            if ws is self._ws:
                self._handle_binary(data)

        ws.start(on_text, on_binary)

    def close(self) -> None:
        """Close the WebSocket (or the connection attempt). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closed_here = True
        self._stop_media()
        self._stop_switching()
        if self._ws is not None:
            self._ws.close()  # what was sent before is on the wire already, in order

    def _socket_closed(self, closed: asyncio.Future[tuple[int, str]]) -> None:
        if not self._delivering or self._finished is not None:
            return  # reported once delivery has started (_start_delivery)
        ws = self._ws
        if ws is None or closed is not ws.closed:
            return  # a session a switch has replaced
        if self._close_handled(ws):
            return  # a switch or a reconnect takes over (session_switch.py)
        self._end()

    def _end(self) -> None:
        self._finished = background(self._finish(), name=f"voxline-realtime-close-{self._id}")
        self._finish_started.set()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed and ``on_web_socket_close`` has run."""
        if self._ws is None:
            return
        await self._ws.wait_closed()
        await self._finish_started.wait()  # a reconnect may come in between
        assert self._finished is not None
        await asyncio.shield(self._finished)

    def id(self) -> str:
        return self._id

    def web_socket_id(self) -> str:
        return str(self._ws.id) if self._ws is not None else ""

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def privacy(self) -> bool:
        """Created with ``privacy``: no message content in logs and traces (nor in voxline's call
        records and spans)."""
        return self._params.privacy

    def statistics(self) -> dict[str, Any]:
        if not self._params.statistics:
            raise RuntimeError("statistics are off for this client: create it with statistics=True")
        return self._core.statistics()

    # -- commands ---------------------------------------------------------------------------------

    def _send(
        self, event_type: str, parameters: Mapping[str, Any] | None, *, by_scenario: bool = True
    ) -> None:
        if self._closed:
            raise ClientClosedError(f"cannot send {event_type}: the Realtime client {self._id} is closed")
        self._core.send(event_type, parameters, time.monotonic(), by_scenario=by_scenario)
        self._carry.note_sent(event_type, parameters, by_scenario=by_scenario)
        for text in self._core.data_to_send():
            self._write(text)
            self._msglog.message("out", event_type, len(text), text)
            if self._tracer is not None:
                self._tracer.record("out", event_type, len(text), json.loads(text))

    def session_update(self, parameters: Mapping[str, Any]) -> None:
        self._send("session.update", parameters)

    def response_create(self, parameters: Mapping[str, Any] | None = None) -> None:
        self._send("response.create", parameters)

    def response_cancel(self, parameters: Mapping[str, Any] | None = None) -> None:
        self._send("response.cancel", parameters)

    def conversation_item_create(self, parameters: Mapping[str, Any]) -> None:
        self._send("conversation.item.create", parameters)

    def conversation_item_delete(self, parameters: Mapping[str, Any]) -> None:
        self._send("conversation.item.delete", parameters)

    def conversation_item_retrieve(self, parameters: Mapping[str, Any]) -> None:
        self._send("conversation.item.retrieve", parameters)

    def conversation_item_truncate(self, parameters: Mapping[str, Any]) -> None:
        self._send("conversation.item.truncate", parameters)

    def input_audio_buffer_clear(self, parameters: Mapping[str, Any] | None = None) -> None:
        self._send("input_audio_buffer.clear", parameters)

    def input_audio_buffer_commit(self, parameters: Mapping[str, Any] | None = None) -> None:
        self._send("input_audio_buffer.commit", parameters)

    def output_audio_buffer_clear(self, parameters: Mapping[str, Any] | None = None) -> None:
        """voxline's addition (GA): stop the audio OpenAI is playing on a WebRTC or SIP call (a
        sideband client); over a plain WebSocket session OpenAI answers it with an error."""
        self._send("output_audio_buffer.clear", parameters)

    # -- I/O ------------------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        """Write one message now: the transport buffers, order is kept, no task per message."""
        if self._held is not None and self._hold(text):
            return  # a switch to a new session is under way: sent there, in order
        ws = self._ws
        if ws is None or not ws.open:
            self._unsent += 1  # the socket is closing: the close report follows
            return
        ws.send_text(text)

    def _handle_binary(self, data: bytes) -> None:
        self._read_at = time.monotonic()
        self._core.receive_binary(data)
        self._handle_events()

    def _handle_text(self, text: str) -> None:
        now = self._read_at = time.monotonic()
        self._core.receive_text(text, now)
        self._handle_events(text)

    def _handle_events(self, text: str | None = None) -> None:
        for message in self._core.events_received():
            if message.kind is MessageKind.INVALID:
                self._report_invalid(message.problem)
                if self._tracer is not None and text is not None:
                    self._tracer.record("in", "invalid", len(text), text)
                continue
            if message.kind is MessageKind.SILENT:
                self._report_silence(message.data)
                continue
            event_type = message.data.get("type", "?")
            size = len(text) if text is not None else 0
            shown = None if message.kind is MessageKind.AUDIO else text
            self._msglog.message("in", event_type, size, shown)
            if self._tracer is not None:
                self._tracer.record("in", event_type, size, message.data)
            if message.kind is MessageKind.AUDIO:
                self._on_model_audio(message.data, message.audio)
                continue
            assert message.name is not None
            if self._observe(event_type, message.data):
                continue  # the new session's answer to the carry-over replay
            if message.name is RealtimeAPIEvents.SessionCreated:
                self._connect_ended(None)
            if message.name is RealtimeAPIEvents.ResponseOutputAudioDone and self._playout is not None:
                item_id, index = message.data.get("item_id"), message.data.get("content_index", 0)
                if isinstance(item_id, str) and isinstance(index, int):
                    self._playout.end_item(item_id, index)
            if message.name is RealtimeAPIEvents.ResponseDone:
                response = message.data.get("response")
                if isinstance(response, dict):
                    TELEMETRY.response_usage(response.get("usage"))
            elif message.name is RealtimeAPIEvents.Error:
                cls = classify_error(message.data)
                level = logging.ERROR if cls is ErrorClass.FATAL else logging.WARNING
                error = message.data.get("error")
                code = error.get("code") if isinstance(error, dict) else error
                reason = error.get("message") if isinstance(error, dict) else None
                if code == "session_expired" and self._expired():
                    log.info("Realtime client %s: session expired: moving to a new session", self._id)
                    self._count_error(error, code, cls)
                    continue  # a new session takes over (session_switch.py)
                log.log(
                    level, "Realtime client %s: %s server error %s: %s", self._id, cls.value, code, reason
                )
                if cls is ErrorClass.FATAL:
                    self._connect_ended(f"{code}: {reason}")
                self._count_error(error, code, cls)
            self._emit(message.name, message.data)

    @staticmethod
    def _count_error(error: object, code: object, cls: ErrorClass) -> None:
        known = isinstance(code, str) and code in ERROR_CODES  # a server's code may be anything
        TELEMETRY.realtime_error(code if known else "other", cls.value)
        # A truncation the server refused: its code, or the parameter it names (OpenAI answers an
        # audio_end_ms past the item's end with invalid_value on audio_end_ms, without our event_id).
        if isinstance(error, dict) and ("truncate" in str(code) or error.get("param") == "audio_end_ms"):
            TELEMETRY.truncation_failed()

    # -- media ----------------------------------------------------------------------------------------

    def receive_frame(self, frame: Frame, source: MediaUnit) -> None:
        """Caller audio -> ``input_audio_buffer.append`` in the session's input format."""
        if self._closed:
            return
        core = self._core
        fmt = core.input_format
        if frame.format is fmt:
            data = frame.data  # already in the session's format (G.711 pass-through, 24 kHz PCM)
        else:
            adapter_format = self._input_adapter.format
            if adapter_format is not fmt and adapter_format != fmt:
                self._input_adapter = FormatAdapter(fmt)
            data = self._input_adapter.convert(frame)
        if data:
            silent = core.append_audio(data, time.monotonic())
            for text in core.data_to_send():
                self._write(text)
                if self._tracer is not None:
                    self._tracer.record("out", "input_audio_buffer.append", len(text), json.loads(text))
            meters = self._in_meters
            if meters.on and meters.inbound_at:
                # The caller's frame is on the model's socket: added latency caller -> model.
                meters.caller_to_model.observe(time.monotonic() - meters.inbound_at)
            if silent:
                self._handle_events()

    def _source_changed(self, source: MediaUnit | None) -> None:
        self._in_meters = source.meters if source is not None else NO_METERS
        if source is not None:
            self._negotiate("input", source.media_format)

    def _sinks_changed(self) -> None:
        self._out_meters = next((s.meters for s in self.media_sinks if s.meters.on), NO_METERS)
        for sink in self.media_sinks:
            if sink.media_format is not None:
                self._negotiate("output", sink.media_format)
                break
        if self._playout is not None:
            self._playout.buffer.acknowledged = self._sinks_report_playback
            self._playout.batch_ms = self._sinks_batch_ms

    def _negotiate(self, direction: str, unit_format: AudioFormat | None) -> None:
        """Match the session's format to a connected unit, unless the scenario chose formats."""
        if self._closed or unit_format is None or self._core.formats_set_by_scenario:
            return
        if direction == "output" and self._params.type is RealtimeAPIClientType.TRANSCRIPTION:
            return
        wanted = unit_format if unit_format.encoding in ("pcmu", "pcma") else PCM16_24K
        current = self._negotiated.get(direction) or getattr(self._core, f"{direction}_format")
        if wanted == current and direction in self._negotiated:
            return
        self._negotiated[direction] = wanted
        audio = {direction: {"format": to_openai(wanted)}}
        # Negotiation is voxline's, not the scenario's: the scenario stays free to set formats later.
        session = {"session": {"type": self._params.type.value, "audio": audio}}
        self._send("session.update", session, by_scenario=False)

    def _on_model_audio(self, data: dict[str, Any], audio: bytes) -> None:
        """Model audio becomes media (never a listener event)."""
        if not audio or self._media_closed:
            return
        playout = self._playout
        fmt = self._core.output_format
        if playout is None or playout.buffer.format != fmt:
            if playout is not None:
                playout.close()
            clock = self._clock or AsyncioMediaClock.for_loop()
            buffer = PlayoutBuffer(fmt, acknowledged=self._sinks_report_playback)
            playout = self._playout = Playout(
                buffer,
                clock,
                self._deliver,
                self._on_media_started,
                self._on_media_ended,
                on_dry=self._flush_sinks,
            )
            playout.batch_ms = self._sinks_batch_ms
        item_id = data.get("item_id")
        content_index = data.get("content_index", 0)
        key = (
            item_id if isinstance(item_id, str) else None,
            content_index if isinstance(content_index, int) else 0,
        )
        if key != self._audio_key:
            # An answer's first audio: the call stamps when its first frame reaches the leg.
            self._audio_key = key
            out = self._out_meters
            if out.on:
                out.model_audio_at = self._read_at
        playout.push(audio, *key)

    def _media_fields(self) -> dict[str, Any]:
        params = next(
            (p for p in (self._sink_parameters(s) for s in self.media_sinks) if p is not None), None
        )
        return {
            "tag": params.tag if params else None,
            "encoding": to_openai(self._core.output_format)["type"],
            "custom_parameters": params.custom_parameters if params else None,
        }

    def _on_media_started(self) -> None:
        self._emit(Events.WebSocketMediaStarted, None, **self._media_fields())

    def _on_media_ended(self, duration_ms: int) -> None:
        fields = self._media_fields()
        fields.pop("encoding")
        fields.pop("custom_parameters")
        self._emit(Events.WebSocketMediaEnded, None, media_info={"duration": duration_ms / 1000}, **fields)

    def clear_media_buffer(
        self, parameters: ClearMediaBufferParameters | Mapping[str, Any] | None = None
    ) -> None:
        """Drop unplayed model audio at once (barge-in), in sinks' buffers too, and truncate the
        interrupted assistant item to what the caller heard (``auto_truncate``)."""
        ClearMediaBufferParameters.coerce(parameters)
        if self._playout is None:
            return
        # What the caller really heard, asked of the sinks before they drop what they hold.
        heard = self._sinks_playback_position()
        if heard is not None:
            self._playout.buffer.acknowledge(heard)
        cleared = self._playout.clear()
        self._clear_sinks()
        if not self._params.auto_truncate or self._closed:
            return
        for item in cleared:
            # Partly heard (or heard up to now while the model was still streaming it). Nothing heard:
            # the item stays as the model has it; fully heard items are never reported.
            if item.interrupted:
                TELEMETRY.truncation_sent()
                self._send(
                    "conversation.item.truncate",
                    {
                        "item_id": item.item_id,
                        "content_index": item.content_index,
                        "audio_end_ms": item.heard_ms,
                    },
                )

    def _stop_media(self) -> None:
        if self._playout is not None:
            self._playout.close()
        self.close_media()

    def _report_silence(self, data: dict[str, Any]) -> None:
        # Once per silence: the caller's audio goes in, nothing comes back. OpenAI is quiet while a
        # line is quiet too, so this is the scenario's cue to act (or not), not an error.
        log.warning(
            "Realtime client %s: the server has sent nothing for %.0f s while the caller's audio went to it",
            self._id,
            data["silent_s"],
        )
        self._emit(Events.ModelSilent, data)

    def _report_invalid(self, problem: str) -> None:
        log.warning("Realtime client %s: ignored %s", self._id, problem)
        self._emit(RealtimeAPIEvents.WebSocketError, {"error": problem})

    def _emit(self, name: RealtimeAPIEvents | Events, data: Any, **fields: Any) -> None:
        self._dispatch(Event(name=name, client=self, data=data, **fields))

    async def _finish(self) -> None:
        assert self._ws is not None
        code, reason = self._ws.closed.result()
        if not self._closed_here:
            self._connect_ended(
                f"closed before session.created: code {code}{f' ({reason})' if reason else ''}"
            )
        self._closed = True
        self._stop_media()
        self._stop_switching()
        if self._unsent:
            log.warning("Realtime client %s closed with %d unsent messages dropped", self._id, self._unsent)
        close_event = {"code": code, "reason": reason, "was_clean": code != 1006}
        TELEMETRY.websocket_closed("realtime", code)
        if not self._closed_here and code != 1000:
            # A refused key, an expired session, a dead socket: say so at the default verbosity.
            log.warning(
                "Realtime client %s: the connection closed: code %s%s",
                self._id,
                code,
                f" ({reason})" if reason else "",
            )
        if self._tracer is not None:
            self._tracer.record("in", "close", 0, close_event)
            self._tracer.close()
        if self._params.statistics:
            log.info("Realtime client %s statistics: %s", self._id, self._core.statistics())
        await self._report_close(close_event)

    async def _report_close(self, close_event: dict[str, Any]) -> None:
        if self._close_reported:
            return
        self._close_reported = True
        callback = self._params.on_web_socket_close
        try:
            if callback is not None:
                result = callback(close_event)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("on_web_socket_close of Realtime client %s raised", self._id)
        finally:
            self._release_listeners()


async def create_realtime_api_client(
    parameters: RealtimeAPIClientParameters | Mapping[str, Any] | None = None,
    **kwargs: Unpack[RealtimeAPIClientOptions],
) -> RealtimeAPIClient:
    """``OpenAI.createRealtimeAPIClient``: connect and return the client.

    Accepts a :class:`RealtimeAPIClientParameters`, a dict (Python or camelCase keys) or keyword
    arguments; ``media_clock`` (voxline's own) drives the model audio's playout (default: the shared
    20 ms clock of the running event loop; tests pass a virtual clock).
    Raises :class:`RealtimeAPIError` with the HTTP status and the server's message when the
    handshake is refused.
    """
    clock = kwargs.pop("media_clock", None)
    given = set(parameters) if isinstance(parameters, Mapping) else set()
    no_base_url = not ({"base_url", "baseUrl"} & (given | set(kwargs)))
    if (parameters is None or isinstance(parameters, Mapping)) and no_base_url:
        kwargs["base_url"] = default_base_url()
    session = current_session.get()
    if session is not None and session.trace and "trace" not in given | set(kwargs):
        kwargs["trace"] = True
    loose = parameters is None or isinstance(parameters, Mapping)
    if session is not None and loose and "max_session_duration_s" not in given | set(kwargs):
        # In the runtime a call outlives OpenAI's 60-minute cap: recycle before it (docs/long-calls.md).
        kwargs["max_session_duration_s"] = RUNTIME_MAX_SESSION_DURATION_S
    params = build_parameters(RealtimeAPIClientParameters, parameters, kwargs)
    client = RealtimeAPIClient(params, clock)
    await client._open()
    adopt(client)
    return client
