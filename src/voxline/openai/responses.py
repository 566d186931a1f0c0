"""The Responses client: every streaming event type to its constant, turns chained by the client.

``await create_responses_api_client(api_key=..., store_context=True)`` gives a
:class:`ResponsesAPIClient`. ``client.create_responses(body)`` takes the OpenAI request body
(``input`` may be a string or an array of items), returns at once (a :class:`RequestHandle` you
may ``await`` for the final response object) and streams in the background; ``stream: true``
is forced.

Events: each SSE event's JSON, exactly as received, under the constant of its ``type``
(``response.output_text.delta`` -> ``ResponseTextDelta``, ``error`` -> ``ResponseError``, ...);
a type with no constant (a new one, or e.g. ``response.audio.delta``) arrives as ``Unknown``.
``ResponsesAPIError`` ``{status, message, code, type, param, retry_after, error}`` reports an
HTTP error, an ``error`` event or ``{"error": ...}`` object inside the stream (after its own
``ResponseError`` / raw event), a stream that ends before a terminal event
(``response.completed`` / ``.incomplete`` / ``.failed``), and network failures (``status`` None).
A ``response.failed`` is the model's answer, not a transport error: it is delivered as
``ResponseFailed`` only. ``ConnectorInformation`` arrives when each response's headers do.

Queue / cancel rule (as the Chat Completions client): a new request cancels the one in flight
unless called with ``queue=True`` or made once the response is over (from a ``ResponseCompleted``
listener: it then chains on that response); ``cancel()`` aborts at once and no further event of that
request is delivered. ``id()``, ``web_socket_id()``, ``statistics()``, ``warm_up()``, ``drain()``,
``close()`` and ``wait_closed()`` are as on the Chat Completions client.

Stored context (``store_context=True``), one of two ways per request:

- ``store`` not false (OpenAI's default): turns are chained with ``previous_response_id`` set
  to the last response that completed (or ended incomplete); a request that names its own
  ``previous_response_id`` or ``conversation`` is sent as is. Input of a cancelled request is
  sent again, ahead of the next request's input, so the model hears what the caller said.
- ``store: false``: the client keeps the history locally (the inputs and each response's output
  items) and sends it as ``input``.

``instructions`` are not carried by ``previous_response_id`` on OpenAI's side, so with stored
context the client re-sends the last ``instructions`` it was given when a request has none.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Unpack, cast

import httpx

from ..context import adopt
from ._http import (
    Clock,
    RequestHandle,
    StreamingHTTPClient,
    check_request_parameters,
    error_payload,
    parse_event_json,
    stream_error_payload,
    with_default_base_url,
)
from .events import RESPONSES_SERVER_TYPES, ResponsesAPIEvents
from .params import ResponsesAPIClientParameters, build_parameters
from .sse import SSEEvent

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..eventtarget import Event
    from .typed import ResponsesAPIClientOptions, ResponsesEventType

R = ResponsesAPIEvents
TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})
_CHAINABLE = frozenset({"response.completed", "response.incomplete"})
# Output items that can go back as input when the history is kept locally.
_REPLAYABLE_ITEMS = frozenset({"message", "function_call", "custom_tool_call", "reasoning"})


def input_items(value: Any) -> list[Any]:
    """``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return copy.deepcopy(value)
    return []


class ResponsesContext:
    """Sans-I/O: what stored context adds to a request."""

    def __init__(self) -> None:
        self.previous_response_id: str | None = None
        self.instructions: Any = None
        self.history: list[Any] = []  # store: false
        self.unsent: list[Any] = []  # input of cancelled requests, sent with the next one

    def prepare(self, body: dict[str, Any]) -> list[Any]:
        """Add context to ``body`` in place; returns the input items this request contributes."""
        resend = self.unsent
        self.unsent = []
        new_items = resend + input_items(body.get("input"))
        if "instructions" in body:
            self.instructions = body["instructions"]
        elif self.instructions is not None:
            body["instructions"] = self.instructions
        if body.get("store") is False:
            body["input"] = copy.deepcopy(self.history) + new_items
            return new_items
        if "previous_response_id" not in body and "conversation" not in body and self.previous_response_id:
            body["previous_response_id"] = self.previous_response_id
        if resend:
            body["input"] = copy.deepcopy(new_items)
        return new_items

    def completed(self, body: Mapping[str, Any], new_items: list[Any], response: Mapping[str, Any]) -> None:
        if body.get("store") is False:
            self.history.extend(copy.deepcopy(new_items))
            for item in response.get("output") or []:
                if isinstance(item, Mapping) and item.get("type") in _REPLAYABLE_ITEMS:
                    if item.get("type") == "reasoning" and not item.get("encrypted_content"):
                        continue  # a reasoning item without its content cannot be sent back
                    self.history.append(copy.deepcopy(dict(item)))
        else:
            response_id = response.get("id")
            if isinstance(response_id, str):
                self.previous_response_id = response_id

    def cancelled(self, body: Mapping[str, Any], new_items: list[Any]) -> None:
        if body.get("store") is False:
            self.history.extend(copy.deepcopy(new_items))
        else:
            self.unsent = copy.deepcopy(new_items) + self.unsent


class _ResponsesRequestState:
    def __init__(self, new_items: list[Any], body: dict[str, Any]) -> None:
        self.new_items = new_items
        self.body = body
        self.response: dict[str, Any] | None = None


class ResponsesAPIClient(StreamingHTTPClient):
    """OpenAI Responses over HTTP + SSE, VoxEngine's ``OpenAI.ResponsesAPIClient``."""

    _kind = "responses"
    _stream_end = "the response completed"
    _path = "responses"
    _error_event = R.ResponsesAPIError.value
    _connector_event = R.ConnectorInformation.value
    _event_aliases = MappingProxyType({k: v.value for k, v in RESPONSES_SERVER_TYPES.items()})
    _event_enums = (ResponsesAPIEvents,)

    if TYPE_CHECKING:
        # For mypy (voxline.openai.typed): a constant or a provider event type, nothing else.
        def add_event_listener(  # type: ignore[override]
            self, event: ResponsesAPIEvents | ResponsesEventType, callback: Callable[[Event], Any]
        ) -> None: ...

    def __init__(
        self,
        parameters: ResponsesAPIClientParameters,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(parameters, transport=transport, clock=clock)
        self._context = ResponsesContext() if parameters.store_context else None

    def create_responses(self, parameters: Mapping[str, Any], *, queue: bool = False) -> RequestHandle:
        """Send a Responses request (the OpenAI body); returns at once, streams in the background."""
        body = check_request_parameters(parameters, "create_responses")
        value = body.get("input")
        if value is not None and not isinstance(value, str | list):
            raise TypeError(
                f"create_responses(parameters): parameters['input'] must be a string or a list, "
                f"not {type(value).__name__}"
            )
        return self._submit(body, queue)

    @property
    def previous_response_id(self) -> str | None:
        """The response the next request will chain on (stored context), if any."""
        return self._context.previous_response_id if self._context is not None else None

    def reset_context(self) -> None:
        if self._context is not None:
            self._context = ResponsesContext()

    # -- hooks

    def _prepare_body(self, handle: RequestHandle) -> dict[str, Any]:
        body = copy.deepcopy(handle.body)
        new_items = self._context.prepare(body) if self._context is not None else []
        body["stream"] = True
        handle.state = _ResponsesRequestState(new_items, body)
        return body

    def _state(self, handle: RequestHandle) -> _ResponsesRequestState:
        return cast(_ResponsesRequestState, handle.state)

    def _on_event(self, handle: RequestHandle, event: SSEEvent) -> bool:
        if event.done:
            # Not OpenAI's (its stream just ends), but some compatible servers send it.
            self._on_stream_end(handle, False)
            return True
        data = parse_event_json(event)
        if not isinstance(data, dict):
            self._emit(handle, R.Unknown.value, {"raw": event.data, "event": event.event})
            return False
        event_type = data.get("type")
        if not isinstance(event_type, str):
            event_type = event.event
        if event_type == "error" or (data.get("error") and "type" not in data):
            constant = RESPONSES_SERVER_TYPES.get("error") if event_type == "error" else None
            self._emit(handle, (constant or R.Unknown).value, data)
            if event_type == "error" and not isinstance(data.get("error"), Mapping):
                error = error_payload(
                    status=200,
                    message=str(data.get("message") or "An error occurred during streaming"),
                    code=cast(str | None, data.get("code")),
                    param=cast(str | None, data.get("param")),
                    error=data,
                )
            else:
                error = stream_error_payload(data.get("error"), 200)
            self._fail(handle, error)
            return True
        constant = RESPONSES_SERVER_TYPES.get(event_type, R.Unknown)
        if event_type in TERMINAL_TYPES:
            handle.generated = True  # a request made from this event's listener waits for the context
        if event_type.endswith(".delta"):
            self._mark_token(handle)
        if event_type in TERMINAL_TYPES:
            # Context and handle first: a listener's next request or cancel() finds the turn over.
            response = data.get("response")
            self._finish(handle, event_type, response if isinstance(response, dict) else {})
            self._emit(handle, constant.value, data)
            return True
        self._emit(handle, constant.value, data)
        return False

    def _finish(self, handle: RequestHandle, event_type: str, response: dict[str, Any]) -> None:
        state = self._state(handle)
        state.response = response
        self._add_usage(response.get("usage"))
        if self._context is not None and event_type in _CHAINABLE:
            self._context.completed(state.body, state.new_items, response)
        self._complete(handle, response)

    def _on_json_body(self, handle: RequestHandle, body: Any) -> None:
        if isinstance(body, dict) and body.get("error"):
            self._fail(handle, stream_error_payload(body["error"], 200))
        elif isinstance(body, dict) and body.get("object") == "response":
            self._finish(handle, "response.completed", body)
            self._emit(handle, R.ResponseCompleted.value, {"type": "response.completed", "response": body})
        else:
            self._emit(handle, R.Unknown.value, body)
            self._fail(
                handle, error_payload(status=200, message="not a response object", code="invalid_response")
            )

    def _on_cancelled(self, handle: RequestHandle) -> None:
        self._stats["cancelled"] += 1
        if self._context is None:
            return
        state = handle.state
        if isinstance(state, _ResponsesRequestState):
            self._context.cancelled(state.body, state.new_items)
        else:
            self._context.cancelled(handle.body, input_items(handle.body.get("input")))


async def create_responses_api_client(
    parameters: ResponsesAPIClientParameters | Mapping[str, Any] | None = None,
    /,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    **kwargs: Unpack[ResponsesAPIClientOptions],
) -> ResponsesAPIClient:
    """``OpenAI.create_responses_api_client``: a parameters object, a dict (camelCase keys allowed)
    or keyword arguments (``api_key``, ``base_url``, ``project``, ``store_context``, ``statistics``,
    ``trace``, ``privacy``). ``transport``: an ``httpx`` transport, for tests and proxies.
    Without ``base_url``, ``OPENAI_BASE_URL`` is used when set (as the official SDKs do)."""
    params = build_parameters(
        ResponsesAPIClientParameters, parameters, with_default_base_url(parameters, kwargs)
    )
    client = ResponsesAPIClient(params, transport=transport)
    adopt(client)  # the call session closes it when it terminates
    return client
