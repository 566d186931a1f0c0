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
from typing import Any, cast

import httpx

from .._tasks import background
from ..runtime.context import adopt
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
from .events import CHAT_COMPLETIONS_TYPES, ChatCompletionsAPIEvents
from .params import ChatCompletionsAPIClientParameters, build_parameters
from .sse import SSEEvent

log = logging.getLogger("voxline.openai.chat")

E = ChatCompletionsAPIEvents
DEFAULT_CONTEXT_BUDGET_CHARS = 24_000
SUMMARY_HEADER = "Summary of the conversation so far:\n"
_INSTRUCTION_ROLES = ("system", "developer")

HelperEvent = tuple[ChatCompletionsAPIEvents, dict[str, Any]]


# ------------------------------------------------------------------------------------ partial JSON


class _Incomplete(Exception):
    pass


class _Invalid(Exception):
    pass


_WS = " \t\n\r"
_NUMBER_CHARS = frozenset("0123456789+-.eE")


def parse_partial_json(text: str) -> Any:
    """Parse JSON that may be cut short, as the SDKs' streaming helpers do (jiter ``partial_mode``).

    Complete members are kept; an unfinished string, number or literal is dropped with its key;
    open arrays and objects are closed. Returns None for text that is not JSON at all.
    """
    parser = _PartialParser(text)
    try:
        return parser.value()
    except (_Incomplete, _Invalid):
        return None


class _PartialParser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        s, i, n = self.s, self.i, len(self.s)
        while i < n and s[i] in _WS:
            i += 1
        self.i = i

    def value(self) -> Any:
        self.ws()
        if self.i >= len(self.s):
            raise _Incomplete
        c = self.s[self.i]
        if c == "{":
            return self.obj()
        if c == "[":
            return self.arr()
        if c == '"':
            return self.string()
        if c in "-0123456789":
            return self.number()
        for word, val in (("true", True), ("false", False), ("null", None)):
            if c == word[0]:
                end = self.i + len(word)
                chunk = self.s[self.i : end]
                if chunk == word:
                    self.i = end
                    return val
                if word.startswith(chunk) and end > len(self.s):
                    raise _Incomplete
                raise _Invalid
        raise _Invalid

    def string(self) -> str:
        s, start = self.s, self.i
        i = start + 1
        n = len(s)
        while i < n:
            c = s[i]
            if c == "\\":
                i += 2
                continue
            if c == '"':
                self.i = i + 1
                try:
                    return cast(str, json.loads(s[start : i + 1]))
                except ValueError:
                    raise _Invalid from None
            i += 1
        raise _Incomplete

    def number(self) -> Any:
        s, start = self.s, self.i
        i = start
        n = len(s)
        while i < n and s[i] in _NUMBER_CHARS:
            i += 1
        literal = s[start:i]
        try:
            result = json.loads(literal)
        except ValueError:
            if i >= n:
                raise _Incomplete from None
            raise _Invalid from None
        self.i = i
        return result

    def obj(self) -> dict[str, Any]:
        self.i += 1
        result: dict[str, Any] = {}
        n = len(self.s)
        self.ws()
        if self.i >= n:
            return result
        if self.s[self.i] == "}":
            self.i += 1
            return result
        while True:
            self.ws()
            if self.i >= n:
                return result
            if self.s[self.i] != '"':
                raise _Invalid
            try:
                key = self.string()
            except _Incomplete:
                self.i = n  # the cut is here: every enclosing container ends too
                return result
            self.ws()
            if self.i >= n:
                return result
            if self.s[self.i] != ":":
                raise _Invalid
            self.i += 1
            try:
                val = self.value()
            except _Incomplete:
                self.i = n
                return result
            result[key] = val
            self.ws()
            if self.i >= n:
                return result
            c = self.s[self.i]
            self.i += 1
            if c == "}":
                return result
            if c != ",":
                raise _Invalid

    def arr(self) -> list[Any]:
        self.i += 1
        result: list[Any] = []
        n = len(self.s)
        self.ws()
        if self.i >= n:
            return result
        if self.s[self.i] == "]":
            self.i += 1
            return result
        while True:
            try:
                val = self.value()
            except _Incomplete:
                self.i = n
                return result
            result.append(val)
            self.ws()
            if self.i >= n:
                return result
            c = self.s[self.i]
            self.i += 1
            if c == "]":
                return result
            if c != ",":
                raise _Invalid


# ------------------------------------------------------------------------------------ accumulator


def accumulate_delta(acc: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a ``delta`` into a message snapshot (strings concatenate, ``index``ed lists merge by
    index, ``index``/``type`` are replaced) — the SDKs' accumulation rule. ``delta`` is not changed."""
    for key, dval in delta.items():
        if key not in acc or acc[key] is None:
            if _has_indexed_entries(dval):
                acc[key] = []
            else:
                acc[key] = copy.deepcopy(dval)
                continue
        aval = acc[key]
        if key in ("index", "type"):
            acc[key] = copy.deepcopy(dval)
            continue
        if isinstance(aval, str) and isinstance(dval, str):
            aval = "".join((aval, dval))
        elif _is_number(aval) and _is_number(dval):
            aval = aval + dval
        elif isinstance(aval, dict) and isinstance(dval, Mapping):
            aval = accumulate_delta(aval, dval)
        elif isinstance(aval, list) and isinstance(dval, list):
            if all(isinstance(x, str | int | float) for x in aval) and (
                aval or not _has_indexed_entries(dval)
            ):
                aval.extend(copy.deepcopy(dval))
                continue
            for entry in dval:
                if not isinstance(entry, Mapping) or not isinstance(entry.get("index"), int):
                    raise ValueError(f"list delta entry without an integer 'index': {entry!r}")
                index = entry["index"]
                if index < len(aval):
                    if not isinstance(aval[index], dict):
                        raise ValueError(f"cannot merge delta into {aval[index]!r}")
                    aval[index] = accumulate_delta(aval[index], entry)
                else:
                    aval.insert(index, copy.deepcopy(dict(entry)))
        else:
            aval = copy.deepcopy(dval)
        acc[key] = aval
    return acc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _has_indexed_entries(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(e, Mapping) and "index" in e for e in value)


class _ChoiceState:
    def __init__(self) -> None:
        self.content_done = False
        self.refusal_done = False
        self.logprobs_content_done = False
        self.logprobs_refusal_done = False
        self.done_tool_calls: set[int] = set()
        self.current_tool_call: int | None = None


class ChatCompletionStream:
    """Sans-I/O: chunks in (parsed dicts) -> the SDK helper events out, and the final completion.

    ``tools`` and ``response_format`` are the request's, used only to decide what to parse.
    """

    def __init__(self, *, tools: Any = None, response_format: Any = None) -> None:
        self._strict_tools: set[str] = set()
        if isinstance(tools, list):
            for tool in tools:
                if isinstance(tool, Mapping) and tool.get("type") == "function":
                    fn = tool.get("function")
                    if isinstance(fn, Mapping) and fn.get("strict") and isinstance(fn.get("name"), str):
                        self._strict_tools.add(fn["name"])
        self._parse_content = (
            isinstance(response_format, Mapping) and response_format.get("type") == "json_schema"
        )
        self.snapshot: dict[str, Any] | None = None
        self._choice_states: list[_ChoiceState] = []

    # The chunk is only read, never changed: listeners hold it as Chunk data.
    def handle_chunk(self, chunk: Mapping[str, Any]) -> list[HelperEvent]:
        self._accumulate(chunk)
        return self._build_events(chunk)

    def finished(self) -> bool:
        """Every choice has its ``finish_reason``: the answer is complete."""
        choices = self.snapshot.get("choices") if self.snapshot else None
        return isinstance(choices, list) and bool(choices) and all(c.get("finish_reason") for c in choices)

    def final_completion(self) -> dict[str, Any]:
        """The completion as a non-streaming request returns it (no helper-only fields)."""
        snap = self.snapshot or {}
        result = {k: copy.deepcopy(v) for k, v in snap.items() if k != "choices"}
        result["object"] = "chat.completion"
        choices: list[dict[str, Any]] = []
        for choice in snap.get("choices", []):
            message = choice.get("message", {})
            out_msg: dict[str, Any] = {
                "role": message.get("role", "assistant"),
                "content": message.get("content"),
                "refusal": message.get("refusal"),
            }
            tool_calls = message.get("tool_calls")
            if tool_calls:
                out_msg["tool_calls"] = [
                    {
                        "id": tc.get("id"),
                        "type": tc.get("type", "function"),
                        "function": {
                            "name": tc.get("function", {}).get("name"),
                            "arguments": tc.get("function", {}).get("arguments", ""),
                        },
                    }
                    for tc in tool_calls
                ]
            for key, value in message.items():
                if key not in out_msg and key not in ("tool_calls", "parsed"):
                    out_msg[key] = copy.deepcopy(value)
            choices.append(
                {
                    "index": choice.get("index", len(choices)),
                    "message": out_msg,
                    "finish_reason": choice.get("finish_reason"),
                    "logprobs": copy.deepcopy(choice.get("logprobs")),
                }
            )
        result["choices"] = choices
        result.setdefault("usage", None)
        return result

    def _accumulate(self, chunk: Mapping[str, Any]) -> None:
        choices = chunk.get("choices") or []
        if self.snapshot is None:
            snap: dict[str, Any] = {"system_fingerprint": None}
            snap.update(
                {k: copy.deepcopy(v) for k, v in chunk.items() if k not in ("obfuscation", "choices")}
            )
            snap["object"] = "chat.completion"
            snap["choices"] = []
            for choice in choices:
                snap["choices"].append(self._new_choice(choice))
            self.snapshot = snap
            return
        snap = self.snapshot
        for choice in choices:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            if index < len(snap["choices"]):
                cs = snap["choices"][index]
                accumulate_delta(cs["message"], delta)
            else:
                cs = self._new_choice(choice)
                snap["choices"].append(cs)
            if choice.get("finish_reason"):
                cs["finish_reason"] = choice["finish_reason"]
            message = cs["message"]
            content = message.get("content")
            if self._parse_content and content and not message.get("refusal") and content.lstrip():
                message["parsed"] = parse_partial_json(content)
            for tc_delta in delta.get("tool_calls") or []:
                tool_calls = message.get("tool_calls") or []
                idx = tc_delta.get("index", 0)
                if idx >= len(tool_calls):
                    continue
                tc = tool_calls[idx]
                fn = tc.get("function") or {}
                if fn.get("name") in self._strict_tools and fn.get("arguments"):
                    fn["parsed_arguments"] = parse_partial_json(fn["arguments"])
            logprobs = choice.get("logprobs")
            if logprobs is not None:
                if cs.get("logprobs") is None:
                    cs["logprobs"] = {
                        "content": copy.deepcopy(logprobs.get("content")),
                        "refusal": copy.deepcopy(logprobs.get("refusal")),
                    }
                else:
                    for key in ("content", "refusal"):
                        if logprobs.get(key):
                            if cs["logprobs"].get(key) is None:
                                cs["logprobs"][key] = []
                            cs["logprobs"][key].extend(copy.deepcopy(logprobs[key]))
        snap["usage"] = copy.deepcopy(chunk.get("usage"))
        snap["system_fingerprint"] = chunk.get("system_fingerprint")

    @staticmethod
    def _new_choice(choice: Mapping[str, Any]) -> dict[str, Any]:
        cs = {k: copy.deepcopy(v) for k, v in choice.items() if k != "delta"}
        cs["message"] = accumulate_delta({}, choice.get("delta") or {})
        return cs

    def _state(self, index: int) -> _ChoiceState:
        while len(self._choice_states) <= index:
            self._choice_states.append(_ChoiceState())
        return self._choice_states[index]

    def _build_events(self, chunk: Mapping[str, Any]) -> list[HelperEvent]:
        events: list[HelperEvent] = []
        assert self.snapshot is not None
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            state = self._state(index)
            cs = self.snapshot["choices"][index]
            message = cs["message"]
            delta = choice.get("delta") or {}
            if delta.get("content") is not None and message.get("content") is not None:
                events.append(
                    (
                        E.ContentDelta,
                        {
                            "type": "content.delta",
                            "delta": delta["content"],
                            "snapshot": message["content"],
                            "parsed": copy.deepcopy(message.get("parsed")),
                        },
                    )
                )
            if delta.get("refusal") is not None and message.get("refusal") is not None:
                events.append(
                    (
                        E.RefusalDelta,
                        {"type": "refusal.delta", "delta": delta["refusal"], "snapshot": message["refusal"]},
                    )
                )
            for tc_delta in delta.get("tool_calls") or []:
                idx = tc_delta.get("index", 0)
                tool_calls = message.get("tool_calls") or []
                if idx >= len(tool_calls) or tool_calls[idx].get("type", "function") != "function":
                    continue
                fn = tool_calls[idx].get("function") or {}
                events.append(
                    (
                        E.FunctionToolCallArgumentsDelta,
                        {
                            "type": "tool_calls.function.arguments.delta",
                            "name": fn.get("name"),
                            "index": idx,
                            "arguments": fn.get("arguments", ""),
                            "parsed_arguments": copy.deepcopy(fn.get("parsed_arguments")),
                            "arguments_delta": (tc_delta.get("function") or {}).get("arguments") or "",
                        },
                    )
                )
            logprobs = choice.get("logprobs")
            snap_lp = cs.get("logprobs")
            if logprobs is not None and snap_lp is not None:
                if logprobs.get("content") and snap_lp.get("content"):
                    events.append(
                        (
                            E.LogProbsContentDelta,
                            {
                                "type": "logprobs.content.delta",
                                "content": copy.deepcopy(logprobs["content"]),
                                "snapshot": copy.deepcopy(snap_lp["content"]),
                            },
                        )
                    )
                if logprobs.get("refusal") and snap_lp.get("refusal"):
                    events.append(
                        (
                            E.LogProbsRefusalDelta,
                            {
                                "type": "logprobs.refusal.delta",
                                "refusal": copy.deepcopy(logprobs["refusal"]),
                                "snapshot": copy.deepcopy(snap_lp["refusal"]),
                            },
                        )
                    )
            events.extend(self._done_events(state, choice, cs))
        return events

    def _done_events(
        self, state: _ChoiceState, choice: Mapping[str, Any], cs: dict[str, Any]
    ) -> list[HelperEvent]:
        events: list[HelperEvent] = []
        if cs.get("finish_reason"):
            events.extend(self._content_done_events(state, cs))
            if state.current_tool_call is not None and state.current_tool_call not in state.done_tool_calls:
                self._tool_done(events, state, cs, state.current_tool_call)
        for tc_delta in (choice.get("delta") or {}).get("tool_calls") or []:
            idx = tc_delta.get("index", 0)
            if state.current_tool_call != idx:
                events.extend(self._content_done_events(state, cs))
                if state.current_tool_call is not None:
                    self._tool_done(events, state, cs, state.current_tool_call)
            state.current_tool_call = idx
        return events

    def _content_done_events(self, state: _ChoiceState, cs: dict[str, Any]) -> list[HelperEvent]:
        events: list[HelperEvent] = []
        message = cs["message"]
        if message.get("content") and not state.content_done:
            state.content_done = True
            parsed = None
            if self._parse_content and not message.get("refusal"):
                try:
                    parsed = json.loads(message["content"])
                except ValueError:
                    parsed = None
            message["parsed"] = parsed
            events.append(
                (
                    E.ContentDone,
                    {"type": "content.done", "content": message["content"], "parsed": copy.deepcopy(parsed)},
                )
            )
        if message.get("refusal") is not None and not state.refusal_done:
            state.refusal_done = True
            events.append((E.RefusalDone, {"type": "refusal.done", "refusal": message["refusal"]}))
        lp = cs.get("logprobs")
        if lp is not None and lp.get("content") is not None and not state.logprobs_content_done:
            state.logprobs_content_done = True
            events.append(
                (
                    E.LogProbsContentDone,
                    {"type": "logprobs.content.done", "content": copy.deepcopy(lp["content"])},
                )
            )
        if lp is not None and lp.get("refusal") is not None and not state.logprobs_refusal_done:
            state.logprobs_refusal_done = True
            events.append(
                (
                    E.LogProbsRefusalDone,
                    {"type": "logprobs.refusal.done", "refusal": copy.deepcopy(lp["refusal"])},
                )
            )
        return events

    def _tool_done(
        self, events: list[HelperEvent], state: _ChoiceState, cs: dict[str, Any], index: int
    ) -> None:
        if index in state.done_tool_calls:
            return
        state.done_tool_calls.add(index)
        tool_calls = cs["message"].get("tool_calls") or []
        if index >= len(tool_calls) or tool_calls[index].get("type", "function") != "function":
            return
        fn = tool_calls[index].setdefault("function", {})
        parsed = None
        if fn.get("name") in self._strict_tools:
            try:
                parsed = json.loads(fn.get("arguments") or "")
            except ValueError:
                parsed = None
        fn["parsed_arguments"] = parsed
        events.append(
            (
                E.FunctionToolCallArgumentsDone,
                {
                    "type": "tool_calls.function.arguments.done",
                    "name": fn.get("name"),
                    "index": index,
                    "arguments": fn.get("arguments", ""),
                    "parsed_arguments": copy.deepcopy(parsed),
                },
            )
        )


# ------------------------------------------------------------------------------------ stored context


def message_size(message: Any) -> int:
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")))


class ConversationContext:
    """Sans-I/O store of a conversation: instructions, a rolling summary and the recent history."""

    def __init__(self, budget_chars: int) -> None:
        self.budget_chars = budget_chars
        self.instructions: list[dict[str, Any]] = []
        self.summary: str | None = None
        self.history: list[dict[str, Any]] = []

    def split_request(
        self, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
        """(new instructions or None, conversation messages) of a request's ``messages``."""
        lead = 0
        while lead < len(messages) and messages[lead].get("role") in _INSTRUCTION_ROLES:
            lead += 1
        return (messages[:lead] if lead else None), messages[lead:]

    def messages_for(self, instructions: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[Any]:
        if instructions is not None:
            self.instructions = copy.deepcopy(instructions)
        out: list[Any] = copy.deepcopy(self.instructions)
        if self.summary:
            out.append({"role": "system", "content": SUMMARY_HEADER + self.summary})
        out.extend(copy.deepcopy(self.history))
        out.extend(copy.deepcopy(new))
        return out

    def commit(self, messages: list[dict[str, Any]]) -> None:
        self.history.extend(copy.deepcopy(messages))

    def size(self) -> int:
        return sum(message_size(m) for m in self.history)

    def over_budget(self) -> bool:
        return self.size() > self.budget_chars

    def fold_point(self) -> int:
        """How many of the oldest messages to fold: keep the newest turns within half the budget,
        starting at a user message. 0 when nothing can be folded."""
        keep_budget = self.budget_chars // 2
        user_starts = [i for i, m in enumerate(self.history) if m.get("role") == "user"]
        if not user_starts:
            return 0
        suffix = 0
        sizes = [message_size(m) for m in self.history]
        cut = user_starts[-1]
        for start in reversed(user_starts):
            suffix = sum(sizes[start:])
            if suffix > keep_budget:
                break
            cut = start
        return cut

    def apply_summary(self, folded: int, summary: str) -> None:
        self.history = self.history[folded:]
        self.summary = summary


def render_transcript(messages: list[dict[str, Any]]) -> str:
    """The folded messages as ``role: text`` lines for the summary model."""
    lines = []
    for m in messages:
        role = m.get("role", "?")
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
            )
        if content:
            lines.append(f"{role}: {content}")
        if m.get("refusal"):
            lines.append(f"{role} (refusal): {m['refusal']}")
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or {}
            lines.append(f"{role} called {fn.get('name')}({fn.get('arguments', '')})")
        if role == "tool" and not content:
            lines.append("tool: (empty result)")
    return "\n".join(lines)


def summary_messages(prompt: str, previous: str | None, folded: list[dict[str, Any]]) -> list[dict[str, str]]:
    previous_text = previous or "(none yet)"
    if "{previous_summary}" in prompt:
        system = prompt.replace("{previous_summary}", previous_text)
    else:
        system = f"{prompt}\n\n1. The previous summary:\n{previous_text}"
    user = "2. The messages between user and assistant to summarize:\n" + render_transcript(folded)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# ------------------------------------------------------------------------------------ the client


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
    **kwargs: Any,
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
