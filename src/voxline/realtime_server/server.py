"""``RealtimeServer``: OpenAI's Realtime GA WebSocket API served on a local socket (asyncio, ``websockets``).

One :class:`~voxline.realtime_server.core.RealtimeSessionCore` per connection holds the protocol; this
module is its I/O: the handshake; a reader feeding client frames in with the loop's time; one writer
that writes what the core's ``data_to_send()`` returns, starts the awaitables of ``events_received()``
(handing each result back with ``resolve``) and calls ``tick`` when ``next_deadline()`` comes (the
core decides the pace; the writer only keeps the time). Two faces use it:
``voxline.testing.FakeRealtimeServer`` (scripted responses, handshake refusals, for tests) and the
embedded offline backend ``voxline.local.server`` (real speech engines).

What it does, like the live service (see the repository's protocol notes):

- Serves ``ws://HOST:PORT/v1/realtime?model=...`` (``server.ws_url``; ``server.base_url`` is the
  ``http://HOST:PORT/`` a client gets as its ``base_url``); other paths get OpenAI's 404 JSON. The
  handshake always answers 101; then a missing or wrong ``Authorization: Bearer`` key gets an
  ``error`` event and close 3000, an ``OpenAI-Beta`` header or a missing model gets one and close 4000
  (reason ``error.type + "." + error.code``).
- Sends ``session.created`` (a realtime session, or a transcription session for ``?intent=transcription``).
- Validates every client event (by default against OpenAI's official schemas,
  :mod:`voxline.realtime_server.schema`); a bad event gets OpenAI's ``error`` event and is recorded in
  ``server.violations``.
- Keeps the session, the conversation, the input audio buffer, server VAD on the audio's own sample
  clock, and streams responses in OpenAI's event order with audio in the session's output format.

Records and waiting (:class:`~voxline.realtime_server.records.ServerRecords`): ``received``, ``sent``,
``sessions``, ``violations``, ``truncations``, ``rejections``, ``wait_for()``, ``wait_for_sent()``,
``wait_for_session()``. Per connection (:class:`RealtimeConnection`): its records, ``close(code,
reason)``, ``drop()``, ``send_binary()``, ``send_text()``, ``send_event()``, ``release()``,
``set_pace()``. ``keep_record=`` filters each session's own records (the server-wide ones keep all).

Plug-ins (:mod:`voxline.realtime_server.engine`): ``engine=`` (responses), ``transcriber=`` (input
transcription), ``detector=`` (per-frame speech probability; a detector with state gives each session
its own copy through ``for_session()``), ``validator=``.

``idle_timeout_ms`` counts on the input audio's clock from the end of the last response (a client that
streams no audio never times out). ``max_session_s`` enforces a session limit like OpenAI's 60 minutes
(off by default): once a session is that old on ``clock`` (seconds; default the loop's time), it gets
``error`` ``session_expired`` and close 1001, checked at each client message and, on the loop's
clock, when it is due; ``connection.expire()`` does it at once. MCP: tool listing on
``session.update`` (``mcp_servers=``) and scripted ``MCPCall`` outputs with approval (:mod:`.ga`).
Not modelled: WebRTC/SIP-only events (``output_audio_buffer.*``) except on a SIP call's sideband,
browser subprotocol authentication.

OpenAI SIP calls: :meth:`RealtimeServer.accept_call` (the REST fake calls it on ``/accept``) lets
``?call_id=`` attach a sideband session that starts with the accepted configuration; there no
``response.output_audio.delta`` is sent (OpenAI plays the audio), ``output_audio_buffer.started`` /
``stopped`` / ``cleared`` tell the playback, ``output_audio_buffer.clear`` is taken, and
``connection.send_dtmf()`` sends ``input_audio_buffer.dtmf_event_received``. An unknown call id gets
an ``error`` ``call_not_found`` and close 4000 (the fake's choice; OpenAI's answer is not documented).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..logs import redacting_logger
from .core import RealtimeSessionCore
from .engine import EnergySpeechDetector, ResponseEngine, SpeechDetector, Transcriber, session_detector
from .events import Abort, Close, Outgoing, PendingWork, RawFrame, error_event, new_id
from .records import HandshakeRejection, ServerRecords
from .session import DEFAULT_INSTRUCTIONS
from .validation import EventValidator

__all__ = [
    "CLOSE_AUTH",
    "CLOSE_SHAPE",
    "REALTIME_PATH",
    "HandshakeRejection",
    "RealtimeConnection",
    "RealtimeServer",
]

REALTIME_PATH = "/v1/realtime"
CLOSE_AUTH = 3000
CLOSE_SHAPE = 4000


class RealtimeConnection:
    """One accepted WebSocket session: its protocol state (``core``), records and fault controls."""

    def __init__(self, server: RealtimeServer, ws: ServerConnection, core: RealtimeSessionCore) -> None:
        self.server = server
        self.ws = ws
        self.core = core
        self.headers = dict(ws.request.headers.raw_items()) if ws.request is not None else {}
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.call_id: str | None = None  # a SIP call's sideband (``?call_id=``)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.finished = asyncio.get_running_loop().create_future()
        self.started_at = server.session_clock()

    # -- what tests read -------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.core.id

    @property
    def session(self) -> dict[str, Any]:
        """The effective session object (what the last ``session.updated`` carried)."""
        return self.core.session

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation, in order (server shape)."""
        return self.core.items

    @property
    def input_audio(self) -> bytes:
        """Every byte appended with ``input_audio_buffer.append``, as received (session input format)."""
        return bytes(self.core.input_audio)

    @property
    def received(self) -> list[dict[str, Any]]:
        return self.core.received

    @property
    def sent(self) -> list[dict[str, Any]]:
        return self.core.sent

    @property
    def violations(self) -> list[str]:
        return self.core.violations

    def item_audio(self, item_id: str) -> bytes:
        """The audio an item holds (user input as committed, assistant output as sent, after truncation)."""
        return self.core.item_audio[item_id][0]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until this session received ``count`` client events of ``event_type``; returns them."""
        return await self.server.wait_for_events(self.core.received, event_type, count, timeout, "received")

    async def wait_for_sent(
        self, event_type: str, count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until this session sent ``count`` server events of ``event_type``; returns them."""
        return await self.server.wait_for_events(self.core.sent, event_type, count, timeout, "sent")

    async def wait_closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(asyncio.shield(self.finished), timeout)

    # -- faults --------------------------------------------------------------------------------------------

    def release(self) -> None:
        """Let a response held by ``stall_after_ms`` stream on."""
        self.core.release()
        self._wake.set()

    def set_pace(self, pace: float | None) -> None:
        """Stream this session's responses at ``pace`` from now on, the active one included."""
        self.core.set_pace(pace)
        self._wake.set()

    def drop(self) -> None:
        """Abort the TCP connection now, without a close frame."""
        self.core.abort()
        self._wake.set()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket with ``code`` and ``reason`` after what is queued."""
        self.core.close(code, reason)
        self._wake.set()

    def expire(self) -> None:
        """End the session now as OpenAI does at its limit: ``session_expired``, then close 1001."""
        self.core.expire()
        self.server.notify_waiters()
        self._wake.set()

    def _expiry_in(self) -> float | None:
        """Seconds until the session limit (<= 0: due), None without one."""
        limit = self.server.max_session_s
        return None if limit is None else self.started_at + limit - self.server.session_clock()

    def send_binary(self, data: bytes = b"\x00\x01") -> None:
        self.core.send_raw(bytes(data))
        self._wake.set()

    def send_text(self, text: str) -> None:
        """Send a text frame exactly as given (e.g. non-JSON)."""
        self.core.send_raw(text)
        self._wake.set()

    def send_event(self, event: dict[str, Any]) -> None:
        """Send any event dict as given (an unknown type, a malformed event ...); recorded in ``sent``."""
        self.core.send_event(event)
        self.server.notify_waiters()
        self._wake.set()

    def send_dtmf(self, digit: str) -> None:
        """The SIP caller pressed ``digit``: ``input_audio_buffer.dtmf_event_received`` (sideband only)."""
        if not self.core.sideband:
            raise RuntimeError("DTMF events come only on a SIP call's sideband (?call_id=)")
        self.core.send_dtmf(digit, int(time.time()))
        self.server.notify_waiters()
        self._wake.set()

    # -- I/O ------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            await self._pump()
        finally:
            reader.cancel()
            for task in self._tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if self.close_code is None:
                self.close_code = self.ws.close_code
                self.close_reason = self.ws.close_reason
            if not self.finished.done():
                self.finished.set_result(None)
            self.server.notify_waiters()

    def _now_ms(self) -> float:
        return asyncio.get_running_loop().time() * 1000

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.core.receive_binary(message, self._now_ms())
                else:
                    self.core.receive_text(message, self._now_ms())
                left = self._expiry_in()
                if left is not None and left <= 0:
                    self.core.expire()
                self.server.notify_waiters()
                self._wake.set()
        except ConnectionClosed:
            pass
        finally:
            self.core.connection_lost()
            self._wake.set()

    def _start_pending(self) -> None:
        for work in self.core.events_received():
            task = asyncio.create_task(self._resolve(work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resolve(self, work: PendingWork) -> None:
        try:
            result: Any = await work.awaitable
        except Exception as exc:
            result = exc
        self.core.resolve(work, result, self._now_ms())
        self.server.notify_waiters()
        self._wake.set()

    async def _send(self, item: Outgoing) -> bool:
        """Send one outgoing item; False once the connection is finished."""
        if isinstance(item, Close):
            self.close_code, self.close_reason = item.code, item.reason
            await self.ws.close(item.code, item.reason)
            return False
        if isinstance(item, Abort):
            self.close_code, self.close_reason = 1006, ""
            self.ws.transport.abort()
            return False
        payload = item.data if isinstance(item, RawFrame) else json.dumps(item, separators=(",", ":"))
        await self.ws.send(payload)
        return True

    async def _write(self) -> bool:
        """Send what the core has queued, and what it queues meanwhile; False once finished."""
        while items := self.core.data_to_send():
            for item in items:
                if not await self._send(item):
                    return False
        return True

    async def _pump(self) -> None:
        """The only writer: what the core queues, then a tick whenever the core's next deadline comes."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not await self._write():
                    return
                self._start_pending()
                deadline = self.core.next_deadline()
                wait: float | None = None
                if deadline is not None:
                    now_ms = loop.time() * 1000
                    if deadline <= now_ms:
                        self.core.tick(now_ms)
                        self.server.notify_waiters()
                        if not await self._write():
                            return
                        # A send into a non-full buffer does not suspend: yield so the reader (a
                        # cancel, a barge-in) and other sessions run between response events.
                        await asyncio.sleep(0)
                        continue
                    wait = (deadline - now_ms) / 1000
                elif self.core.closed:
                    return
                left = self._expiry_in()
                if left is not None and self.server.clock is None:
                    if left <= 0:
                        self.expire()
                        continue
                    wait = left if wait is None else min(wait, left)
                # Nothing was awaited since the core's queue was found empty: nothing new is queued.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        except ConnectionClosed:
            return


class RealtimeServer(ServerRecords):
    """A Realtime GA endpoint on ``host:port`` (see the module docstring).

    ``engine``/``transcriber``/``detector``: the pluggable brain (``detector`` defaults to
    :class:`~voxline.realtime_server.engine.EnergySpeechDetector`). ``validator``: checks client events
    (default: OpenAI's schemas, which needs ``jsonschema``). ``api_keys``: accepted keys (default: any
    key starting with ``sk-``). ``models``: accepted models (default: any). ``pace``: None streams as
    fast as possible, 1.0 at real time (a plan may override it). ``instructions``: the session's
    default instructions. ``keep_record``: which client and server events each session's own
    ``received``/``sent`` keep (default: all; the server-wide lists get every one).
    """

    def __init__(
        self,
        *,
        engine: ResponseEngine,
        transcriber: Transcriber,
        detector: SpeechDetector | None = None,
        validator: EventValidator | None = None,
        instructions: str = DEFAULT_INSTRUCTIONS,
        pace: float | None = None,
        api_keys: Collection[str] | None = None,
        models: Collection[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_record: Callable[[Mapping[str, Any]], bool] | None = None,
        mcp_servers: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        max_session_s: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if pace is not None and pace <= 0:
            raise ValueError(f"pace must be positive or None, got {pace}")
        super().__init__()
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.models = set(models) if models is not None else None
        self.pace = pace
        self.engine = engine
        self.detector: SpeechDetector = detector if detector is not None else EnergySpeechDetector()
        self.transcriber = transcriber
        self.instructions = instructions
        self.keep_record = keep_record
        # MCP servers the fake "reaches": server_label -> the tools mcp_list_tools reports (others fail).
        self.mcp_servers = mcp_servers
        if max_session_s is not None and not max_session_s > 0:
            raise ValueError(f"max_session_s must be positive or None, got {max_session_s}")
        self.max_session_s = max_session_s
        self.clock = clock
        if validator is None:
            from .schema import default_validator  # jsonschema: only when no validator is given

            validator = default_validator()
        self.validator: EventValidator = validator
        self.host = host
        self._port = port
        self._server: Server | None = None
        # OpenAI SIP calls accepted through the REST fake (voxline.testing.FakeOpenAICalls): call_id ->
        # the session configuration /accept carried; their sideband sessions start with it.
        self.calls: dict[str, dict[str, Any]] = {}

    def accept_call(self, call_id: str, session: Mapping[str, Any]) -> None:
        """A SIP call was accepted with this session configuration: ``?call_id=`` may attach now."""
        self.calls[call_id] = dict(session)

    def end_call(self, call_id: str) -> None:
        """The call ended (hung up, referred away): its sideband sessions close (1000)."""
        self.calls.pop(call_id, None)
        for connection in self.sessions:
            if connection.call_id == call_id and connection.close_code is None:
                connection.close(1000, "call ended")

    def session_clock(self) -> float:
        """Seconds on the clock the session limit counts on (``clock``, or the loop's time)."""
        return self.clock() if self.clock is not None else asyncio.get_running_loop().time()

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            max_size=32 * 2**20,  # a 15 MiB append is legal and base64 makes it 20 MiB
            # Its debug lines include the clients' request headers: keys are masked at the source.
            logger=redacting_logger("websockets.server"),
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is None:
            name = type(self).__name__
            raise RuntimeError(f"the server is not started (use 'async with {name}() as server')")
        sockname: tuple[str, int] = next(iter(self._server.sockets)).getsockname()
        return sockname[1]

    @property
    def base_url(self) -> str:
        """What a voxline client gets as ``base_url``: ``http://127.0.0.1:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        """The Realtime endpoint without query: ``ws://127.0.0.1:PORT/v1/realtime``."""
        return f"ws://{self.host}:{self.port}{REALTIME_PATH}"

    def release(self) -> None:
        """Let every response held by ``stall_after_ms`` stream on."""
        for connection in self.sessions:
            connection.release()

    # -- connections -----------------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the upgrade: OpenAI's 404 for any other path; None lets the handshake proceed."""
        path = urlsplit(request.path).path
        if path != REALTIME_PATH:
            return self._http_error(
                connection,
                404,
                {
                    "message": f"Invalid URL (GET {path})",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
            )
        return None

    def _http_error(self, connection: ServerConnection, status: int, error: dict[str, Any]) -> Response:
        response = connection.respond(status, json.dumps({"error": error}, indent=2) + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        self.rejections.append(HandshakeRejection(status, None, error))
        self._waiters.notify()
        return response

    def _key_problem(self, authorization: str | None) -> tuple[str | None, str] | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None, "Missing bearer or basic authentication in header"
        key = authorization[len("Bearer ") :].strip()
        accepted = key in self.api_keys if self.api_keys is not None else key.startswith("sk-")
        if accepted:
            return None
        shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
        return (
            "invalid_api_key",
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        )

    async def _refuse_after_upgrade(
        self, ws: ServerConnection, close_code: int, code: str | None, message: str
    ) -> None:
        event: dict[str, Any] = {"type": "error", "event_id": new_id("event")}
        event.update(error_event(code, message))
        reason = f"invalid_request_error.{code}" if code else "invalid_request_error"
        self.rejections.append(HandshakeRejection(101, close_code, event["error"]))
        self.sent.append(event)
        self._waiters.notify()
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(event, separators=(",", ":")))
            await ws.close(close_code, reason)

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        problem = self._key_problem(request.headers.get("Authorization"))
        if problem is not None:
            await self._refuse_after_upgrade(ws, CLOSE_AUTH, *problem)
            return
        if "OpenAI-Beta" in request.headers:
            await self._refuse_after_upgrade(
                ws,
                CLOSE_SHAPE,
                "beta_api_shape_disabled",
                "The beta Realtime API shape is disabled; remove the 'OpenAI-Beta: realtime=v1' header "
                "to use the GA interface.",
            )
            return
        call_ids = query.get("call_id")
        call_id = call_ids[0] if call_ids else None
        if call_id is not None:
            accepted = self.calls.get(call_id)
            if accepted is None:
                await self._refuse_after_upgrade(
                    ws, CLOSE_SHAPE, "call_not_found", f"No active call found with id '{call_id}'."
                )
                return
            query["model"] = [str(accepted.get("model") or "gpt-realtime")]
        models = query.get("model")
        model = models[0] if models else None
        kind: Literal["realtime", "transcription"] = (
            "transcription" if (query.get("intent") or [""])[0] == "transcription" else "realtime"
        )
        if model is None and kind == "realtime":
            await self._refuse_after_upgrade(
                ws,
                CLOSE_SHAPE,
                "missing_model",
                "You must provide a model parameter, for example wss://api.openai.com/v1/realtime?model=gpt-realtime",
            )
            return
        if model is not None and self.models is not None and model not in self.models:
            await self._refuse_after_upgrade(
                ws, CLOSE_SHAPE, "invalid_model", f'Model "{model}" is not supported in realtime mode.'
            )
            return
        core = RealtimeSessionCore(
            kind=kind,
            model=model,
            now=time.time(),
            engine=self.engine,
            detector=session_detector(self.detector),
            transcriber=self.transcriber,
            validator=self.validator,
            instructions=self.instructions,
            pace=self.pace,
            on_received=self.received.append,
            on_sent=self.sent.append,
            on_violation=self.violations.append,
            on_truncation=self.truncations.append,
            keep_record=self.keep_record,
            sideband=call_id is not None,
            mcp_servers=self.mcp_servers,
        )
        connection = RealtimeConnection(self, ws, core)
        if call_id is not None:
            connection.call_id = call_id
            core.apply_call_session(self.calls[call_id])
        self.sessions.append(connection)
        core.start()
        self._waiters.notify()
        await connection.run()
