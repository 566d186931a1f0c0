"""The Chat Completions stream accumulator: chunks in, the official SDKs' stream-helper events out.

Sans-I/O. :class:`ChatCompletionStream` takes each ``chat.completion.chunk`` (a parsed dict), merges
it into a snapshot with :func:`accumulate_delta` (the SDKs' rule) and returns the helper events
(``ContentDelta``, ``FunctionToolCallArgumentsDone``, ...) with their payloads, in the order and with
the firing rules of the Python SDK's ``ChatCompletionStreamState``; ``final_completion()`` is the
``chat.completion`` a non-streaming request returns. The client (:mod:`voxline.openai.chat`) owns
the I/O; the events and their payloads are documented there.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from jiter import from_json

from .events import ChatCompletionsAPIEvents

E = ChatCompletionsAPIEvents

HelperEvent = tuple[ChatCompletionsAPIEvents, dict[str, Any]]

# ------------------------------------------------------------------------------------ partial JSON


def parse_partial_json(text: str) -> Any:
    """Parse JSON that may be cut short, as the SDKs' streaming helpers do: the same call,
    ``jiter.from_json(text, partial_mode=True)``.

    Complete members are kept; an unfinished string is dropped with its key, and so are an
    unfinished literal and a number that does not parse yet (``1.``, ``-``), while one that does is
    kept as read so far (``{"t": 2`` gives ``{"t": 2}``); open arrays and objects are closed. Where
    jiter raises (``{"a" 1}``, ``[1,]``) this returns None; the SDK raises. Other text that is not
    JSON reads as jiter reads it, for voxline as for the SDK: ``NaN`` and ``Infinity`` are numbers,
    and a value followed by what cannot follow it ends the document (``[1 2]`` gives ``[1]``).
    """
    try:
        return from_json(text.encode("utf-8"), partial_mode=True)
    except ValueError:  # also UnicodeEncodeError: a lone surrogate
        return None


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
