"""aiohttp handlers for carrier media: the Twilio stream, the VoxEngine-format media socket, the
Twilio voice webhook. Thin I/O around the sans-I/O cores in ``twilio`` and ``wsmedia``.

Access control happens before the WebSocket upgrade: a media endpoint accepts a connection only
with the configured token (query parameter ``token`` or ``Authorization: Bearer``) or, on the
Twilio endpoint, a valid ``X-Twilio-Signature``. No credential: 401; a wrong one: 403. With no
token and no Twilio auth token configured the endpoints are open (a warning is logged once).

Bad input never leaves a socket: non-JSON or a malformed message closes that socket with 1007,
a message out of order (media before start) with 1002, an unsupported format or a binary frame
with 1003, a message over ``max_message_bytes`` with 1009; unknown events are ignored. Each is
counted and logged once per socket with its reason. Other sockets are untouched. The voice
webhook reads only a form body (415 otherwise); a malformed or cut-off one gets 400. Credentials,
signatures and the Host are compared as the bytes received, so bytes that are not UTF-8 get a 403.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WebSocketError, WSMsgType, hdrs, web, web_ws

from .._tasks import background
from ..audio import FRAME_MS
from ._base import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNSUPPORTED_DATA,
    Ignored,
    ProtocolError,
    Stats,
)
from .stream import CarrierStream, OnStream
from .twilio import (
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioMediaStream,
    TwilioStart,
    TwilioState,
    TwilioStop,
)
from .twiml import SIGNATURE_HEADER, connect_stream_twiml, validate_signature
from .wsmedia import VoxEngineMediaSocket, WsMediaMedia, WsMediaStart, WsMediaStop

__all__ = ["Admit", "CarrierConfig", "CarrierEndpoints", "TwilioCarrierStream", "VoxEngineCarrierStream"]

log = logging.getLogger("voxline.carriers")

TwimlParameters = Callable[[Mapping[str, str]], Mapping[str, str]]
Admit = Callable[[], str | None]
"""Asked before each media socket is upgraded: None admits it; a short reason ("busy", "draining")
refuses it with 503 and ``Retry-After``, counted as ``refused_<reason>``."""

_RETRY_AFTER_S = "1"


@dataclass(slots=True)
class CarrierConfig:
    """Settings of the carrier endpoints.

    ``token``: shared secret a media connection must present (``?token=`` or ``Authorization:
    Bearer``). ``twilio_auth_token``: the Twilio account's auth token; when set, the voice webhook
    requires a valid ``X-Twilio-Signature`` and the Twilio stream endpoint accepts one in place of
    the token. ``public_url``: the base URL as the carrier sees it (``https://voice.example.com``),
    needed for signatures behind a proxy; otherwise the request's own scheme and Host are used.
    ``stream_url``: the ``wss://`` URL put into the TwiML (default: public base + ``twilio_path``).
    ``twiml_parameters``: maps the webhook's form fields to the stream's custom parameters
    (default: ``From`` and ``To``). ``start_timeout_s``: a socket that sends no ``start`` in this
    time is closed with 1008 (None: wait forever). ``max_streams``: sockets over this are refused
    with 503 before the upgrade. ``chunk_ms``: outbound message size of VoxEngine-format sockets.
    ``twilio_batch_ms``: model audio goes to Twilio in media messages of up to this many ms (a
    multiple of 20), paced one batch ahead of Twilio's player, which buffers and plays them back to
    back; marks report what was played, ``clear`` drops the rest; 20 sends one 20 ms message per
    frame, each when the one before it has played. ``mark_interval_ms``: Twilio mark spacing (see
    ``voxline.carriers.twilio``).
    ``max_tags_per_socket``: VoxEngine-format streams running at once on one socket (a ``start``
    beyond it closes the socket with 1008).
    """

    token: str | None = None
    twilio_auth_token: str | None = None
    public_url: str | None = None
    twilio_path: str = "/twilio"
    media_path: str = "/media"
    voice_path: str = "/twilio/voice"
    stream_url: str | None = None
    twiml_parameters: TwimlParameters | None = None
    max_message_bytes: int = 64 * 1024
    max_streams: int | None = None
    start_timeout_s: float | None = 10.0
    chunk_ms: int = 20
    twilio_batch_ms: int = 100
    mark_interval_ms: int = 100
    heartbeat_s: float | None = None
    max_tags_per_socket: int = 16

    def __post_init__(self) -> None:
        for name in ("token", "twilio_auth_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None")
        for name in ("twilio_path", "media_path", "voice_path"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("/"):
                raise ValueError(f"{name} must be a path starting with '/', got {value!r}")
        if not isinstance(self.max_message_bytes, int) or self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be an int >= 1024, got {self.max_message_bytes!r}")
        if self.max_streams is not None and (not isinstance(self.max_streams, int) or self.max_streams < 1):
            raise ValueError(f"max_streams must be an int >= 1 or None, got {self.max_streams!r}")
        interval = self.mark_interval_ms
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
            raise ValueError(f"mark_interval_ms must be an int >= 0, got {interval!r}")
        batch = self.twilio_batch_ms
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < FRAME_MS or batch % FRAME_MS:
            raise ValueError(f"twilio_batch_ms must be a positive multiple of {FRAME_MS}, got {batch!r}")
        if not isinstance(self.max_tags_per_socket, int) or self.max_tags_per_socket < 1:
            raise ValueError(f"max_tags_per_socket must be an int >= 1, got {self.max_tags_per_socket!r}")
        if self.start_timeout_s is not None and not self.start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be > 0 or None, got {self.start_timeout_s!r}")
        if self.public_url is not None and urlsplit(self.public_url).scheme not in ("http", "https"):
            raise ValueError(f"public_url must be an http(s) URL, got {self.public_url!r}")
        if self.stream_url is not None and urlsplit(self.stream_url).scheme not in ("ws", "wss"):
            raise ValueError(f"stream_url must be a ws(s) URL, got {self.stream_url!r}")


# Write directly while the socket's kernel-side backlog is below this; above it the task waits.
_DIRECT_WRITE_LIMIT = 64 * 1024


def _text_frame(text: str) -> bytes:
    """One unmasked, uncompressed WebSocket text frame, as a server sends it (RFC 6455 section 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 0x10000:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


# aiohttp's queue between its frame parser and ``receive()`` (aiohttp >= 3.10; else no shortcut).
_AiohttpQueue: Any = web_ws.__dict__.get("WebSocketDataQueue", object)


class _DirectQueue(_AiohttpQueue):  # type: ignore[misc]
    """aiohttp's message queue with a shortcut: while nothing is queued, a text message goes to
    ``handler`` from inside the parser's ``data_received``, sparing a future and a task wake-up per
    message. ``handler`` returns False to queue the message after all (what needs ``await``); from
    then on messages queue until the task has read them all, so order is kept."""

    handler: Callable[[str], bool] | None = None
    queued = 0  # text messages queued and not yet read by the task

    def feed_data(self, data: Any, *args: Any) -> None:  # (message, size) in aiohttp 3.10-3.14
        if data.type is WSMsgType.TEXT:
            handler = self.handler
            if handler is not None and self.queued == 0 and handler(data.data):
                return
            self.queued += 1
        super().feed_data(data, *args)


class _CarrierSocket(web.WebSocketResponse):
    """A WebSocketResponse whose reader queue is a ``_DirectQueue`` when this aiohttp allows it."""

    def _post_start(self, *args: Any, **kwargs: Any) -> None:
        if _AiohttpQueue is object or web_ws.__dict__.get("WebSocketDataQueue") is not _AiohttpQueue:
            super()._post_start(*args, **kwargs)
            return
        # _post_start builds the queue from this module global; nothing else runs meanwhile (no await).
        setattr(web_ws, "WebSocketDataQueue", _DirectQueue)  # noqa: B010
        try:
            super()._post_start(*args, **kwargs)
        finally:
            setattr(web_ws, "WebSocketDataQueue", _AiohttpQueue)  # noqa: B010

    def direct(self, handler: Callable[[str], bool]) -> _DirectQueue | None:
        """Hand text messages to ``handler`` from the parser; returns the queue, None if unsupported."""
        queue = getattr(self, "_reader", None)
        if not isinstance(queue, _DirectQueue):
            return None
        queue.handler = handler
        return queue


class _Writer:
    """Writes what its core queues, in order.

    Commands (``send_audio``, ``clear``) come from synchronous code and ``kick`` the writer. When the
    writer task is idle, the socket is not compressing and its transport's buffer is small, the
    frames are written at once (what aiohttp's ``send_str`` does when it need not wait), sparing a
    task wake-up per frame per call; otherwise the one task per socket writes them with flow control.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        pop: Callable[[], str | None],
        name: str,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self._ws = ws
        self._pop = pop
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    def kick(self) -> None:
        if self._idle.is_set() and self._write_now():
            return
        self._idle.clear()
        self._wake.set()

    def _write_now(self) -> bool:
        """Write queued frames straight to the transport; False leaves the rest to the task."""
        transport = self._transport
        if transport is None or self._ws.compress or self._ws.closed or transport.is_closing():
            return False
        while transport.get_write_buffer_size() < _DIRECT_WRITE_LIMIT:
            text = self._pop()
            if text is None:
                return True
            transport.write(_text_frame(text))
        return False

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while (text := self._pop()) is not None:
                    await self._ws.send_str(text)
                if not self._wake.is_set():
                    self._idle.set()
        except ConnectionError:
            pass  # the socket went away; the reader side reports the close
        except Exception:
            log.exception("carrier media writer failed; the socket's output stops")
        finally:
            self._idle.set()

    async def drain(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._task.cancel()


class _SocketLog:
    """Logs each reason once per socket and counts every occurrence under ``counter``."""

    _MAX_REASONS = 64  # a peer inventing event names must not grow this without bound

    def __init__(self, kind: str, remote: str | None, stats: Stats) -> None:
        self.prefix = f"{kind} media socket from {remote or '?'}"
        self._seen: set[str] = set()
        self._stats = stats

    def protocol_error(self, event: ProtocolError) -> None:
        self.once("protocol_errors", logging.WARNING, f"closing with {event.close_code}: {event.reason}")

    def ignored(self, event: Ignored) -> None:
        self.once(
            "ignored_events",
            logging.INFO,
            f"ignored {event.event!r}: {event.reason} (logged once, counted)",
            reason=f"ignored:{event.event}",
        )

    def once(self, counter: str, level: int, message: str, reason: str | None = None) -> None:
        self._stats[counter] += 1
        key = reason or counter
        if key not in self._seen and len(self._seen) < self._MAX_REASONS:
            self._seen.add(key)
            log.log(level, "%s: %s", self.prefix, message)


def _close_message(reason: str) -> bytes:
    return reason.encode("utf-8")[:123]  # a close frame's reason is at most 123 bytes


class TwilioCarrierStream(CarrierStream):
    """A Twilio Media Stream; marks acknowledge outbound playout (see ``voxline.carriers.twilio``)."""

    kind = "twilio"

    def __init__(
        self,
        ws: web.WebSocketResponse,
        core: TwilioMediaStream,
        writer: _Writer,
        start: TwilioStart,
        remote: str | None,
    ) -> None:
        super().__init__(
            stream_id=start.stream_sid,
            media_format=start.media_format,
            call_id=start.call_sid or None,
            account_id=start.account_sid or None,
            custom_parameters=start.custom_parameters,
            remote=remote,
        )
        self._ws = ws
        self._core = core
        self._writer = writer
        self.stats = core.stats
        self._loop = asyncio.get_running_loop()
        self._tail_timer: asyncio.TimerHandle | None = None
        self._tail_seen_ms = -1
        self._tail_period_s = max(core.mark_interval_ms, 20) / 1000

    def _ended(self) -> bool:
        # After Twilio's `stop` the socket is still open for a moment; the stream is over already.
        return self._closed.is_set() or self._core.state is not TwilioState.STARTED

    def send_audio(self, data: bytes, *, source_ms: int | None = None) -> None:
        if self._ended():
            self.stats["audio_dropped_after_close"] += 1
            return
        self._core.send_audio(data, source_ms)
        self._writer.kick()
        if self._tail_timer is None and self._core.mark_interval_ms and self._core.unmarked_ms:
            self._tail_seen_ms = self._core.sent_ms
            self._tail_timer = self._loop.call_later(self._tail_period_s, self._mark_tail)

    def _mark_tail(self) -> None:
        # The last audio of an utterance needs a mark too, or it is never acknowledged. One timer per
        # mark interval at most: if no audio came for a whole interval, mark what is unmarked.
        self._tail_timer = None
        if self._ended() or not self._core.unmarked_ms:
            return
        if self._core.sent_ms == self._tail_seen_ms:
            self._core.mark_pending()
            self._writer.kick()
            return
        self._tail_seen_ms = self._core.sent_ms
        self._tail_timer = self._loop.call_later(self._tail_period_s, self._mark_tail)

    def mark(self, name: str | None = None) -> str | None:
        """Send a mark now (its echo acknowledges all audio before it); None after close."""
        if self._ended():
            return None
        name = self._core.mark(name)
        self._writer.kick()
        return name

    def clear(self) -> None:
        if self._ended():
            return
        self._core.clear()
        self._writer.kick()

    @property
    def sent_ms(self) -> int:
        return self._core.sent_ms

    @property
    def acknowledged_ms(self) -> int:
        return self._core.acknowledged_ms

    @property
    def queued_messages(self) -> int:
        """Outbound messages not yet handed to the socket (a backlog means a slow peer)."""
        return self._core.queued_messages

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed.is_set():
            return
        await self._writer.drain(timeout=1.0)
        await self._ws.close(code=code, message=_close_message(reason))
        self._finish(code, reason)

    def _finish(self, code: int | None, reason: str) -> None:
        if self._tail_timer is not None:
            self._tail_timer.cancel()
            self._tail_timer = None
        super()._finish(code, reason)


class _VoxSocket:
    """One VoxEngine-format socket and its tagged streams."""

    def __init__(self, ws: web.WebSocketResponse, core: VoxEngineMediaSocket, writer: _Writer) -> None:
        self.ws = ws
        self.core = core
        self.writer = writer
        self.id = secrets.token_hex(6)
        self.streams: dict[str | None, VoxEngineCarrierStream] = {}


class VoxEngineCarrierStream(CarrierStream):
    """One tagged stream of a VoxEngine-format socket. The outbound stream has the same tag and
    format as the inbound one; its ``start`` goes out with the first audio. The format has no
    playout acknowledgement, so ``acknowledged_ms`` is None."""

    kind = "voxengine"

    def __init__(self, sock: _VoxSocket, start: WsMediaStart, remote: str | None) -> None:
        tag = start.tag
        super().__init__(
            stream_id=f"{sock.id}/{tag or ''}",
            media_format=start.media_format,
            tag=tag,
            custom_parameters=start.custom_parameters,
            remote=remote,
        )
        self.encoding = start.encoding
        self._sock = sock
        self._sent_bytes = 0

    def send_audio(self, data: bytes, *, source_ms: int | None = None) -> None:
        if self._closed.is_set():
            self.stats["audio_dropped_after_close"] += 1
            return
        core = self._sock.core
        if not core.has_outbound(self.tag):
            core.start_stream(self.tag, self.media_format)
        core.send_audio(self.tag, data)
        self._sent_bytes += len(data)
        self._sock.writer.kick()

    def clear(self) -> None:
        if self._closed.is_set() or not self._sock.core.has_outbound(self.tag):
            return
        self._sock.core.clear(self.tag)
        self._sock.writer.kick()

    @property
    def sent_ms(self) -> int:
        return self._sent_bytes // self.media_format.bytes_per_ms

    @property
    def acknowledged_ms(self) -> None:
        return None

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Stop this stream; the socket closes too when it was the last stream on it."""
        if self._closed.is_set():
            return
        sock = self._sock
        sock.core.stop_stream(self.tag)
        sock.writer.kick()
        if sock.streams.get(self.tag) is self:
            del sock.streams[self.tag]
        self._finish(code, reason)
        if not sock.streams:
            await sock.writer.drain(timeout=1.0)
            await sock.ws.close(code=code, message=_close_message(reason))


class CarrierEndpoints:
    """The carrier endpoints of one server; every accepted stream goes to ``on_stream(stream)``.

    ``on_stream`` runs as its own task. The stream lives until the peer ends it or the runtime
    calls ``stream.close()``; ``on_stream`` returning does not end it. If ``on_stream`` raises, the
    error is logged and that stream is closed with 1011.

    ``admit`` (optional): whether the application takes another call now (see ``Admit``). It is
    asked before the upgrade, so a refused carrier gets an HTTP 503 it can fail over on, and again
    right before ``on_stream``: a stream admitted at its upgrade that finds the application full
    when its ``start`` arrives is closed with 1013, counted as ``refused_after_upgrade``.

    Use ``routes()`` with ``app.add_routes`` (or ``add_to(app)``).
    """

    def __init__(
        self, on_stream: OnStream, config: CarrierConfig | None = None, *, admit: Admit | None = None
    ) -> None:
        if not callable(on_stream):
            raise TypeError(f"on_stream must be a coroutine function, not {type(on_stream).__name__}")
        if admit is not None and not callable(admit):
            raise TypeError(f"admit must be callable or None, not {type(admit).__name__}")
        self.on_stream = on_stream
        self.admit = admit
        self.config = config or CarrierConfig()
        self.stats = Stats()
        self._sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged: set[str] = set()
        if self.config.token is None and self.config.twilio_auth_token is None:
            log.warning("carrier media endpoints are open: no token and no Twilio auth token configured")

    # -- wiring ------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        cfg = self.config
        return [
            web.get(cfg.twilio_path, self.twilio_stream),
            web.get(cfg.media_path, self.voxengine_media),
            web.post(cfg.voice_path, self.twilio_voice),
            web.get(cfg.voice_path, self.twilio_voice),
        ]

    def add_to(self, app: web.Application) -> None:
        app.add_routes(self.routes())

    @property
    def active_sockets(self) -> int:
        return len(self._sockets)

    async def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every media socket (1001 going away) and cancel the ``on_stream`` tasks."""
        for ws in list(self._sockets):
            await ws.close(code=code, message=_close_message(reason))
        for task in list(self._tasks):
            task.cancel()

    # -- access control ----------------------------------------------------------------------------

    def _refuse(self, request: web.Request, *, twilio: bool) -> web.Response | None:
        cfg = self.config
        if cfg.token is None and cfg.twilio_auth_token is None:
            return self._over_limit()  # nothing configured: open (warned at construction)
        # From here a credential is required; /media with only a Twilio auth token admits nobody.
        auth_token = cfg.twilio_auth_token if twilio else None
        presented = request.query.get("token")
        header = request.headers.get("Authorization", "")
        if presented is None and header[:7].lower() == "bearer ":
            presented = header[7:].strip()
        signature = request.headers.get(SIGNATURE_HEADER) if twilio else None
        if (
            presented is not None
            and cfg.token is not None
            # Undecodable header bytes arrive as surrogate escapes: compare the bytes received.
            and hmac.compare_digest(
                presented.encode("utf-8", "surrogateescape"), cfg.token.encode("utf-8", "surrogateescape")
            )
        ):
            return self._over_limit()
        if (
            signature is not None
            and auth_token is not None
            and validate_signature(auth_token, signature, self._public_url(request, websocket=True))
        ):
            return self._over_limit()
        if presented is None and signature is None:
            self.stats["refused_unauthenticated"] += 1
            log.info("refused %s from %s: no credentials", request.path, request.remote)
            return web.Response(
                status=401, text="credentials required\n", headers={"WWW-Authenticate": "Bearer"}
            )
        self.stats["refused_forbidden"] += 1
        log.info("refused %s from %s: wrong token or signature", request.path, request.remote)
        return web.Response(status=403, text="wrong credentials\n")

    def _over_limit(self) -> web.Response | None:
        """503 while the application admits no call or the sockets are at ``max_streams``."""
        reason = self.admit() if self.admit is not None else None
        limit = self.config.max_streams
        if reason is None and limit is not None and len(self._sockets) >= limit:
            reason = "busy"
        if reason is None:
            return None
        self._count_once(f"refused_{reason}", f"refusing carrier media sockets with 503: {reason}")
        return web.Response(
            status=503, text=f"not taking calls: {reason}\n", headers={"Retry-After": _RETRY_AFTER_S}
        )

    def _public_url(self, request: web.Request, *, websocket: bool, path: str | None = None) -> str:
        """The URL as the carrier requested it (what Twilio signs)."""
        base = self.config.public_url
        if base:
            parts = urlsplit(base)
            scheme, netloc, prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")
        else:
            scheme, netloc, prefix = ("https" if request.secure else "http"), request.host, ""
        if websocket:
            scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
        return f"{scheme}://{netloc}{prefix}{path if path is not None else request.raw_path}"

    # -- the Twilio voice webhook ------------------------------------------------------------------

    async def twilio_voice(self, request: web.Request) -> web.Response:
        """Answer Twilio's voice webhook with TwiML connecting the call to the stream endpoint."""
        cfg = self.config
        form = await self._webhook_form(request)
        if isinstance(form, web.Response):
            return form
        params = [(key, value) for key, value in form.items() if isinstance(value, str)]
        if cfg.twilio_auth_token is not None:
            url = self._public_url(request, websocket=False)
            if not validate_signature(
                cfg.twilio_auth_token, request.headers.get(SIGNATURE_HEADER), url, params
            ):
                self.stats["webhook_refused"] += 1
                log.info("refused Twilio webhook from %s: invalid %s", request.remote, SIGNATURE_HEADER)
                return web.Response(status=403, text="invalid signature\n")
        fields = dict(params)
        if cfg.twiml_parameters is not None:
            custom = dict(cfg.twiml_parameters(fields))
        else:
            custom = {key: fields[key] for key in ("From", "To") if key in fields}
        stream_url = cfg.stream_url or self._public_url(request, websocket=True, path=cfg.twilio_path)
        self.stats["webhooks"] += 1
        return web.Response(text=connect_stream_twiml(stream_url, custom), content_type="text/xml")

    async def _webhook_form(self, request: web.Request) -> Mapping[str, Any] | web.Response:
        """The webhook's form fields, or the answer to a body that is not a form.

        Twilio posts ``application/x-www-form-urlencoded``; other bodies (multipart, which aiohttp
        would spool to temporary files) are refused with 415 before they are read.
        """
        if request.method != "POST":
            return {}
        declared = hdrs.CONTENT_TYPE in request.headers
        if declared and request.content_type != "application/x-www-form-urlencoded":
            self._count_once("webhook_unsupported_type", f"Twilio webhook: 415 for {request.content_type!r}")
            return web.Response(status=415, text="expected application/x-www-form-urlencoded\n")
        try:
            return await request.post()
        except (ValueError, LookupError) as exc:  # undecodable bytes, an unknown charset
            kind = type(exc).__name__
            self._count_once("webhook_bad_body", f"Twilio webhook: 400, malformed form ({kind})")
            return web.Response(status=400, text="malformed form body\n")
        except (ConnectionError, web.RequestPayloadError) as exc:  # cut off, broken chunked framing
            kind = type(exc).__name__
            self._count_once("webhook_bad_body", f"Twilio webhook: 400, body cut off ({kind})")
            return web.Response(status=400, text="incomplete body\n")

    def _count_once(self, counter: str, message: str) -> None:
        """Count a refusal; log it at INFO the first time per counter (a flood stays quiet)."""
        self.stats[counter] += 1
        if counter not in self._logged:
            self._logged.add(counter)
            log.info("%s (logged once, counted in %s)", message, counter)

    # -- media sockets -----------------------------------------------------------------------------

    async def _accept(self, request: web.Request, twilio: bool) -> _CarrierSocket | web.Response:
        refusal = self._refuse(request, twilio=twilio)
        if refusal is not None:
            return refusal
        cfg = self.config
        ws = _CarrierSocket(max_msg_size=cfg.max_message_bytes, heartbeat=cfg.heartbeat_s)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.stats["sockets"] += 1
        return ws

    def _spawn(self, stream: CarrierStream) -> None:
        def failed(exc: BaseException) -> None:
            log.error(
                "on_stream for %s stream %s raised; closing it", stream.kind, stream.stream_id, exc_info=exc
            )
            background(stream.close(CLOSE_INTERNAL_ERROR, "stream handler failed"), name="carrier-close")

        task = background(self._admitted(stream), name=f"on_stream-{stream.stream_id}", on_error=failed)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _admitted(self, stream: CarrierStream) -> None:
        # Asked again, with nothing in between that could await: the application may have filled
        # up (other sockets' starts, SIP calls) since this socket was admitted at its upgrade.
        reason = self.admit() if self.admit is not None else None
        if reason is not None:
            self._count_once(
                "refused_after_upgrade", f"closing a {stream.kind} stream at its start with 1013: {reason}"
            )
            await stream.close(CLOSE_TRY_AGAIN_LATER, f"not taking calls: {reason}")
            return
        await self.on_stream(stream)

    async def _serve(
        self,
        ws: _CarrierSocket,
        writer: _Writer,
        parse: Callable[[str], Any],
        apply: Callable[[Any], bool],
        started: Callable[[], bool],
        slog: _SocketLog,
    ) -> tuple[int | None, str]:
        """Run one media socket until it is over; returns (close code, reason).

        ``parse`` is the core's ``receive``; ``apply(event)`` handles an event and returns True, or
        False for one that ends the socket (a protocol error, Twilio's ``stop``), which is handled
        here. Text messages are parsed and applied straight from aiohttp's parser when possible
        (see ``_DirectQueue``); what needs ``await`` is left to this task, in order. A socket whose
        stream has not ``started()`` when the start deadline passes is closed with 1008.
        """
        stashed: list[Any] = []  # the event of the one message the direct path left queued

        def direct(text: str) -> bool:
            try:
                event = parse(text)
                if apply(event):
                    return True
            except Exception:
                log.exception("%s: handling a message failed; closing with 1011", slog.prefix)
                event = ProtocolError("internal error", CLOSE_INTERNAL_ERROR)
            stashed.append(event)
            return False

        queue = ws.direct(direct)
        timeout = self.config.start_timeout_s
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            msg = await self._receive(ws, None if started() else deadline)
            if msg is None:
                if started():
                    continue  # the start came through the direct path meanwhile
                reason = "no start message in time"
                slog.once("start_timeouts", logging.WARNING, f"closing with 1008: {reason}")
                await ws.close(code=CLOSE_POLICY_VIOLATION, message=_close_message(reason))
                return CLOSE_POLICY_VIOLATION, reason
            if msg.type is not WSMsgType.TEXT:
                return await self._ended(ws, msg.type, slog)
            event = stashed.pop() if stashed else parse(str(msg.data))
            if apply(event):
                if queue is not None:
                    queue.queued -= 1  # only now: what comes during an await below stays queued
                continue
            if isinstance(event, ProtocolError):
                slog.protocol_error(event)
                await ws.close(code=event.close_code, message=_close_message(event.reason))
                return event.close_code, event.reason
            # Twilio's stop: what was queued before it still goes out.
            await writer.drain(timeout=0.5)
            await ws.close(code=CLOSE_NORMAL, message=b"stop")
            return CLOSE_NORMAL, "stop"

    @staticmethod
    async def _receive(ws: web.WebSocketResponse, deadline: float | None) -> Any:
        """The next message aiohttp hands the task, or None once ``deadline`` (loop time) passes."""
        timeout = None
        if deadline is not None:
            # aiohttp treats a timeout of 0 as "none", hence the floor.
            timeout = max(0.001, deadline - asyncio.get_running_loop().time())
        try:
            return await ws.receive(timeout=timeout)
        except TimeoutError:
            return None

    async def _ended(
        self, ws: web.WebSocketResponse, kind: WSMsgType, slog: _SocketLog
    ) -> tuple[int | None, str]:
        """Handle a non-text message: the socket is over. Returns (close code, reason)."""
        if kind is WSMsgType.BINARY:
            reason = "binary frames are not part of the protocol"
            slog.once("binary_frames", logging.WARNING, f"closing with 1003: {reason}")
            await ws.close(code=CLOSE_UNSUPPORTED_DATA, message=_close_message(reason))
            return CLOSE_UNSUPPORTED_DATA, reason
        if kind is WSMsgType.ERROR:
            exc = ws.exception()
            # aiohttp closes with the protocol error's code (1009 for a message too big) but then
            # reports 1006; the stream ends with the code the peer was sent.
            code = exc.code if isinstance(exc, WebSocketError) else ws.close_code
            slog.once("socket_errors", logging.WARNING, f"closed with {code}: {exc}")
            return code, str(exc)
        return ws.close_code, "closed by peer"

    async def twilio_stream(self, request: web.Request) -> web.StreamResponse:
        """The Twilio Media Streams endpoint (``<Connect><Stream url=...>`` points here)."""
        accepted = await self._accept(request, twilio=True)
        if not isinstance(accepted, web.WebSocketResponse):
            return accepted
        ws = accepted
        cfg = self.config
        core = TwilioMediaStream(chunk_ms=cfg.twilio_batch_ms, mark_interval_ms=cfg.mark_interval_ms)
        writer = _Writer(ws, core.next_outgoing, "twilio-writer", request.transport)
        slog = _SocketLog("twilio", request.remote, self.stats)
        stream: TwilioCarrierStream | None = None

        def apply(event: Any) -> bool:
            nonlocal stream
            if isinstance(event, TwilioMedia):
                if stream is not None and event.track in ("inbound", "inbound_track"):
                    stream._deliver_payload(event.payload, event.timestamp_ms)
                else:
                    slog.once("media_other_track", logging.INFO, f"ignoring media of track {event.track!r}")
            elif isinstance(event, TwilioMark):
                if stream is not None and event.acknowledged_ms is not None:
                    stream._acknowledge(event.acknowledged_ms, event.source_ms)
            elif isinstance(event, TwilioStart):
                stream = TwilioCarrierStream(ws, core, writer, event, request.remote)
                stream.playout_batch_ms = cfg.twilio_batch_ms
                self.stats["streams"] += 1
                self._spawn(stream)
            elif isinstance(event, TwilioDtmf):
                if stream is not None:
                    stream._deliver_dtmf(event.digit)
            elif isinstance(event, TwilioStop | ProtocolError):
                return False
            elif isinstance(event, Ignored):
                slog.ignored(event)
            return True

        code: int | None = None
        reason = ""
        try:
            code, reason = await self._serve(
                ws, writer, core.receive, apply, lambda: stream is not None, slog
            )
        finally:
            writer.stop()
            if not ws.closed:
                await ws.close()
            self._sockets.discard(ws)
            if stream is not None:
                stream._finish(code if code is not None else ws.close_code, reason)
        return ws

    async def voxengine_media(self, request: web.Request) -> web.StreamResponse:
        """The VoxEngine WebSocket media endpoint: any number of tagged streams per socket."""
        accepted = await self._accept(request, twilio=False)
        if not isinstance(accepted, web.WebSocketResponse):
            return accepted
        ws = accepted
        core = VoxEngineMediaSocket(
            chunk_ms=self.config.chunk_ms, max_streams=self.config.max_tags_per_socket
        )
        sock = _VoxSocket(ws, core, _Writer(ws, core.next_outgoing, "wsmedia-writer", request.transport))
        slog = _SocketLog("voxengine", request.remote, self.stats)
        started = False

        def apply(event: Any) -> bool:
            nonlocal started
            if isinstance(event, WsMediaMedia):
                stream = sock.streams.get(event.tag)
                if stream is not None:
                    stream._deliver_payload(event.payload, event.timestamp_ms)
                else:
                    slog.once(
                        "media_closed_stream", logging.INFO, f"dropping media of closed tag {event.tag!r}"
                    )
            elif isinstance(event, WsMediaStart):
                started = True
                stream = VoxEngineCarrierStream(sock, event, request.remote)
                sock.streams[event.tag] = stream
                self.stats["streams"] += 1
                self._spawn(stream)
            elif isinstance(event, WsMediaStop):
                stopped = sock.streams.pop(event.tag, None)
                if stopped is not None:
                    core.stop_stream(event.tag)
                    sock.writer.kick()
                    stopped._finish(CLOSE_NORMAL, "stop")
            elif isinstance(event, ProtocolError):
                return False
            elif isinstance(event, Ignored):
                slog.ignored(event)
            return True

        code: int | None = None
        reason = ""
        try:
            code, reason = await self._serve(ws, sock.writer, core.receive, apply, lambda: started, slog)
        finally:
            sock.writer.stop()
            if not ws.closed:
                await ws.close()
            self._sockets.discard(ws)
            final = code if code is not None else ws.close_code
            for stream in list(sock.streams.values()):
                stream._finish(final, reason)
            sock.streams.clear()
        return ws
