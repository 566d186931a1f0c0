"""What the Chat Completions and Responses clients share: one keep-alive HTTP pool, request
handles, the queue-or-replace rule, error payloads, statistics, trace and the SSE read loop.

The protocol work (SSE framing, chunk accumulation, context) is sans-I/O in ``sse.py`` and the
client modules; this layer only moves bytes between ``httpx`` and those cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import httpx

from .._tasks import background
from .._version import __version__
from ..eventtarget import Event, EventTarget
from ..logs import mask_secret
from ._common import MessageLog, Tracer, connector_information, new_id, redact_url
from .params import ClientParameters
from .realtime import ClientClosedError
from .sse import SSEError, SSEEvent, SSEParser

log = logging.getLogger("voxline.openai.http")

# Between two chunks a model may think for a while; a minute of silence means the stream is dead.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=30.0)
# Turns in a call are often more than httpx's default 5 s apart: keep the TLS connection warm.
KEEPALIVE_EXPIRY = 120.0
MAX_ERROR_BODY = 64 * 1024
_VERSION_SEGMENT = re.compile(r"v\d+[a-z0-9]*")

Clock = Callable[[], float]


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` + ``v1/`` + path, unless the base already ends in a version segment.

    ``https://api.openai.com/`` (the reference's default) gets ``/v1/...``; an OpenAI-compatible
    base such as ``https://api.groq.com/openai/v1`` is used as given.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"parameter 'base_url' must be an http(s) URL for this client, not {base_url!r}")
    base = base_url.rstrip("/")
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not _VERSION_SEGMENT.fullmatch(last):
        base += "/v1"
    return f"{base}/{path}"


def with_default_base_url(parameters: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Without a ``base_url``: ``OPENAI_BASE_URL`` (as the official SDKs read it), else OpenAI."""
    given = dict(parameters) if isinstance(parameters, Mapping) else {}
    if (parameters is None or isinstance(parameters, Mapping)) and not (
        {"base_url", "baseUrl"} & (set(given) | set(kwargs))
    ):
        env = os.environ.get("OPENAI_BASE_URL")
        if env:
            return {**kwargs, "base_url": env}
    return dict(kwargs)


def error_payload(
    *,
    status: int | None,
    message: str,
    code: str | None = None,
    type: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
    error: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``data`` of ``ChatCompletionsAPIError`` / ``ResponsesAPIError``."""
    payload: dict[str, Any] = {
        "status": status,
        "message": message,
        "code": code,
        "type": type,
        "param": param,
        "retry_after": retry_after,
        "error": error,
    }
    payload.update(extra)
    return payload


def http_error_payload(status: int, reason: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """A non-2xx answer: OpenAI's ``{"error": {message, type, param, code}}`` when it is there."""
    retry_after: float | None = None
    raw_retry = headers.get("retry-after")
    if raw_retry is not None:
        with contextlib.suppress(ValueError):
            retry_after = float(raw_retry)
    text = body.decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        message = err.get("message")
        return error_payload(
            status=status,
            message=message if isinstance(message, str) and message else f"HTTP {status} {reason}",
            code=_str_or_none(err.get("code")),
            type=_str_or_none(err.get("type")),
            param=_str_or_none(err.get("param")),
            retry_after=retry_after,
            error=err,
        )
    detail = text.strip()[:500]
    return error_payload(
        status=status,
        message=f"HTTP {status} {reason}" + (f": {detail}" if detail else ""),
        retry_after=retry_after,
        error=parsed,
    )


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def stream_error_payload(error: Any, status: int | None) -> dict[str, Any]:
    """An error object sent inside a 200 stream (``data: {"error": {...}}``)."""
    if isinstance(error, dict):
        message = error.get("message")
        return error_payload(
            status=status,
            message=message if isinstance(message, str) and message else "An error occurred during streaming",
            code=_str_or_none(error.get("code")),
            type=_str_or_none(error.get("type")),
            param=_str_or_none(error.get("param")),
            error=error,
        )
    return error_payload(
        status=status, message=str(error) or "An error occurred during streaming", error=error
    )


def network_error_payload(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, httpx.TimeoutException):
        code = "timeout"
    elif isinstance(exc, httpx.ConnectError):
        code = "connection_failed"
    elif isinstance(exc, SSEError):
        code = "invalid_stream"
    else:
        code = "connection_error"
    return error_payload(status=None, message=f"{type(exc).__name__}: {exc}", code=code, type="network_error")


class RequestHandle:
    """One ``create_*`` call: awaitable, cancellable.

    ``await handle`` (or ``await handle.wait()``) returns the final result (the completion or the
    response object) or ``None`` when the request failed or was cancelled; it never raises for
    API errors, which arrive as error events and in ``handle.error``. ``status`` is ``queued``,
    ``streaming``, ``completed``, ``failed`` or ``cancelled``; ``generated`` turns true once the
    model's answer is complete (before the stream's end).
    """

    def __init__(self, client: StreamingHTTPClient, body: dict[str, Any]) -> None:
        self.id = new_id()
        self.status = "queued"  # queued -> streaming -> completed | failed | cancelled
        # The model's answer is complete; only the end of the stream (usage, terminator) is left.
        self.generated = False
        self.result: Any = None
        self.error: dict[str, Any] | None = None
        self.body = body
        self.state: Any = None  # per-client stream state
        self._client = client
        self._finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._sent_at: float | None = None
        self._first_token_at: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ("queued", "streaming")

    def done(self) -> bool:
        return not self.active

    def cancel(self) -> bool:
        """Abort now: no further event of this request reaches a listener. False if already over."""
        if not self.active:
            return False
        self.status = "cancelled"
        self._client._on_cancelled(self)
        self._client._request_over(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._finish()
        return True

    async def wait(self) -> Any:
        await asyncio.shield(self._finished)
        return self.result

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()

    def _finish(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    def __repr__(self) -> str:
        return f"<RequestHandle {self.id} {self.status}>"


class StreamingHTTPClient(EventTarget):
    """Base of the two HTTP clients: pool, queue/replace rule, read loop, stats, trace, close."""

    _kind: ClassVar[str]
    _path: ClassVar[str]
    _error_event: ClassVar[str]
    _connector_event: ClassVar[str]

    def __init__(
        self,
        parameters: ClientParameters,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self._params = parameters
        self._id = new_id()
        # No WebSocket here: web_socket_id() names the client's HTTP connection pool instead.
        self._connection_id = new_id()
        self._url = endpoint_url(parameters.base_url, self._path)
        self._clock = clock
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._inflight: list[RequestHandle] = []
        self._background: set[asyncio.Task[Any]] = set()  # summaries
        self._request_tasks: set[asyncio.Task[Any]] = set()  # streaming or reading a body to its end
        self._tracer = (
            Tracer.for_client(self._kind, self._id, parameters.privacy) if parameters.trace else None
        )
        self._msglog = MessageLog(log, self._id, parameters.privacy)
        mask_secret(parameters.api_key)  # no log line shows it, whatever its shape
        headers = {
            "Authorization": f"Bearer {parameters.api_key}",
            "User-Agent": f"voxline/{__version__}",
        }
        project = getattr(parameters, "project", None)
        if project:
            headers["OpenAI-Project"] = project
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=DEFAULT_TIMEOUT,
            limits=httpx.Limits(
                max_connections=8, max_keepalive_connections=4, keepalive_expiry=KEEPALIVE_EXPIRY
            ),
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )
        self._stats: dict[str, Any] = {
            "requests": 0,
            "completed": 0,
            "errors": 0,
            "cancelled": 0,
            "bytes_sent": 0,
            "bytes_received": 0,
            "events": 0,
            "usage": {},
            "ttft_last_ms": None,
            "ttft_avg_ms": None,
        }
        self._ttft_total = 0.0
        self._ttft_count = 0

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self._id} {redact_url(self._url)}{state}>"

    # ----------------------------------------------------------------------------- public API

    def id(self) -> str:
        return self._id

    def web_socket_id(self) -> str:
        """A stable id of this client's HTTP connection pool (there is no WebSocket)."""
        return self._connection_id

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> dict[str, Any]:
        """Counters (with ``statistics=True``): requests, completed, errors, cancelled, bytes each way,
        events, summed token usage, time to first token of the last request and the average (ms).
        They are also logged when the client closes."""
        if not self._params.statistics:
            raise RuntimeError("statistics are off for this client: create it with statistics=True")
        stats = dict(self._stats)
        stats["usage"] = dict(self._stats["usage"])
        return stats

    def cancel(self) -> bool:
        """Abort the streaming request and drop queued ones at once (barge-in). True if any was active."""
        cancelled = False
        for handle in list(self._inflight):
            cancelled = handle.cancel() or cancelled
        return cancelled

    def close(self) -> asyncio.Task[None] | None:
        """Cancel every request, release listeners and close the connection pool. Idempotent.

        Returns a task that finishes when the pool is closed (``await client.close()`` works),
        or None when there is no running event loop.
        """
        if self._closed:
            return self._close_task
        self._closed = True
        self.cancel()
        for task in [*self._background, *self._request_tasks]:
            task.cancel()
        self._release_listeners()
        if self._tracer is not None:
            self._tracer.close()
        if self._params.statistics:
            log.info("%s %s statistics: %s", self._kind, self._id, json.dumps(self._stats))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._close_task = loop.create_task(self._http.aclose())
        return self._close_task

    async def wait_closed(self) -> None:
        """After ``close()``: wait until the connection pool is closed."""
        if self._close_task is not None:
            await asyncio.shield(self._close_task)

    async def warm_up(self) -> bool:
        """Open the connection before it is needed (e.g. when a call is answered), so the first
        request of the call pays no TCP/TLS handshake: one ``GET models``, body discarded.
        Opt-in; returns True when the server answered."""
        self._check_open()
        try:
            response = await self._http.get(endpoint_url(self._params.base_url, "models"))
        except httpx.HTTPError as exc:
            log.info("%s %s: warm-up failed: %s", self._kind, self._id, exc)
            return False
        return response.status_code < 500

    async def drain(self) -> None:
        """Wait until no request is queued or streaming and no background work (summaries) runs."""
        while self._inflight or self._background:
            waits: list[Any] = [h._finished for h in self._inflight]
            waits.extend(self._background)
            await asyncio.wait(waits)

    # ----------------------------------------------------------------------------- subclass hooks

    def _prepare_body(self, handle: RequestHandle) -> dict[str, Any]:
        """The JSON body to send, built when the request starts (after any queued predecessor)."""
        raise NotImplementedError

    def _on_event(self, handle: RequestHandle, event: SSEEvent) -> bool:
        """Handle one SSE event; True when the request is finished (terminal event seen)."""
        raise NotImplementedError

    #: How an API's stream ends normally ("[DONE]", the terminal response event).
    _stream_end: ClassVar[str] = "its end"

    def _on_stream_end(self, handle: RequestHandle, truncated: bool) -> None:
        """The body ended without a terminal event: the request failed on the network."""
        self._fail(
            handle,
            error_payload(
                status=200,
                message=f"the stream ended before {self._stream_end}"
                + (" in the middle of an event" if truncated else ""),
                code="stream_interrupted",
                type="network_error",
            ),
        )

    def _on_json_body(self, handle: RequestHandle, body: Any) -> None:
        """A 2xx answer that is not an event stream (a provider that ignored ``stream: true``)."""
        raise NotImplementedError

    def _on_cancelled(self, handle: RequestHandle) -> None:
        """The request was cancelled (context bookkeeping)."""

    def _on_failed(self, handle: RequestHandle) -> None:
        """The request failed (context bookkeeping)."""

    # ----------------------------------------------------------------------------- machinery

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{type(self).__name__} {self._id} is closed")

    def _submit(self, body: dict[str, Any], queue: bool) -> RequestHandle:
        """Rule: a new request cancels the requests in flight whose answer is still being generated,
        and starts after one whose answer is complete (so a request made from a ``ContentDone`` or
        ``ResponseCompleted`` listener sees that turn in the stored context). With ``queue`` true it
        starts when the previous request is over, whatever its state."""
        self._check_open()
        if not isinstance(queue, bool):
            raise TypeError(f"queue must be a bool, not {type(queue).__name__}")
        previous: RequestHandle | None = None
        if queue:
            previous = self._inflight[-1] if self._inflight else None
        else:
            for handle in list(self._inflight):
                if handle.generated:
                    previous = handle
                else:
                    handle.cancel()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{type(self).__name__}: requests need a running event loop "
                "(call from async code or an event handler)"
            ) from None
        handle = RequestHandle(self, body)
        self._inflight.append(handle)
        task = background(self._run(handle, previous), name=f"{self._kind} request {handle.id}")
        handle._task = task
        self._request_tasks.add(task)
        task.add_done_callback(self._request_tasks.discard)
        return handle

    def _request_over(self, handle: RequestHandle) -> None:
        with contextlib.suppress(ValueError):
            self._inflight.remove(handle)

    def _emit(self, handle: RequestHandle | None, name: str, data: Any) -> None:
        if self._closed or (handle is not None and handle.status == "cancelled"):
            return
        self._stats["events"] += 1
        self._dispatch(Event(name=name, client=self, data=data))

    def _mark_token(self, handle: RequestHandle) -> None:
        if handle._first_token_at is not None or handle._sent_at is None:
            return
        handle._first_token_at = self._clock()
        ms = (handle._first_token_at - handle._sent_at) * 1000.0
        self._ttft_total += ms
        self._ttft_count += 1
        self._stats["ttft_last_ms"] = round(ms, 3)
        self._stats["ttft_avg_ms"] = round(self._ttft_total / self._ttft_count, 3)

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        total = self._stats["usage"]
        for key, value in usage.items():
            if isinstance(value, int) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value

    def _complete(self, handle: RequestHandle, result: Any) -> None:
        if not handle.active:
            return
        handle.status = "completed"
        handle.result = result
        self._stats["completed"] += 1
        self._request_over(handle)
        handle._finish()

    def _fail(self, handle: RequestHandle, error: dict[str, Any]) -> None:
        if not handle.active:
            return
        handle.status = "failed"
        handle.error = error
        self._stats["errors"] += 1
        self._msglog.message("in", "error", 0, json.dumps(error, default=str))
        self._emit(handle, self._error_event, error)
        self._on_failed(handle)
        self._request_over(handle)
        handle._finish()

    def _trace(self, direction: str, msg_type: str, size: int, message: Any, text: str | None) -> None:
        self._msglog.message(direction, msg_type, size, text)
        if self._tracer is not None:
            self._tracer.record(direction, msg_type, size, message() if callable(message) else message)

    async def _run(self, handle: RequestHandle, previous: RequestHandle | None) -> None:
        try:
            if previous is not None:
                await asyncio.shield(previous._finished)
            if not handle.active or self._closed:
                return
            await self._stream(handle)
        except asyncio.CancelledError:
            if handle.active:
                handle.cancel()
            raise
        except (httpx.HTTPError, SSEError, OSError) as exc:
            self._fail(handle, network_error_payload(exc))
        except Exception as exc:
            log.exception("%s %s: request %s failed", self._kind, self._id, handle.id)
            self._fail(
                handle, error_payload(status=None, message=f"internal error: {exc}", code="internal_error")
            )
        finally:
            if handle.active:
                self._fail(handle, error_payload(status=None, message="request ended", code="internal_error"))
            self._request_over(handle)
            handle._finish()

    async def _stream(self, handle: RequestHandle) -> None:
        body = self._prepare_body(handle)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self._stats["requests"] += 1
        self._stats["bytes_sent"] += len(payload)
        self._trace("out", f"POST {self._path}", len(payload), body, payload.decode("utf-8"))
        handle.status = "streaming"
        handle._sent_at = self._clock()
        request = self._http.build_request(
            "POST",
            self._url,
            content=payload,
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        response = await self._http.send(request, stream=True)
        try:
            self._emit(
                handle,
                self._connector_event,
                connector_information(
                    self._id,
                    self._url,
                    self._tracer,
                    connectionId=self._connection_id,
                    requestId=response.headers.get("x-request-id"),
                    status=response.status_code,
                    processingMs=response.headers.get("openai-processing-ms"),
                    rateLimits={
                        k[len("x-ratelimit-") :]: v
                        for k, v in response.headers.items()
                        if k.lower().startswith("x-ratelimit-")
                    },
                ),
            )
            if response.status_code >= 400:
                data = bytearray()
                async for piece in response.aiter_bytes():
                    data += piece
                    if len(data) > MAX_ERROR_BODY:
                        break
                self._stats["bytes_received"] += response.num_bytes_downloaded
                self._trace(
                    "in",
                    f"HTTP {response.status_code}",
                    len(data),
                    None,
                    bytes(data[:2000]).decode("utf-8", errors="replace"),
                )
                self._fail(
                    handle,
                    http_error_payload(
                        response.status_code, response.reason_phrase, response.headers, bytes(data)
                    ),
                )
                return
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                raw = await response.aread()
                self._stats["bytes_received"] += len(raw)
                self._trace("in", "json", len(raw), None, raw[:2000].decode("utf-8", errors="replace"))
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    self._fail(
                        handle,
                        error_payload(
                            status=response.status_code,
                            message=f"expected an event stream, got {content_type or 'no content type'}",
                            code="invalid_response",
                        ),
                    )
                    return
                self._on_json_body(handle, parsed)
                return
            parser = SSEParser()
            finished = False
            async for piece in response.aiter_bytes():
                self._stats["bytes_received"] += len(piece)
                if finished:
                    continue  # read to the end so the connection goes back to the pool
                for event in parser.feed(piece):
                    if not handle.active:
                        return
                    self._trace(
                        "in", event.event, len(event.data), lambda e=event: _trace_data(e), event.data
                    )
                    if self._on_event(handle, event):
                        finished = True
                        break
            if not finished and handle.active:
                self._on_stream_end(handle, parser.pending)
        finally:
            await response.aclose()


def _trace_data(event: SSEEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        return event.data


def parse_event_json(event: SSEEvent) -> Any:
    """The event's JSON, or None when the data is not JSON."""
    try:
        return json.loads(event.data)
    except ValueError:
        return None


def check_request_parameters(parameters: Any, method: str) -> dict[str, Any]:
    """A JSON-able copy of the request body, or an error naming what is wrong."""
    if not isinstance(parameters, Mapping):
        raise TypeError(f"{method}(parameters): parameters must be a dict, not {type(parameters).__name__}")
    try:
        body = json.loads(json.dumps(dict(parameters)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{method}(parameters): parameters must be JSON-serialisable ({exc})") from None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(f"{method}(parameters): parameters['model'] must be a non-empty string")
    return cast(dict[str, Any], body)
