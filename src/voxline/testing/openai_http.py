"""Fake OpenAI Chat Completions and Responses servers on 127.0.0.1, for voxline's tests and yours.

``FakeOpenAIHTTPServer`` serves ``POST /v1/chat/completions`` and ``POST /v1/responses`` as
OpenAI does (see the protocol notes): ``text/event-stream`` bodies of ``data: <chunk>`` lines
ending with ``data: [DONE]`` for Chat Completions, ``event: <type>`` + ``data:`` pairs with
``sequence_number`` for Responses, OpenAI's ``{"error": {message, type, param, code}}`` JSON
with the right status for errors. It checks ``Authorization: Bearer <api_key>`` (401), parses and
roughly validates the body (400: model, messages/input, tool messages answering a preceding
tool call, ``previous_response_id`` known, ``function_call_output`` answering a call), and
records every request (headers and JSON) and every TCP connection.

What it answers is scripted, in order, per endpoint (``script_chat``, ``script_responses``,
``script_chat_json``); with an empty script it answers a short default text. Script items:

- :class:`ChatReply` (text, refusal or tool calls; chunks shaped like the live recordings, the
  usage chunk only when ``stream_options.include_usage`` asked for it),
- :class:`SSEReplay` (a recorded ``.sse`` body written verbatim, optionally in small writes),
- :class:`ResponsesReply` (text, refusal or function calls; the full event sequence; stored,
  so later requests can chain on it),
- :class:`RawEvents` (any Responses events, e.g. every type of the spec),
- :class:`HTTPError` (401, 429 with ``Retry-After``, 500, ...).

Faults on streamed items: ``error_after=n`` sends an error object (Chat) / ``error`` event
(Responses) after ``n`` events; ``drop_after=n`` closes the TCP connection after ``n`` events;
``hold_after=n`` stops after ``n`` events until :meth:`FakeOpenAIHTTPServer.release` (barge-in
tests; once released, later holds pass). A client that goes away mid-stream is counted in
``disconnects`` and sets ``disconnected``. ``GET /v1/models`` answers a one-model list.

Non-streaming Chat Completions requests (voxline's summary requests) get a ``chat.completion``
JSON whose text comes from ``script_chat_json`` (default ``"Summary."``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..openai.sse import encode_event
from .http_fake import LoopbackHTTPFake

MODEL_DEFAULT = "gpt-4o-2024-08-06"
_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass
class _Faults:
    error_after: int | None = None
    error: dict[str, Any] | None = None
    drop_after: int | None = None
    hold_after: int | None = None


@dataclass
class ChatReply(_Faults):
    """A streamed chat completion: ``text``, ``refusal`` or ``tool_calls`` [(name, arguments)]."""

    text: str | None = None
    refusal: str | None = None
    tool_calls: Sequence[tuple[str, str]] | None = None
    finish_reason: str | None = None
    piece_chars: int = 4
    logprobs: bool = False


@dataclass
class SSEReplay(_Faults):
    """A recorded SSE body, written verbatim; ``write_size`` splits the writes (bytes)."""

    body: bytes = b""
    write_size: int | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SSEReplay:
        return cls(body=Path(path).read_bytes(), **kwargs)


@dataclass
class ResponsesReply(_Faults):
    """A streamed response: ``text``, ``refusal`` and/or ``function_calls`` [(name, arguments)]."""

    text: str | None = None
    refusal: str | None = None
    function_calls: Sequence[tuple[str, str]] | None = None
    status: str = "completed"  # or "incomplete" / "failed"
    piece_chars: int = 4


@dataclass
class RawEvents(_Faults):
    """Responses events sent as given (``event: <type>`` + ``data: <json>``)."""

    events: Sequence[dict[str, Any]] = ()
    done_sentinel: bool = False


@dataclass
class HTTPError:
    status: int
    message: str = "The server had an error while processing your request."
    type: str | None = "server_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None
    body: bytes | None = None  # sent instead of OpenAI's error JSON when set


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    peer: Any


@dataclass
class _Stored:
    output: list[dict[str, Any]] = field(default_factory=list)
    previous: str | None = None


def openai_error(
    status: int, message: str, type: str | None, code: str | None, param: str | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": type, "param": param, "code": code}}, status=status
    )


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeOpenAIHTTPServer(LoopbackHTTPFake):
    """Chat Completions + Responses on ``http://127.0.0.1:<port>/``; use ``async with``."""

    def __init__(self, *, api_key: str = "sk-test", model: str = MODEL_DEFAULT) -> None:
        super().__init__()
        self.api_key = api_key
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.peers: list[Any] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self._chat: deque[Any] = deque()
        self._chat_json: deque[str | HTTPError] = deque()
        self._responses: deque[Any] = deque()
        self._release = asyncio.Event()
        self._ids = itertools.count(1)
        self.stored: dict[str, _Stored] = {}

    # -- lifecycle

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/chat/completions", self._chat_completions)
        router.add_post("/v1/responses", self._responses_endpoint)
        router.add_get("/v1/models", self._models)

    async def close(self) -> None:
        self._release.set()
        await super().close()

    # -- scripting

    def script_chat(self, *items: ChatReply | SSEReplay | HTTPError) -> None:
        self._chat.extend(items)

    def script_chat_json(self, *items: str | HTTPError) -> None:
        self._chat_json.extend(items)

    def script_responses(self, *items: ResponsesReply | RawEvents | HTTPError) -> None:
        self._responses.extend(items)

    def release(self) -> None:
        """Let streams paused by ``hold_after`` go on (holds reached later do not pause)."""
        self._release.set()

    @property
    def connections(self) -> int:
        """Distinct TCP connections that carried requests."""
        return len(set(self.peers))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- common request handling

    async def _accept(self, request: web.Request) -> tuple[Any, web.Response | None]:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(peer)
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.headers), body, peer))
        auth = request.headers.get("Authorization", "")
        if not auth:
            return body, openai_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        if auth != f"Bearer {self.api_key}":
            key = auth.removeprefix("Bearer ")
            return body, openai_error(
                401,
                f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if not isinstance(body, dict):
            return body, openai_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                "invalid_request_error",
                None,
            )
        if not isinstance(body.get("model"), str) or not body["model"]:
            return body, openai_error(
                400, "you must provide a model parameter", "invalid_request_error", None, "model"
            )
        return body, None

    @staticmethod
    def _http_error(item: HTTPError) -> web.Response:
        headers = {"Retry-After": f"{item.retry_after:g}"} if item.retry_after is not None else None
        if item.body is not None:
            return web.Response(status=item.status, body=item.body, headers=headers)
        response = openai_error(item.status, item.message, item.type, item.code, item.param)
        if headers:
            response.headers.update(headers)
        return response

    async def _open_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
        )
        response.headers["x-request-id"] = f"req_{next(self._ids)}"
        await response.prepare(request)
        return response

    async def _send_events(
        self,
        request: web.Request,
        response: web.StreamResponse,
        frames: list[bytes],
        faults: _Faults,
        error_frame: bytes,
    ) -> None:
        try:
            for n, frame in enumerate(frames):
                if faults.hold_after is not None and n == faults.hold_after:
                    await self._release.wait()
                if faults.error_after is not None and n == faults.error_after:
                    await response.write(error_frame)
                    await response.write_eof()
                    return
                if faults.drop_after is not None and n == faults.drop_after:
                    assert request.transport is not None
                    request.transport.close()
                    return
                await response.write(frame)
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            self.disconnects += 1
            self.disconnected.set()
            raise

    async def _models(self, request: web.Request) -> web.Response:
        _, refusal = await self._accept(request)
        if refusal is not None and refusal.status == 401:
            return refusal
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "system"}],
            }
        )

    # -- Chat Completions

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        problem = self._check_chat(body)
        if problem is not None:
            return problem
        if not body.get("stream"):
            item_json = self._chat_json.popleft() if self._chat_json else "Summary."
            if isinstance(item_json, HTTPError):
                return self._http_error(item_json)
            return web.json_response(self._chat_completion_json(body, item_json))
        item = self._chat.popleft() if self._chat else ChatReply(text="OK.")
        if isinstance(item, HTTPError):
            return self._http_error(item)
        error = item.error or {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        error_frame = encode_event(json.dumps({"error": error}))
        if isinstance(item, SSEReplay):
            frames = self._replay_frames(item)
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = [encode_event(json.dumps(c)) for c in self.chat_chunks(item, body, include_usage)]
            frames.append(encode_event("[DONE]"))
        response = await self._open_stream(request)
        await self._send_events(request, response, frames, item, error_frame)
        return response

    @staticmethod
    def _replay_frames(item: SSEReplay) -> list[bytes]:
        if item.write_size:
            return [item.body[i : i + item.write_size] for i in range(0, len(item.body), item.write_size)]
        # One write per event, as the server flushed them.
        parts = item.body.split(b"\n\n")
        frames = [p + b"\n\n" for p in parts[:-1]]
        if parts[-1]:
            frames.append(parts[-1])
        return frames

    def _check_chat(self, body: dict[str, Any]) -> web.Response | None:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return openai_error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
                "messages",
            )
        if not messages:
            return openai_error(
                400, "[] is too short - 'messages'", "invalid_request_error", "empty_array", "messages"
            )
        if body.get("stream_options") is not None and not body.get("stream"):
            return openai_error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "invalid_request_error",
                None,
                "stream_options",
            )
        open_calls: set[str] = set()
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in _CHAT_ROLES:
                return openai_error(
                    400,
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                    "'function', 'tool', and 'developer'.",
                    "invalid_request_error",
                    "invalid_value",
                    f"messages[{i}].role",
                )
            if role == "tool":
                if m.get("tool_call_id") not in open_calls:
                    return openai_error(
                        400,
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        "message with 'tool_calls'.",
                        "invalid_request_error",
                        None,
                        f"messages.[{i}].role",
                    )
                open_calls.discard(m["tool_call_id"])
                continue
            if open_calls:
                return openai_error(
                    400,
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    + ", ".join(sorted(open_calls)),
                    "invalid_request_error",
                    None,
                    f"messages.[{i}].role",
                )
            if role == "assistant":
                open_calls = {tc.get("id") for tc in m.get("tool_calls") or []}
        if open_calls:
            return openai_error(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                "'tool_call_id'. The following tool_call_ids did not have response messages: "
                + ", ".join(sorted(open_calls)),
                "invalid_request_error",
                None,
                "messages",
            )
        return None

    def chat_chunks(
        self, reply: ChatReply, body: dict[str, Any], include_usage: bool
    ) -> list[dict[str, Any]]:
        """The chunks of a scripted reply, shaped like the live recordings."""
        n = next(self._ids)
        base = {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion.chunk",
            "created": 1727346168 + n,
            "model": self.model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            }

        chunks: list[dict[str, Any]] = []
        completion_tokens = 0
        if reply.tool_calls:
            first: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
            for index, (name, arguments) in enumerate(reply.tool_calls):
                head = {
                    "index": index,
                    "id": f"call_fake{n}_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                if index == 0:
                    chunks.append(chunk({**first, "tool_calls": [head]}))
                else:
                    chunks.append(chunk({"tool_calls": [head]}))
                for piece in _pieces(arguments, reply.piece_chars):
                    completion_tokens += 1
                    chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
            finish = reply.finish_reason or "tool_calls"
        elif reply.refusal is not None:
            chunks.append(chunk({"role": "assistant", "content": None, "refusal": ""}))
            for piece in _pieces(reply.refusal, reply.piece_chars):
                completion_tokens += 1
                chunks.append(chunk({"refusal": piece}))
            finish = reply.finish_reason or "stop"
        else:
            lp: dict[str, Any] | None = {"content": [], "refusal": None} if reply.logprobs else None
            chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}, logprobs=lp))
            for piece in _pieces(reply.text or "", reply.piece_chars):
                completion_tokens += 1
                token_lp = None
                if reply.logprobs:
                    token_lp = {
                        "content": [
                            {
                                "token": piece,
                                "logprob": -0.5,
                                "bytes": list(piece.encode()),
                                "top_logprobs": [],
                            }
                        ],
                        "refusal": None,
                    }
                chunks.append(chunk({"content": piece}, logprobs=token_lp))
            finish = reply.finish_reason or "stop"
        chunks.append(chunk({}, finish))
        if include_usage:
            prompt_tokens = sum(len(json.dumps(m)) // 4 for m in body.get("messages", []))
            chunks.append(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
            )
        return chunks

    def _chat_completion_json(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        n = next(self._ids)
        prompt_tokens = sum(len(json.dumps(m)) // 4 for m in body.get("messages", []))
        completion_tokens = max(1, len(text) // 4)
        return {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion",
            "created": 1727346168 + n,
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    # -- Responses

    async def _responses_endpoint(self, request: web.Request) -> web.StreamResponse:
        body, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        problem = self._check_responses(body)
        if problem is not None:
            return problem
        item = self._responses.popleft() if self._responses else ResponsesReply(text="OK.")
        if isinstance(item, HTTPError):
            return self._http_error(item)
        if not body.get("stream"):
            return openai_error(
                400, "this fake serves streaming requests only", "invalid_request_error", None, "stream"
            )
        if isinstance(item, RawEvents):
            events = [dict(e) for e in item.events]
        else:
            events = self.response_events(item, body)
        frames = [encode_event(json.dumps(e), event=str(e.get("type", "message"))) for e in events]
        if isinstance(item, RawEvents) and item.done_sentinel:
            frames.append(encode_event("[DONE]"))
        error = item.error or {"code": "server_error", "message": "The server had an error while streaming."}
        position = item.error_after if item.error_after is not None else len(events)
        error_event = {"type": "error", "param": None, **error, "sequence_number": position}
        error_frame = encode_event(json.dumps(error_event), event="error")
        response = await self._open_stream(request)
        await self._send_events(request, response, frames, item, error_frame)
        return response

    def _chain_outputs(self, response_id: str | None) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = []
        while response_id is not None and response_id in self.stored:
            stored = self.stored[response_id]
            outputs.extend(stored.output)
            response_id = stored.previous
        return outputs

    def _check_responses(self, body: dict[str, Any]) -> web.Response | None:
        value = body.get("input")
        previous = body.get("previous_response_id")
        if value is None and previous is None:
            return openai_error(
                400,
                "Missing required parameter: 'input'.",
                "invalid_request_error",
                "missing_required_parameter",
                "input",
            )
        if value is not None and not isinstance(value, str | list):
            return openai_error(
                400,
                "Invalid type for 'input': expected a string or an array.",
                "invalid_request_error",
                "invalid_type",
                "input",
            )
        if previous is not None and previous not in self.stored:
            return openai_error(
                400,
                f"Previous response with id '{previous}' not found.",
                "invalid_request_error",
                "previous_response_not_found",
                "previous_response_id",
            )
        if isinstance(value, list):
            known = {
                o.get("call_id") for o in self._chain_outputs(previous) if o.get("type") == "function_call"
            }
            known |= {
                i.get("call_id") for i in value if isinstance(i, dict) and i.get("type") == "function_call"
            }
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    return openai_error(
                        400,
                        f"Invalid type for 'input[{i}]': expected an object.",
                        "invalid_request_error",
                        "invalid_type",
                        f"input[{i}]",
                    )
                if entry.get("type") == "function_call_output" and entry.get("call_id") not in known:
                    return openai_error(
                        400,
                        f"No tool call found for function call output with call_id {entry.get('call_id')}.",
                        "invalid_request_error",
                        None,
                        "input",
                    )
        return None

    def response_events(self, reply: ResponsesReply, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The full event sequence of a scripted response; the response is stored for chaining."""
        n = next(self._ids)
        rid = f"resp_fake{n}"
        model = body.get("model", self.model)
        seq = itertools.count()
        events: list[dict[str, Any]] = []

        def response_obj(status: str, output: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
            response = {
                "id": rid,
                "object": "response",
                "created_at": 1740855869 + n,
                "status": status,
                "error": None
                if status != "failed"
                else {"code": "server_error", "message": "The model failed."},
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "instructions": body.get("instructions"),
                "model": model,
                "output": output,
                "previous_response_id": body.get("previous_response_id"),
                "store": body.get("store", True),
                "tools": body.get("tools", []),
                "tool_choice": body.get("tool_choice", "auto"),
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "temperature": body.get("temperature", 1.0),
                "top_p": body.get("top_p", 1.0),
                "metadata": body.get("metadata", {}),
            }
            if usage is not None:
                response["usage"] = usage
            return response

        def emit(event_type: str, **fields: Any) -> None:
            events.append({"type": event_type, "sequence_number": next(seq), **fields})

        emit("response.created", response=response_obj("in_progress", []))
        emit("response.in_progress", response=response_obj("in_progress", []))
        output: list[dict[str, Any]] = []
        output_tokens = 0
        if reply.text is not None or reply.refusal is not None:
            index = len(output)
            item_id = f"msg_fake{n}"
            item = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            emit("response.output_item.added", output_index=index, item=dict(item))
            common = {"item_id": item_id, "output_index": index, "content_index": 0}
            if reply.refusal is not None:
                part: dict[str, Any] = {"type": "refusal", "refusal": ""}
                emit("response.content_part.added", **common, part=dict(part))
                for piece in _pieces(reply.refusal, reply.piece_chars):
                    output_tokens += 1
                    emit("response.refusal.delta", **common, delta=piece)
                emit("response.refusal.done", **common, refusal=reply.refusal)
                part = {"type": "refusal", "refusal": reply.refusal}
            else:
                text = reply.text or ""
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                emit("response.content_part.added", **common, part=dict(part))
                for piece in _pieces(text, reply.piece_chars):
                    output_tokens += 1
                    emit("response.output_text.delta", **common, delta=piece, logprobs=[])
                emit("response.output_text.done", **common, text=text, logprobs=[])
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            emit("response.content_part.done", **common, part=part)
            done_item = {**item, "status": "completed", "content": [part]}
            emit("response.output_item.done", output_index=index, item=done_item)
            output.append(done_item)
        for name, arguments in reply.function_calls or ():
            index = len(output)
            item_id = f"fc_fake{n}_{index}"
            call = {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": f"call_fake{n}_{index}",
                "name": name,
            }
            emit("response.output_item.added", output_index=index, item=dict(call))
            for piece in _pieces(arguments, reply.piece_chars):
                output_tokens += 1
                emit(
                    "response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=piece
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=name,
                arguments=arguments,
            )
            done_call = {**call, "status": "completed", "arguments": arguments}
            emit("response.output_item.done", output_index=index, item=done_call)
            output.append(done_call)
        input_tokens = len(json.dumps(body.get("input"))) // 4
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        terminal = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            reply.status, "response.failed"
        )
        emit(terminal, response=response_obj(reply.status, output, usage))
        if body.get("store", True) is not False and reply.status != "failed":
            self.stored[rid] = _Stored(output=output, previous=body.get("previous_response_id"))
        return events
