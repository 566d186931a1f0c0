"""The Chat Completions client: every streaming event, stored context with a rolling summary.

``await create_chat_completions_api_client(api_key=..., store_context=True)`` gives a
:class:`ChatCompletionsAPIClient`. ``client.create_chat_completions(body)`` takes the OpenAI
request body, returns at once (a :class:`RequestHandle` you may ``await`` for the final
completion) and streams in the background. ``stream: true`` is forced, and
``stream_options: {"include_usage": true}`` is added unless you set ``stream_options``.

Events (``event.data``):

- ``Chunk``: every ``chat.completion.chunk`` exactly as received.
- The stream-helper events of the official SDKs, with their payloads (snake_case, as the Python
  SDK's ``openai.lib.streaming.chat`` events dump): ``ContentDelta`` ``{type, delta, snapshot,
  parsed}``, ``ContentDone`` ``{type, content, parsed}``, ``RefusalDelta`` ``{type, delta,
  snapshot}``, ``RefusalDone`` ``{type, refusal}``, ``FunctionToolCallArgumentsDelta`` ``{type,
  name, index, arguments, parsed_arguments, arguments_delta}``, ``FunctionToolCallArgumentsDone``
  ``{type, name, index, arguments, parsed_arguments}``, ``LogProbsContentDelta`` ``{type, content,
  snapshot}``, ``LogProbsContentDone`` ``{type, content}``, ``LogProbsRefusalDelta`` ``{type,
  refusal, snapshot}``, ``LogProbsRefusalDone`` ``{type, refusal}``. Same order and same firing
  rules as ``ChatCompletionStreamState``. ``parsed`` / ``parsed_arguments`` follow the SDK too:
  arguments are parsed (partially while streaming) for tools declared ``"strict": true``; content
  is parsed when ``response_format`` is ``json_schema`` (the dict form of the SDK's typed
  formats); otherwise they are ``None``. Difference: where the SDK raises
  ``LengthFinishReasonError`` for a typed format cut by ``max_tokens``, voxline emits the events
  (``parsed`` is ``None`` if the JSON is incomplete) and ``Content`` shows ``finish_reason``.
- ``Content``: once, at the end: the whole ``chat.completion`` object (as a non-streaming
  request would return it: choices with ``message``, ``finish_reason``, ``logprobs``; ``usage``).
- ``ChatCompletionsAPIError``: ``{status, message, code, type, param, retry_after, error}`` for an
  HTTP error (OpenAI's message and code), an error object inside the stream, a dropped or
  truncated stream or a network failure (``status`` None, ``type`` ``"network_error"``), and a
  failed summary request (``request: "summary"``).
- ``ConnectorInformation``: when each response's headers arrive (client id, endpoint, trace file,
  ``requestId``, ``status``, ``rateLimits``).
- ``Unknown``: any stream data that is not a chunk (raw payload, or ``{"raw": text}``).

Queue / cancel rule: a new ``create_chat_completions`` cancels the request in flight (and any
queued one) while its answer is still being generated — the newest turn wins, as in a barge-in;
a request whose answer is complete (every choice has its ``finish_reason``; only usage and
``[DONE]`` are left) is not cancelled: the new one starts right after it, so a request made from
a ``ContentDone`` listener sees that turn in the stored context. ``queue=True`` always starts the
new request after the previous one is over. ``client.cancel()`` / ``handle.cancel()`` abort at
once: no further event of that request reaches a listener and its connection is closed (the
pool opens a fresh one for the next request; completed requests leave theirs warm for reuse).
No request is retried automatically; 429 errors carry ``retry_after``. Connections are kept
alive for two minutes between requests, so turns of a live call reuse one TLS connection.

Other methods: ``id()``; ``web_socket_id()`` (there is no WebSocket: a stable id of the client's
HTTP connection pool); ``statistics()`` (with ``statistics=True``); ``cancel()``; ``drain()``
(wait until no request or summary is running); ``close()`` (cancel everything, release the
listeners, close the pool; idempotent; later requests raise ``ClientClosedError``) and
``wait_closed()``; ``warm_up()`` (opt-in: open the connection ahead of the first request with
one ``GET models``); ``context()`` / ``summary`` / ``reset_context()`` for stored context.

Stored context (``store_context=True``): the client keeps the conversation and sends it with
each request. You send only what is new (the user's message, tool results). Leading
``system`` / ``developer`` messages of a request become the *instructions* (replacing earlier
ones, always sent first, never summarised). A completed request adds its messages and the
assistant's reply (content and tool calls) to the history; a cancelled one adds its messages
only (the caller did say them), or the whole turn if the answer was already complete; a failed
one adds nothing (send it again). With ``n`` > 1 the first choice is the one kept. When the
history grows past ``context_budget_chars`` (the length of its messages' JSON; default 24 000 chars,
roughly 6 000 tokens), the older turns are folded into a summary in the background: one
non-streaming request to ``summary_model`` whose system prompt is ``summary_prompt`` with the
previous summary inserted (at ``{previous_summary}`` if the prompt has it, appended otherwise)
and whose user message lists the messages to fold. The newest turns (up to half the budget,
always starting at a user message so tool calls stay with their results) are kept; the summary
is sent as a system message after the instructions. Summarising never delays a request.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Unpack, cast

import httpx

from .._tasks import background
from ..context import adopt
from ._http import (
    Clock,
    RequestHandle,
    StreamingHTTPClient,
    check_request_parameters,
    error_payload,
    http_error_payload,
    network_error_payload,
    parse_event_json,
    stream_error_payload,
    with_default_base_url,
)
from .chat_context import (
    DEFAULT_CONTEXT_BUDGET_CHARS,
    SUMMARY_HEADER,
    ConversationContext,
    message_size,
    render_transcript,
    summary_messages,
)
from .chat_stream import ChatCompletionStream, HelperEvent, accumulate_delta, parse_partial_json
from .events import CHAT_COMPLETIONS_TYPES, ChatCompletionsAPIEvents
from .params import ChatCompletionsAPIClientParameters, build_parameters
from .sse import SSEEvent

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..eventtarget import Event
    from .typed import ChatCompletionsAPIClientOptions, ChatCompletionsEventType

# The stream accumulator (chat_stream) and the stored context (chat_context) are sans-I/O modules of
# their own; their names stay importable from here.
__all__ = [
    "DEFAULT_CONTEXT_BUDGET_CHARS",
    "SUMMARY_HEADER",
    "ChatCompletionStream",
    "ChatCompletionsAPIClient",
    "ConversationContext",
    "HelperEvent",
    "accumulate_delta",
    "create_chat_completions_api_client",
    "message_size",
    "parse_partial_json",
    "render_transcript",
    "summary_messages",
]

log = logging.getLogger("voxline.openai.chat")

E = ChatCompletionsAPIEvents


def _is_chunk(data: dict[str, Any]) -> bool:
    # Some OpenAI-compatible servers leave out "object"; Azure's filter events have object "".
    if "object" in data:
        return bool(data["object"] == "chat.completion.chunk")
    return isinstance(data.get("choices"), list)


class _ChatRequestState:
    def __init__(self, stream: ChatCompletionStream, new_messages: list[dict[str, Any]]) -> None:
        self.stream = stream
        self.new_messages = new_messages
        self.done = False


class ChatCompletionsAPIClient(StreamingHTTPClient):
    """OpenAI Chat Completions over HTTP + SSE, VoxEngine's ``OpenAI.ChatCompletionsAPIClient``."""

    _kind = "chat-completions"
    _stream_end = "[DONE]"
    _path = "chat/completions"
    _error_event = E.ChatCompletionsAPIError.value
    _connector_event = E.ConnectorInformation.value
    _event_aliases = MappingProxyType({k: v.value for k, v in CHAT_COMPLETIONS_TYPES.items()})
    _event_enums = (ChatCompletionsAPIEvents,)

    if TYPE_CHECKING:
        # For mypy (voxline.openai.typed): a constant or a provider event type, nothing else.
        def add_event_listener(  # type: ignore[override]
            self, event: ChatCompletionsAPIEvents | ChatCompletionsEventType, callback: Callable[[Event], Any]
        ) -> None: ...

    def __init__(
        self,
        parameters: ChatCompletionsAPIClientParameters,
        *,
        context_budget_chars: int = DEFAULT_CONTEXT_BUDGET_CHARS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(parameters, transport=transport, clock=clock)
        self._chat_params = parameters
        self._context = ConversationContext(context_budget_chars) if parameters.store_context else None
        self._summarizing = False
        self._stats["summaries"] = 0

    # -- public

    def create_chat_completions(self, parameters: Mapping[str, Any], *, queue: bool = False) -> RequestHandle:
        """Send a Chat Completions request (the OpenAI body); returns at once, streams in the background."""
        body = check_request_parameters(parameters, "create_chat_completions")
        messages = body.get("messages", [] if self._context is not None else None)
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise TypeError(
                "create_chat_completions(parameters): parameters['messages'] must be a list of messages"
            )
        if not messages and (self._context is None or not self._context.history):
            raise ValueError("create_chat_completions(parameters): parameters['messages'] must not be empty")
        body["messages"] = messages
        return self._submit(body, queue)

    @property
    def store_context(self) -> bool:
        return self._context is not None

    def context(self) -> list[dict[str, Any]]:
        """The messages stored context would send before a request's own (empty without store_context)."""
        if self._context is None:
            return []
        return cast(list[dict[str, Any]], self._context.messages_for(None, []))

    @property
    def summary(self) -> str | None:
        return self._context.summary if self._context is not None else None

    def reset_context(self) -> None:
        """Forget the stored conversation, instructions and summary."""
        if self._context is not None:
            self._context = ConversationContext(self._context.budget_chars)

    # -- hooks

    def _prepare_body(self, handle: RequestHandle) -> dict[str, Any]:
        body = dict(handle.body)
        messages: list[dict[str, Any]] = body["messages"]
        new_messages = messages
        if self._context is not None:
            instructions, new_messages = self._context.split_request(messages)
            body["messages"] = self._context.messages_for(instructions, new_messages)
        body["stream"] = True
        if "stream_options" not in body:
            body["stream_options"] = {"include_usage": True}
        handle.state = _ChatRequestState(
            ChatCompletionStream(tools=body.get("tools"), response_format=body.get("response_format")),
            copy.deepcopy(new_messages),
        )
        return body

    def _state(self, handle: RequestHandle) -> _ChatRequestState:
        return cast(_ChatRequestState, handle.state)

    def _on_event(self, handle: RequestHandle, event: SSEEvent) -> bool:
        if event.done:
            self._finish_stream(handle)
            return True
        data = parse_event_json(event)
        if isinstance(data, dict) and data.get("error"):
            self._fail(handle, stream_error_payload(data["error"], 200))
            return True
        if not isinstance(data, dict) or not _is_chunk(data):
            # Not a chunk: e.g. an Azure content-filter event (object "") or a provider extension.
            self._emit(handle, E.Unknown.value, data if isinstance(data, dict) else {"raw": event.data})
            return False
        state = self._state(handle)
        # Accumulate before any listener sees the chunk (a listener may change its event's data).
        try:
            helper_events = state.stream.handle_chunk(data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            self._emit(handle, E.Chunk.value, data)
            self._fail(
                handle,
                error_payload(
                    status=200, message=f"malformed chunk: {exc}", code="invalid_chunk", error=data
                ),
            )
            return True
        if data.get("usage"):
            self._add_usage(data["usage"])
        if not handle.generated and state.stream.finished():
            handle.generated = True
        self._emit(handle, E.Chunk.value, data)
        for name, payload in helper_events:
            if not handle.active:
                return True
            if name in (E.ContentDelta, E.RefusalDelta, E.FunctionToolCallArgumentsDelta) and (
                payload.get("delta") or payload.get("arguments_delta")
            ):
                self._mark_token(handle)
            self._emit(handle, name.value, payload)
        return False

    def _finish_stream(self, handle: RequestHandle) -> None:
        state = self._state(handle)
        if state.stream.snapshot is None:
            self._fail(
                handle,
                error_payload(status=200, message="the stream ended with no chunk", code="empty_stream"),
            )
            return
        completion = state.stream.final_completion()
        # Done before the event: a listener's next request or cancel() then finds the turn complete.
        self._commit(handle, completion)
        self._complete(handle, completion)
        self._emit(handle, E.Content.value, completion)

    def _on_json_body(self, handle: RequestHandle, body: Any) -> None:
        if isinstance(body, dict) and body.get("error"):
            self._fail(handle, stream_error_payload(body["error"], 200))
        elif isinstance(body, dict) and body.get("object") == "chat.completion":
            self._add_usage(body.get("usage"))
            self._commit(handle, body)
            self._complete(handle, body)
            self._emit(handle, E.Content.value, body)
        else:
            self._emit(handle, E.Unknown.value, body)
            self._fail(
                handle, error_payload(status=200, message="not a chat completion", code="invalid_response")
            )

    def _on_cancelled(self, handle: RequestHandle) -> None:
        self._stats["cancelled"] += 1
        state = handle.state
        if self._context is not None:
            if isinstance(state, _ChatRequestState) and handle.generated:
                self._commit(handle, state.stream.final_completion())  # the whole answer had arrived
            elif isinstance(state, _ChatRequestState):
                self._context.commit(state.new_messages)
            else:
                # Cancelled while queued: its messages were never prepared.
                _, new = self._context.split_request(handle.body.get("messages", []))
                self._context.commit(new)

    def _commit(self, handle: RequestHandle, completion: Mapping[str, Any]) -> None:
        if self._context is None:
            return
        state = self._state(handle)
        reply: list[dict[str, Any]] = []
        choices = completion.get("choices") or []
        if choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message") or {}
            stored: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
            if message.get("refusal"):
                stored["refusal"] = message["refusal"]
            if message.get("tool_calls"):
                stored["tool_calls"] = copy.deepcopy(message["tool_calls"])
            reply.append(stored)
        self._context.commit(state.new_messages + reply)
        self._maybe_summarize()

    # -- summary

    def _maybe_summarize(self) -> None:
        ctx = self._context
        if ctx is None or self._summarizing or self._closed or not ctx.over_budget():
            return
        folded = ctx.fold_point()
        if folded <= 0:
            return
        self._summarizing = True
        task = background(self._summarize(ctx, folded), name=f"chat-completions summary {self._id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _summarize(self, ctx: ConversationContext, folded: int) -> None:
        try:
            to_fold = ctx.history[:folded]
            body = {
                "model": self._chat_params.summary_model,
                "messages": summary_messages(self._chat_params.summary_prompt, ctx.summary, to_fold),
                "stream": False,
            }
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self._stats["requests"] += 1
            self._stats["bytes_sent"] += len(payload)
            self._trace("out", "POST chat/completions (summary)", len(payload), body, payload.decode("utf-8"))
            try:
                response = await self._http.post(
                    self._url, content=payload, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                self._summary_failed(network_error_payload(exc))
                return
            self._stats["bytes_received"] += len(response.content)
            self._trace(
                "in", f"HTTP {response.status_code} (summary)", len(response.content), None, response.text
            )
            if response.status_code >= 400:
                self._summary_failed(
                    http_error_payload(
                        response.status_code, response.reason_phrase, response.headers, response.content
                    )
                )
                return
            try:
                result = response.json()
                text = result["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                text = None
                result = None
            if not isinstance(text, str) or not text.strip():
                self._summary_failed(
                    error_payload(
                        status=response.status_code,
                        message="the summary reply had no text",
                        code="invalid_response",
                    )
                )
                return
            if isinstance(result, dict):
                self._add_usage(result.get("usage"))
            if ctx is not self._context or ctx.history[:folded] != to_fold:
                return  # context was reset meanwhile
            ctx.apply_summary(folded, text.strip())
            self._stats["summaries"] += 1
            log.debug("%s folded %d messages into the summary", self._id, folded)
        finally:
            self._summarizing = False

    def _summary_failed(self, error: dict[str, Any]) -> None:
        self._stats["errors"] += 1
        error["request"] = "summary"
        log.warning("%s: summary request failed: %s", self._id, error.get("message"))
        self._emit(None, self._error_event, error)


async def create_chat_completions_api_client(
    parameters: ChatCompletionsAPIClientParameters | Mapping[str, Any] | None = None,
    /,
    *,
    context_budget_chars: int = DEFAULT_CONTEXT_BUDGET_CHARS,
    transport: httpx.AsyncBaseTransport | None = None,
    **kwargs: Unpack[ChatCompletionsAPIClientOptions],
) -> ChatCompletionsAPIClient:
    """``OpenAI.create_chat_completions_api_client``: a parameters object, a dict (camelCase keys
    allowed) or keyword arguments (``api_key``, ``base_url``, ``project``, ``store_context``,
    ``summary_model``, ``summary_prompt``, ``statistics``, ``trace``, ``privacy``).

    ``context_budget_chars`` (voxline's own): with ``store_context``, the size of the stored
    history (characters of its messages' JSON) beyond which older turns are summarised.
    ``transport``: an ``httpx`` transport, for tests and proxies.
    Without ``base_url``, ``OPENAI_BASE_URL`` is used when set (as the official SDKs do).
    """
    params = build_parameters(
        ChatCompletionsAPIClientParameters, parameters, with_default_base_url(parameters, kwargs)
    )
    if (
        isinstance(context_budget_chars, bool)
        or not isinstance(context_budget_chars, int)
        or context_budget_chars < 1
    ):
        raise ValueError(f"context_budget_chars must be a positive int, not {context_budget_chars!r}")
    client = ChatCompletionsAPIClient(params, context_budget_chars=context_budget_chars, transport=transport)
    adopt(client)  # the call session closes it when it terminates
    return client
