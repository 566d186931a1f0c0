"""The OpenAI Realtime API client (GA wire protocol over WebSocket), a thin asyncio layer over
:class:`~voxline.openai.realtime_protocol.RealtimeProtocol`.

Command methods return at once and send in call order. Listener events are dispatched from one
reader task, so a scenario that registers listeners right after ``await create_realtime_api_client``
misses nothing: ``HTTPResponse``, ``ConnectorInformation`` and ``session.created`` are delivered
only once the scenario yields to the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from .._tasks import background
from ..audio import PCM16_24K, AudioFormat, Frame
from ..errors import EndedError
from ..eventtarget import Event
from ..logs import redacting_logger
from ..media import ClearMediaBufferParameters, FormatAdapter, MediaUnit
from ..media.clock import AsyncioMediaClock, MediaClock
from ..media.playout import Playout, PlayoutBuffer
from ..runtime.context import adopt, current_session
from ._common import MessageLog, Tracer, connector_information, new_id, redact_url
from .events import REALTIME_SERVER_TYPES, Events, RealtimeAPIClientType, RealtimeAPIEvents
from .formats import to_openai
from .params import DEFAULT_BASE_URL, RealtimeAPIClientParameters, build_parameters
from .realtime_protocol import ErrorClass, MessageKind, RealtimeProtocol, classify_error

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


def realtime_url(base_url: str, model: str, client_type: RealtimeAPIClientType) -> str:
    """``https://api.openai.com/`` -> ``wss://api.openai.com/v1/realtime?model=...``.

    ``http`` becomes ``ws`` and ``https`` becomes ``wss``; a base URL that already ends in ``/v1`` or
    ``/v1/realtime`` (as OpenAI-compatible servers are often given) is not doubled.
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/realtime"):
        path = path + "/realtime" if path.endswith("/v1") else path + "/v1/realtime"
    if client_type is RealtimeAPIClientType.TRANSCRIPTION:
        query = {"intent": "transcription"}
    else:
        query = {"model": model}
    extra = parts.query + "&" if parts.query else ""
    return urlunsplit((scheme, parts.netloc, path, extra + urlencode(query), ""))


def default_base_url() -> str:
    """The base URL when the scenario gives none: the runtime's choice (the embedded backend), then
    ``OPENAI_BASE_URL`` (as the official SDKs read it), then OpenAI."""
    session = current_session.get()
    chosen = getattr(session.services, "realtime_base_url", None) if session is not None else None
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


class RealtimeAPIClient(MediaUnit):
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

    def __init__(self, parameters: RealtimeAPIClientParameters, clock: MediaClock | None = None) -> None:
        super().__init__()
        self._params = parameters
        self._id = new_id()
        self._core = RealtimeProtocol()
        self._url = realtime_url(parameters.base_url, parameters.model, parameters.type)
        self._ws: ClientConnection | None = None
        self._outbox: collections.deque[str] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
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
        self._last_heard = time.monotonic()  # when the server last sent anything
        self._silent = False  # ModelSilent was reported for the current silence

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RealtimeAPIClient {self._id} {redact_url(self._url)} {state}>"

    @property
    def media_format(self) -> AudioFormat:  # type: ignore[override]
        """The format of the model audio this unit sends (the session's output format)."""
        return self._core.output_format

    # -- lifecycle --------------------------------------------------------------------------------

    async def _open(self) -> None:
        headers = {"Authorization": f"Bearer {self._params.api_key}"}
        try:
            self._ws = await connect(
                self._url,
                additional_headers=headers,
                compression=None,
                max_size=None,
                open_timeout=OPEN_TIMEOUT_S,
                ping_interval=PING_INTERVAL_S,
                ping_timeout=PING_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                user_agent_header=f"voxline/{__import__('voxline').__version__}",
                # Its debug lines include the request headers: the key is masked at the source.
                logger=redacting_logger("websockets.client"),
            )
        except InvalidStatus as exc:
            response = exc.response
            message, code = _error_message(bytes(response.body or b""))
            raise RealtimeAPIError(message, status=response.status_code, code=code) from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise RealtimeAPIError(f"cannot connect to {redact_url(self._url)}: {exc}") from None
        handshake = self._ws.response
        assert handshake is not None
        http_response = {
            "status": handshake.status_code,
            "reason": handshake.reason_phrase,
            "headers": dict(handshake.headers.raw_items()),
        }
        info = connector_information(
            self._id, self._url, self._tracer, model=self._params.model, type=self._params.type.value
        )
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop(), name=f"voxline-realtime-writer-{self._id}")
        self._reader = loop.create_task(
            self._read_loop(http_response, info), name=f"voxline-realtime-reader-{self._id}"
        )

    def close(self) -> None:
        """Close the WebSocket (or the connection attempt). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closed_here = True
        self._stop_media()
        if self._ws is not None:
            background(self._close_socket(), name=f"voxline-realtime-close-{self._id}")

    async def _close_socket(self) -> None:
        assert self._ws is not None
        # Whatever the scenario queued before close() still goes out first.
        await self._flush_outbox()
        await self._ws.close()
        # The reader sees ConnectionClosedOK and reports the close.

    async def wait_closed(self) -> None:
        """Wait until the socket is closed and ``on_web_socket_close`` has run."""
        if self._reader is not None:
            await asyncio.shield(self._reader)

    def id(self) -> str:
        return self._id

    def web_socket_id(self) -> str:
        return str(self._ws.id) if self._ws is not None else ""

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> dict[str, Any]:
        if not self._params.statistics:
            raise RuntimeError("statistics are off for this client: create it with statistics=True")
        return self._core.statistics()

    # -- commands ---------------------------------------------------------------------------------

    def _send(self, event_type: str, parameters: Mapping[str, Any] | None) -> None:
        if self._closed:
            raise ClientClosedError(f"cannot send {event_type}: the Realtime client {self._id} is closed")
        text = self._core.command(event_type, parameters, time.monotonic())
        self._enqueue(text, event_type)

    def _enqueue(self, text: str, event_type: str) -> None:
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

    # -- I/O loops --------------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        """Write ``text`` now when the socket takes it, else queue it for the writer task.

        ``websockets``' ``send()`` is a coroutine only for flow control: with nothing queued before
        us and the transport not paused it writes at once. Doing the same steps here spares a task
        wake-up and a future per message -- one per 20 ms frame per call. Order is kept: while
        anything is queued, everything queues behind it.
        """
        ws = self._ws
        if (
            ws is not None
            and not self._outbox
            and not ws.paused
            and ws.protocol.state is State.OPEN
            and not ws.transport.is_closing()
        ):
            ws.protocol.send_text(text.encode())
            ws.send_data()
            return
        self._outbox.append(text)
        self._outbox_ready.set()

    async def _write_loop(self) -> None:
        assert self._ws is not None
        try:
            while True:
                await self._flush_outbox()
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
        except ConnectionClosed:
            pass

    async def _flush_outbox(self) -> None:
        assert self._ws is not None
        while self._outbox:
            text = self._outbox[0]
            await self._ws.send(text)
            self._outbox.popleft()

    async def _read_loop(self, http_response: dict[str, Any], info: dict[str, Any]) -> None:
        assert self._ws is not None
        self._emit(RealtimeAPIEvents.HTTPResponse, http_response)
        self._emit(RealtimeAPIEvents.ConnectorInformation, info)
        try:
            async for frame in self._ws:
                if isinstance(frame, bytes):
                    self._core.invalid_frames += 1
                    self._report_invalid(f"binary frame ({len(frame)} bytes); OpenAI sends text only")
                    continue
                self._handle_text(frame)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug in voxline must still end in a clean close
            log.exception("Realtime client %s reader failed", self._id)
            self._emit(RealtimeAPIEvents.WebSocketError, {"error": f"reader failed: {exc!r}"})
        finally:
            await self._finish()

    def _handle_text(self, text: str) -> None:
        now = time.monotonic()
        self._last_heard = now
        self._silent = False
        message = self._core.receive(text, now)
        if message.kind is MessageKind.INVALID:
            self._report_invalid(message.problem)
            if self._tracer is not None:
                self._tracer.record("in", "invalid", len(text), text)
            return
        event_type = message.data.get("type", "?")
        self._msglog.message("in", event_type, len(text), None if message.kind is MessageKind.AUDIO else text)
        if self._tracer is not None:
            self._tracer.record("in", event_type, len(text), message.data)
        if message.kind is MessageKind.AUDIO:
            self._on_model_audio(message.data, message.audio)
            return
        assert message.name is not None
        if message.name is RealtimeAPIEvents.ResponseOutputAudioDone and self._playout is not None:
            item_id, index = message.data.get("item_id"), message.data.get("content_index", 0)
            if isinstance(item_id, str) and isinstance(index, int):
                self._playout.end_item(item_id, index)
        if message.name is RealtimeAPIEvents.Error:
            cls = classify_error(message.data)
            level = logging.ERROR if cls is ErrorClass.FATAL else logging.WARNING
            error = message.data.get("error")
            code = error.get("code") if isinstance(error, dict) else error
            reason = error.get("message") if isinstance(error, dict) else None
            log.log(level, "Realtime client %s: %s server error %s: %s", self._id, cls.value, code, reason)
        self._emit(message.name, message.data)

    # -- media ----------------------------------------------------------------------------------------

    def _receive_media(self, frame: Frame, source: MediaUnit) -> None:
        """Caller audio -> ``input_audio_buffer.append`` in the session's input format."""
        if self._closed:
            return
        fmt = self._core.input_format
        adapter_format = self._input_adapter.format
        if adapter_format is not fmt and adapter_format != fmt:
            self._input_adapter = FormatAdapter(fmt)
        data = self._input_adapter.convert(frame)
        if data:
            timeout = self._params.server_silence_timeout_s
            if timeout is not None and not self._silent:
                silent_s = time.monotonic() - self._last_heard
                if silent_s >= timeout:
                    self._report_silence(silent_s)
            text = self._core.append_audio(data)
            self._write(text)
            if self._tracer is not None:
                self._tracer.record("out", "input_audio_buffer.append", len(text), json.loads(text))

    def _source_changed(self, source: MediaUnit | None) -> None:
        if source is not None:
            self._negotiate("input", source.media_format)

    def _sinks_changed(self) -> None:
        for sink in self.media_sinks:
            if sink.media_format is not None:
                self._negotiate("output", sink.media_format)
                break
        if self._playout is not None:
            self._playout.buffer.acknowledged = self._sinks_report_playout
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
        text = self._core.command(
            "session.update", {"session": {"type": self._params.type.value, "audio": audio}}, time.monotonic()
        )
        # Negotiation is voxline's, not the scenario's: keep the scenario free to set formats later.
        self._core.formats_set_by_scenario = False
        self._enqueue(text, "session.update")

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
            buffer = PlayoutBuffer(fmt, acknowledged=self._sinks_report_playout)
            playout = self._playout = Playout(
                buffer, clock, self._deliver, self._on_media_started, self._on_media_ended
            )
            playout.batch_ms = self._sinks_batch_ms
        item_id = data.get("item_id")
        content_index = data.get("content_index", 0)
        playout.push(
            audio,
            item_id if isinstance(item_id, str) else None,
            content_index if isinstance(content_index, int) else 0,
        )

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

    def _playout_acknowledged(self, position_ms: int) -> None:
        if self._playout is not None:
            self._playout.buffer.acknowledge(position_ms)

    def clear_media_buffer(
        self, parameters: ClearMediaBufferParameters | Mapping[str, Any] | None = None
    ) -> None:
        """Drop unplayed model audio at once (barge-in), in sinks' buffers too, and truncate the
        interrupted assistant item to what the caller heard (``auto_truncate``)."""
        ClearMediaBufferParameters.coerce(parameters)
        if self._playout is None:
            return
        cleared = self._playout.clear()
        self._clear_sinks()
        if not self._params.auto_truncate or self._closed:
            return
        for item in cleared:
            # Partly heard (or heard up to now while the model was still streaming it). Nothing heard:
            # the item stays as the model has it; fully heard items are never reported.
            if item.interrupted:
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

    def _report_silence(self, silent_s: float) -> None:
        # Once per silence: the caller's audio goes in, nothing comes back. OpenAI is quiet while a
        # line is quiet too, so this is the scenario's cue to act (or not), not an error.
        self._silent = True
        log.warning(
            "Realtime client %s: the server has sent nothing for %.0f s while the caller's audio went to it",
            self._id,
            silent_s,
        )
        self._emit(Events.ModelSilent, {"silent_s": round(silent_s, 3)})

    def _report_invalid(self, problem: str) -> None:
        log.warning("Realtime client %s: ignored %s", self._id, problem)
        self._emit(RealtimeAPIEvents.WebSocketError, {"error": problem})

    def _emit(self, name: RealtimeAPIEvents | Events, data: Any, **fields: Any) -> None:
        self._dispatch(Event(name=name, client=self, data=data, **fields))

    async def _finish(self) -> None:
        assert self._ws is not None
        ws = self._ws
        self._closed = True
        self._stop_media()
        if self._writer is not None:
            self._writer.cancel()
        dropped = len(self._outbox)
        if dropped:
            log.warning("Realtime client %s closed with %d unsent messages dropped", self._id, dropped)
            self._outbox.clear()
        code = ws.close_code if ws.close_code is not None else 1006
        close_event = {"code": code, "reason": ws.close_reason or "", "was_clean": code != 1006}
        if not self._closed_here and code != 1000:
            # A refused key, an expired session, a dead socket: say so at the default verbosity.
            log.warning(
                "Realtime client %s: the connection closed: code %s%s",
                self._id,
                code,
                f" ({ws.close_reason})" if ws.close_reason else "",
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
    parameters: RealtimeAPIClientParameters | Mapping[str, Any] | None = None, **kwargs: Any
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
    if (
        session is not None
        and getattr(session.services, "trace", False)
        and "trace" not in given | set(kwargs)
    ):
        kwargs["trace"] = True
    params = build_parameters(RealtimeAPIClientParameters, parameters, kwargs)
    client = RealtimeAPIClient(params, clock)
    await client._open()
    adopt(client)
    return client
